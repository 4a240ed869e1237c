using System.Text.RegularExpressions;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Operations;

/// <summary>
/// Habits of the codebases we learn from, checked in the product code (Gateway, Silo, Grains, ServiceDefaults): every
/// log message has an event id of its own, and an exception reaches the logger as the exception, not as its message.
/// </summary>
public sealed partial class CodeHabitsTests
{
    private static readonly string[] Product = ["Gateway/", "Silo/", "Grains/", "Grains.Interfaces/", "ServiceDefaults/", "bench/", "tools/", "samples/"];

    private static IEnumerable<(string File, string Text)> ProductSources() => Repository.Files()
        .Where(f => f.EndsWith(".cs", StringComparison.Ordinal) && Product.Any(p => f.StartsWith(p, StringComparison.Ordinal)))
        .Select(f => (f, File.ReadAllText(Path.Combine(Repository.Root, f))));

    [Fact]
    public void Every_log_message_has_an_event_id_of_its_own()
    {
        var messages = ProductSources()
            .SelectMany(s => LoggerMessage().Matches(s.Text).Select(m => (s.File, Attribute: m.Value, Id: IdOf().Match(m.Value))))
            .ToList();
        Assert.True(messages.Count > 50, $"only {messages.Count} [LoggerMessage] attributes found: the pattern no longer matches the code");
        Assert.Empty(messages.Where(m => !m.Id.Success).Select(m => $"{m.File}: {m.Attribute}"));
        Assert.Empty(messages.GroupBy(m => m.Id.Groups[1].Value).Where(g => g.Count() > 1).Select(g => $"event id {g.Key}: {string.Join(", ", g.Select(m => m.File))}"));
    }

    [Fact]
    public void Exceptions_are_logged_as_exceptions_not_as_their_message()
    {
        var sites = ProductSources()
            .SelectMany(s => s.Text.Split('\n').Select((line, i) => (s.File, Line: i + 1, Text: line)))
            .Where(l => LogCallWithMessage().IsMatch(l.Text))
            .Select(l => $"{l.File}:{l.Line}: {l.Text.Trim()}")
            .ToList();
        Assert.Empty(sites);
    }

    [GeneratedRegex(@"\[LoggerMessage\([^\]]*\)\]")]
    private static partial Regex LoggerMessage();

    [GeneratedRegex(@"EventId\s*=\s*(\d+)")]
    private static partial Regex IdOf();

    // Log…(…ex.Message…) or logger.LogX(…, e.Message)
    [GeneratedRegex(@"\bLog\w*\([^;]*\b(ex|e|exception|error)\.Message\b")]
    private static partial Regex LogCallWithMessage();
}
