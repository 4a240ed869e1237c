using System.Globalization;
using System.Text;

namespace Ingest.Bench;

/// <summary>
/// Calls against latency and CPU over several runs (bench/curve.sh): where the tail starts to grow, and how busy the two
/// cores were when it did. One row per system, call count and real-time run (cold: first on fresh processes; warm: again).
/// </summary>
public static class CurveTable
{
    public static string Render(IReadOnlyList<RunResult> runs)
    {
        var text = new StringBuilder();
        text.AppendLine("| calls | system | run | frames/s | p50 ms | p95 ms | p99 ms | p99 ms from the 10th second on | CPU µs per frame gateway+silo (or relay) | CPU µs per frame Redis | of it the driver's reads | Orleans hop alone µs per call: silo + client (scenario hop) | box CPU busy % (all processes, 2 cores) | lost/dup/reordered |");
        text.AppendLine("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        var rows = runs
            .SelectMany(r => r.Scenarios.Where(s => s.Scenario.StartsWith("realtime", StringComparison.Ordinal)).Select(s => (Run: r, Scenario: s)))
            .OrderBy(x => x.Scenario.Calls)
            .ThenBy(x => x.Run.System == "relay" ? 0 : 1)
            .ThenBy(x => x.Scenario.Scenario, StringComparer.Ordinal);
        foreach (var (run, s) in rows)
        {
            var frames = Math.Max(1, s.FramesReadable);
            var servers = s.Servers.Sum(p => p.Value.CpuSeconds);
            var redis = s.Processes.TryGetValue("redis", out var r) ? r.CpuSeconds : 0;
            var all = s.Processes.Sum(p => p.Value.CpuSeconds);
            var busy = s.WindowSeconds > 0 ? all / (s.WindowSeconds * Environment.ProcessorCount) * 100 : double.NaN;
            var steady = s.SteadyLatency?.P99Ms;
            var which = s.Scenario.Contains("(run", StringComparison.Ordinal) ? "warm" : "cold";
            text.Append(CultureInfo.InvariantCulture, $"| {s.Calls} | {run.System} | {which} | {s.FramesPerSecond:N0} | {ResultsTable.Ms(s.Latency?.P50Ms)} | {ResultsTable.Ms(s.Latency?.P95Ms)} | {ResultsTable.Ms(s.Latency?.P99Ms)} | {ResultsTable.Ms(steady)} ");
            text.Append(CultureInfo.InvariantCulture, $"| {servers / frames * 1e6:0} | {redis / frames * 1e6:0} | {(s.RedisDriverCpuSeconds is { } d ? (d / frames * 1e6).ToString("0", CultureInfo.InvariantCulture) : "-")} | {Hop(run)} | {busy:0} ");
            text.AppendLine(CultureInfo.InvariantCulture, $"| {(s.Verification is { } v ? $"{v.Lost}/{v.Duplicated}/{v.Reordered}" : "-")} |");
        }

        return text.ToString();
    }

    /// <summary>The same run's hop scenario (the floor a grain call per frame puts under the system), per grain call.</summary>
    private static string Hop(RunResult run)
    {
        if (run.Scenarios.FirstOrDefault(s => s.Scenario == "hop") is not { FramesReadable: > 0 } hop)
        {
            return "-";
        }

        double Us(string process) => hop.Processes.TryGetValue(process, out var p) ? p.CpuSeconds / hop.FramesReadable * 1e6 : 0;
        return string.Create(CultureInfo.InvariantCulture, $"{Us("silo"):0} + {Us("driver"):0}");
    }
}
