using System.Diagnostics;
using Ingest.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Ingest.Tests.Kit;

/// <summary>
/// The QA kit as a QA team with a repository of its own gets it: packed by tools/pack-kit.sh into a local folder feed,
/// restored from there by samples/qa-kit-outside (a test project outside the solution's project graph, copied out of
/// the repository first so nothing of it can be inherited), which then runs its one scenario against a real
/// redis-server, silo and gateway.
/// </summary>
public sealed class PackedKitTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_packed_kit_restored_from_a_folder_feed_runs_a_scenario_outside_the_solution()
    {
        var root = Repository.Root;
        var work = Directory.CreateTempSubdirectory("ingest-qa-outside-");
        // A version of its own, so the restore cannot take a kit an earlier run left in the NuGet cache.
        var version = "0.0.0-check." + Guid.NewGuid().ToString("N")[..12];
        try
        {
            var feed = Path.Combine(work.FullName, "feed");
            var project = Path.Combine(work.FullName, "project");
            var pack = await RunAsync(root, "bash", [Path.Combine(root, "tools", "pack-kit.sh"), feed, "--no-build", "-p:Version=" + version, "-p:Configuration=" + ProcessCluster.Configuration]);
            Assert.True(pack.Exit == 0, "tools/pack-kit.sh failed:\n" + pack.Output);
            Assert.Contains($"Ingest.Testing.{version}.nupkg", pack.Output, StringComparison.Ordinal);

            Directory.CreateDirectory(project);
            foreach (var file in Directory.EnumerateFiles(Path.Combine(root, "samples", "qa-kit-outside")))
            {
                File.Copy(file, Path.Combine(project, Path.GetFileName(file)));
            }

            // The sample's nuget.config names the feed tools/pack-kit.sh makes by default; point it at this one.
            var config = Path.Combine(project, "nuget.config");
            File.WriteAllText(config, File.ReadAllText(config).Replace("../../artifacts/packages", feed, StringComparison.Ordinal));

            var test = await RunAsync(project, "dotnet", ["test", "-nologo", "-nodeReuse:false", "-p:IngestKitVersion=" + version]);
            output.WriteLine(test.Output);
            Assert.True(test.Exit == 0, "the outside project failed:\n" + test.Output);
            Assert.Contains("Passed:     1", test.Output, StringComparison.Ordinal);
            Assert.Contains("Failed:     0", test.Output, StringComparison.Ordinal);
        }
        finally
        {
            work.Delete(recursive: true);
            ForgetCachedPackages(version);
        }
    }

    /// <summary>The restore put this run's packages in the NuGet cache; nobody will ask for that version again.</summary>
    private static void ForgetCachedPackages(string version)
    {
        var cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } set
            ? set
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        if (!Directory.Exists(cache))
        {
            return;
        }

        foreach (var package in Directory.EnumerateDirectories(cache, "ingest.*"))
        {
            var folder = Path.Combine(package, version);
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }

            if (!Directory.EnumerateFileSystemEntries(package).Any())
            {
                Directory.Delete(package);
            }
        }
    }

    private static async Task<(int Exit, string Output)> RunAsync(string directory, string command, string[] args)
    {
        var info = new ProcessStartInfo(command)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        // What the outer `dotnet test` put in this process's environment for its own MSBuild and test host.
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            info.Environment.Remove(key);
        }

        info.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(info) ?? throw new InvalidOperationException("could not start " + command);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            return (-1, $"{command} {string.Join(' ', args)} still running after 4 min\n{await stdout}\n{await stderr}");
        }

        return (process.ExitCode, await stdout + await stderr);
    }
}
