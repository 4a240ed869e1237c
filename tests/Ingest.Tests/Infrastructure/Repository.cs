namespace Ingest.Tests.Infrastructure;

/// <summary>The repository's own files, as a clone has them: build output, run data and test results left out.</summary>
public static class Repository
{
    private static readonly string[] Generated = ["/bin/", "/obj/", "/node_modules/", "/TestResults/", "/.run/", "/.git/"];

    public static string Root => ProcessCluster.RepositoryRoot;

    /// <summary>Every file's path relative to <see cref="Root"/>, with forward slashes.</summary>
    public static List<string> Files() => Directory.EnumerateFiles(Root, "*", SearchOption.AllDirectories)
        .Select(f => Path.GetRelativePath(Root, f).Replace('\\', '/'))
        .Where(f => !Generated.Any(g => ("/" + f).Contains(g, StringComparison.Ordinal)))
        .ToList();
}
