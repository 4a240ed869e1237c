using System.Reflection;
using Xunit.Abstractions;

[assembly: TestCollectionOrderer("Ingest.Tests.Infrastructure.LongestFirstOrderer", "Ingest.Tests")]

namespace Ingest.Tests.Infrastructure;

/// <summary>
/// About how long a test class (or a collection definition, for the classes it groups) takes in a full run, in
/// seconds, as measured from a run's TRX; <see cref="LongestFirstOrderer"/> starts the longest first.
/// </summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class RunsForAttribute(int seconds) : Attribute
{
    public int Seconds { get; } = seconds;
}

/// <summary>
/// Starts the test collections that run longest first (<see cref="RunsForAttribute"/>), the rest after them in
/// xunit's usual order. Started last, two long classes once kept the suite running at one or two tests at a time for
/// its final minute; started first, they run beside the short ones.
/// </summary>
public sealed class LongestFirstOrderer : ITestCollectionOrderer
{
    private const string PerClassPrefix = "Test collection for ";

    public IEnumerable<ITestCollection> OrderTestCollections(IEnumerable<ITestCollection> testCollections) =>
        testCollections.OrderByDescending(Seconds).ThenBy(c => c.UniqueID).ToList();

    private static int Seconds(ITestCollection collection)
    {
        var type = collection.CollectionDefinition?.ToRuntimeType()
            ?? (collection.DisplayName.StartsWith(PerClassPrefix, StringComparison.Ordinal)
                ? typeof(LongestFirstOrderer).Assembly.GetType(collection.DisplayName[PerClassPrefix.Length..])
                : null);
        return type?.GetCustomAttribute<RunsForAttribute>()?.Seconds ?? 0;
    }
}
