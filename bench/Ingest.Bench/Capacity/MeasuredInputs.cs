namespace Ingest.Bench.Capacity;

/// <summary>Memory one more live call costs a process, and where that figure came from.</summary>
public sealed record PerCallMemory(double Kb, string Source);

/// <summary>
/// What the capacity model takes from a bench results file: per-frame CPU of each process in the real-time scenario,
/// each server's peak RSS there, memory per idle live call and Redis bytes per audio entry. Where a file lacks a figure
/// (files older than the field), <see cref="Notes"/> says what was used instead.
/// </summary>
public sealed record MeasuredInputs
{
    public required string Source { get; init; }

    public required DateTime MeasuredUtc { get; init; }

    public required string Machine { get; init; }

    /// <summary>The real-time scenario the CPU figures come from (the warm run when the file has two).</summary>
    public required string Scenario { get; init; }

    public required int Calls { get; init; }

    public required int SampleRate { get; init; }

    public required int ObservedCalls { get; init; }

    public required int CadenceMs { get; init; }

    public required int FrameBytes { get; init; }

    public required double FramesPerSecond { get; init; }

    public required double GatewayUsPerFrame { get; init; }

    public required double SiloUsPerFrame { get; init; }

    public required double RedisUsPerFrame { get; init; }

    public required double GatewayPeakRssMb { get; init; }

    public required double SiloPeakRssMb { get; init; }

    public required PerCallMemory GatewayPerCall { get; init; }

    public required PerCallMemory SiloPerCall { get; init; }

    /// <summary>Measured Redis bytes per audio entry at <see cref="FrameBytes"/>; null: not in the file.</summary>
    public double? RedisBytesPerEntry { get; init; }

    public RelayInputs? Relay { get; init; }

    public required IReadOnlyList<string> Notes { get; init; }

    /// <summary>
    /// Reads the inputs from an orleans results file, optionally the relay's of the same run and another orleans file
    /// for the idle figures when the first has no idle scenario.
    /// </summary>
    public static MeasuredInputs From(string source, RunResult orleans, string? relaySource = null, RunResult? relay = null, string? idleSource = null, RunResult? idle = null)
    {
        var notes = new List<string>();
        var realtime = LastRealTime(orleans) ?? throw new ArgumentException($"{source}: no real-time scenario with frames; the model needs one");
        var frames = (double)realtime.FramesReadable;
        double Us(string process) => realtime.Processes.TryGetValue(process, out var p)
            ? p.CpuSeconds / frames * 1e6
            : throw new ArgumentException($"{source}: the {realtime.Scenario} scenario has no CPU figure for '{process}' (processes: {string.Join(", ", realtime.Processes.Keys)}); the model needs gateway, silo and redis separately");
        double Peak(string process) => realtime.Processes.TryGetValue(process, out var p) ? p.PeakRssMb : 0;
        var gatewayPeak = Peak("gateway");
        var siloPeak = Peak("silo");

        var (gateway, silo) = PerCall(source, orleans, realtime, gatewayPeak, siloPeak, idleSource, idle, notes);
        if (realtime.RedisBytesPerAudioEntry is null)
        {
            notes.Add($"{Path.GetFileName(source)} has no measured Redis bytes per audio entry (a field added with this calculator; new runs record it); used the stated overhead (--entry-overhead-ratio, --entry-overhead-bytes)");
        }

        RelayInputs? relayInputs = null;
        if (relay is not null)
        {
            relayInputs = LastRealTime(relay) is { } r && r.Processes.TryGetValue("relay", out var rp) && r.Processes.TryGetValue("redis", out var rr)
                ? new RelayInputs(relaySource ?? relay.System, r.Scenario, r.Calls, rp.CpuSeconds / r.FramesReadable * 1e6, rr.CpuSeconds / r.FramesReadable * 1e6)
                : throw new ArgumentException($"{relaySource}: no real-time scenario with relay and redis CPU");
        }

        return new MeasuredInputs
        {
            Source = source,
            MeasuredUtc = orleans.StartedUtc,
            Machine = orleans.Machine,
            Scenario = realtime.Scenario,
            Calls = realtime.Calls,
            SampleRate = realtime.SampleRate,
            ObservedCalls = realtime.ObservedCalls,
            CadenceMs = realtime.CadenceMs,
            FrameBytes = realtime.FrameBytes,
            FramesPerSecond = realtime.FramesPerSecond,
            GatewayUsPerFrame = Us("gateway"),
            SiloUsPerFrame = Us("silo"),
            RedisUsPerFrame = Us("redis"),
            GatewayPeakRssMb = gatewayPeak,
            SiloPeakRssMb = siloPeak,
            GatewayPerCall = gateway,
            SiloPerCall = silo,
            RedisBytesPerEntry = realtime.RedisBytesPerAudioEntry,
            Relay = relayInputs,
            Notes = notes,
        };
    }

    /// <summary>The last real-time scenario that moved frames: the warm run when the file has a cold and a warm one.</summary>
    private static ScenarioResult? LastRealTime(RunResult run) =>
        run.Scenarios.LastOrDefault(s => s.Scenario.StartsWith("realtime", StringComparison.Ordinal) && s.FramesReadable > 0);

    private static (PerCallMemory Gateway, PerCallMemory Silo) PerCall(
        string source, RunResult orleans, ScenarioResult realtime, double gatewayPeak, double siloPeak, string? idleSource, RunResult? idleRun, List<string> notes)
    {
        var (idle, from) = Idle(orleans) is { } own ? (own, source) : idleRun is not null && Idle(idleRun) is { } other ? (other, idleSource ?? "idle file") : (null, source);
        var name = Path.GetFileName(from);
        if (idle is null)
        {
            notes.Add($"{Path.GetFileName(source)} has no idle scenario{(idleRun is null ? string.Empty : " and neither has the --idle-results file")}: the idle memory per call is each server's peak RSS in the real-time run divided by its calls, as for the traffic figure (includes the process's baseline, so it overstates)");
            return (new PerCallMemory(gatewayPeak * 1024 / realtime.Calls, $"peak RSS / calls, {realtime.Scenario}"),
                    new PerCallMemory(siloPeak * 1024 / realtime.Calls, $"peak RSS / calls, {realtime.Scenario}"));
        }

        if (idle.KbPerIdleCallByProcess is { } split && split.TryGetValue("gateway", out var g) && split.TryGetValue("silo", out var s))
        {
            return (new PerCallMemory(g, $"idle scenario, {name}"), new PerCallMemory(s, $"idle scenario, {name}"));
        }

        var total = idle.KbPerIdleCall ?? 0;
        notes.Add($"{name} records memory per idle call for gateway+silo together ({total:0.0} KB), not per process (a field added with this calculator; new runs record it): each node type is charged the whole figure, which overstates both");
        return (new PerCallMemory(total, $"idle gateway+silo total, {name}"), new PerCallMemory(total, $"idle gateway+silo total, {name}"));
    }

    private static ScenarioResult? Idle(RunResult run) => run.Scenarios.FirstOrDefault(s => s.Scenario == "idle" && s.KbPerIdleCall is not null);
}

/// <summary>The relay's per-frame CPU in the same run: the same contract without Orleans or the fenced script.</summary>
public sealed record RelayInputs(string Source, string Scenario, int Calls, double RelayUsPerFrame, double RedisUsPerFrame);
