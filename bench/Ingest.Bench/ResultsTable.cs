using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Ingest.Bench;

/// <summary>One system's run: what it was, on what machine, and its scenarios.</summary>
public sealed record RunResult(string System, string Machine, DateTime StartedUtc, BenchOptionsSummary Options, List<ScenarioResult> Scenarios);

public sealed record BenchOptionsSummary(int Calls, int Seconds, int CadenceMs, int SampleRate, int MaxCalls, int MaxFramesPerCall, int ObservedCalls, string Encoding = "pcm16");

/// <summary>The comparison table of bench/run.sh (Markdown, so it pastes into docs/PERFORMANCE.md as is).</summary>
public static class ResultsTable
{
    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    public static string Render(IReadOnlyList<RunResult> runs)
    {
        var text = new StringBuilder();
        text.AppendLine("| system | scenario | calls | frames/s readable | p50 ms | p95 ms | p99 ms | max ms | lost/dup/reordered/corrupt | max send lag ms | CPU s (per process) | CPU s gateway+silo (or relay) | peak RSS MB | KB per idle call |");
        text.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---|---:|");
        foreach (var scenario in runs.SelectMany(r => r.Scenarios.Select(s => s.Scenario)).Distinct())
        {
            foreach (var run in runs)
            {
                if (run.Scenarios.FirstOrDefault(s => s.Scenario == scenario) is not { } s)
                {
                    continue;
                }

                var servers = s.Servers.Sum(p => p.Value.CpuSeconds);
                text.Append(CultureInfo.InvariantCulture, $"| {run.System} | {s.Scenario}{(s.CadenceMs > 0 ? $" {s.CadenceMs} ms" : string.Empty)} | {s.Calls}{(s.FailedCalls > 0 ? $" ({s.FailedCalls} failed)" : string.Empty)} ");
                text.Append(CultureInfo.InvariantCulture, $"| {(s.FramesSent > 0 ? s.FramesPerSecond.ToString("N0", CultureInfo.InvariantCulture) : "-")} ");
                text.Append(CultureInfo.InvariantCulture, $"| {Ms(s.Latency?.P50Ms)} | {Ms(s.Latency?.P95Ms)} | {Ms(s.Latency?.P99Ms)} | {Ms(s.Latency?.MaxMs)} ");
                text.Append(CultureInfo.InvariantCulture, $"| {(s.Verification is { } v ? $"{v.Lost}/{v.Duplicated}/{v.Reordered}/{v.Corrupt}" : "-")} ");
                text.Append(CultureInfo.InvariantCulture, $"| {(s.FramesSent > 0 ? s.MaxSendLagMs.ToString("0.#", CultureInfo.InvariantCulture) : "-")} ");
                text.Append(CultureInfo.InvariantCulture, $"| {string.Join(" ", s.Processes.Select(p => $"{p.Key} {p.Value.CpuSeconds:0.0}{(p.Key == "redis" && s.RedisDriverCpuSeconds is { } d ? $" (driver's reads {d:0.0})" : string.Empty)}"))} | {servers:0.0} ");
                text.Append(CultureInfo.InvariantCulture, $"| {string.Join(" ", s.Servers.Select(p => $"{p.Key} {p.Value.PeakRssMb:0}"))} ");
                text.AppendLine(CultureInfo.InvariantCulture, $"| {(s.KbPerIdleCall is { } kb ? kb.ToString("0.0", CultureInfo.InvariantCulture) : "-")} |");
            }
        }

        var relay = runs.FirstOrDefault(r => r.System == "relay")?.Scenarios.FirstOrDefault(s => s.Scenario == "max");
        var system = runs.FirstOrDefault(r => r.System != "relay")?.Scenarios.FirstOrDefault(s => s.Scenario == "max");
        if (relay is { FramesPerSecond: > 0 } && system is not null)
        {
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"Max throughput ratio system/relay: {system.FramesPerSecond / relay.FramesPerSecond:0.00} (target >= 0.80)");
        }

        return text.ToString();
    }

    internal static string Ms(double? value) => value is { } v && !double.IsNaN(v) ? v.ToString("0.0", CultureInfo.InvariantCulture) : "-";
}
