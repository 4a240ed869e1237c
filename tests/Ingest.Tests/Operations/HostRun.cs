using System.Diagnostics;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Operations;

/// <summary>Runs a shipped host (or tool) until it exits by itself: what an operator sees when a setting is refused.</summary>
public static class HostRun
{
    public sealed record Outcome(int ExitCode, string[] Stdout, string[] Stderr, TimeSpan Elapsed)
    {
        public override string ToString() =>
            $"exit {ExitCode} after {Elapsed.TotalMilliseconds:F0} ms\nstdout:\n{string.Join('\n', Stdout)}\nstderr:\n{string.Join('\n', Stderr)}";
    }

    public static string SiloDll => ProcessCluster.HostDll("Silo", "Ingest.Silo");

    public static string GatewayDll => ProcessCluster.HostDll("Gateway", "Ingest.Gateway");

    public static string IngestCtlDll => ProcessCluster.HostDll(Path.Combine("tools", "ingestctl"), "ingestctl");

    public static async Task<Outcome> RunAsync(string dll, Dictionary<string, string> env, IEnumerable<string>? args = null, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        using var process = Start(dll, env, args);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(40));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"{Path.GetFileName(dll)} still running after {clock.Elapsed}\n{await stdout}\n{await stderr}");
        }

        static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return new Outcome(process.ExitCode, Lines(await stdout), Lines(await stderr), clock.Elapsed);
    }

    /// <summary>Starts a shipped host (or tool) as an operator would, its output redirected; the caller reads or drains it.</summary>
    public static Process Start(string dll, Dictionary<string, string> env, IEnumerable<string>? args = null)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { dll },
            WorkingDirectory = Path.GetDirectoryName(dll)!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args ?? [])
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        info.Environment["Logging__LogLevel__Default"] = "Warning";
        foreach (var (key, value) in env)
        {
            info.Environment[key] = value;
        }

        return Process.Start(info) ?? throw new InvalidOperationException("could not start " + dll);
    }

    /// <summary>CONTRACT §2: refused at start, exit code 2, one line on stderr naming the setting, no stack trace anywhere.</summary>
    public static void AssertRefused(Outcome outcome, string setting)
    {
        Assert.True(outcome.ExitCode == 2, outcome.ToString());
        Assert.True(outcome.Stderr.Length == 1, outcome.ToString());
        Assert.Contains(setting, outcome.Stderr[0], StringComparison.Ordinal);
        Assert.DoesNotContain(outcome.Stdout.Concat(outcome.Stderr), l => l.StartsWith("at ", StringComparison.Ordinal));
    }
}
