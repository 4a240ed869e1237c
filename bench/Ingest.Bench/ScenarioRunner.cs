using System.Diagnostics;

namespace Ingest.Bench;

/// <summary>Figures of one scenario against one system, as printed and written to JSON.</summary>
public sealed record ScenarioResult
{
    public required string Scenario { get; init; }

    public required int Calls { get; init; }

    public int CadenceMs { get; init; }

    public int SampleRate { get; init; }

    public int FrameBytes { get; init; }

    public long FramesSent { get; init; }

    public long FramesReadable { get; init; }

    public double FramesPerSecond { get; init; }

    public double WindowSeconds { get; init; }

    public double MaxSendLagMs { get; init; }

    public int ObservedCalls { get; init; }

    public LatencySummary? Latency { get; init; }

    /// <summary>Frames that became readable from the 10th second of the scenario on: the tail once a cold start has passed.</summary>
    public LatencySummary? SteadyLatency { get; init; }

    /// <summary>Per second of the scenario (by the time a frame became readable): samples, p50, p99, max.</summary>
    public List<LatencySecond>? LatencyBySecond { get; init; }

    public Verification? Verification { get; init; }

    public double? KbPerIdleCall { get; init; }

    /// <summary>
    /// Idle scenario: RSS growth per live call of each server process (gateway and silo, or the relay), in KB, so a
    /// capacity model can size gateway and silo nodes separately. Absent from files written before it was recorded.
    /// </summary>
    public Dictionary<string, double>? KbPerIdleCallByProcess { get; init; }

    /// <summary>
    /// Traffic scenarios: Redis memory per audio entry in bytes (<c>MEMORY USAGE ... SAMPLES 0</c> of a sample of the
    /// scenario's streams, divided by their entries), at this scenario's frame size. Absent from older files.
    /// </summary>
    public double? RedisBytesPerAudioEntry { get; init; }

    public required Dictionary<string, ProcessFigures> Processes { get; init; }

    /// <summary>
    /// Traffic scenarios: CPU seconds Redis spent in the driver's own commands during the scenario (<c>XREAD</c> to
    /// observe latency, <c>XLEN</c> to count readable frames; <c>INFO commandstats</c>), included in Redis's CPU above.
    /// It differs by system (how often a blocked read wakes depends on how writes arrive), so Redis's work for the
    /// system is its CPU less this. Absent from older files.
    /// </summary>
    public double? RedisDriverCpuSeconds { get; init; }

    /// <summary>The measured servers (gateway and silo, or the relay): every process but Redis and the driver.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public IEnumerable<KeyValuePair<string, ProcessFigures>> Servers => Processes.Where(p => p.Key is not ("redis" or "driver"));

    public int FailedCalls { get; init; }
}

/// <summary>Runs the scenarios; every loop is bounded in count and in time.</summary>
public sealed class ScenarioRunner(BenchOptions options, RedisProbe redis, TextWriter log)
{
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(90);
    private static readonly string[] ServerProcesses = ["gateway", "silo", "relay"];
    private int _batches;
    private readonly string _runId = DateTime.UtcNow.ToString("HHmmss", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A few calls through every path, so JIT and first activations are not billed to a scenario.</summary>
    public async Task WarmUpAsync()
    {
        // A server that just said ready may still refuse for a moment (a gateway still reading its flags): retry, bounded.
        var calls = CreateCalls("warm", options.WarmupCalls, observed: 0, frames: 0);
        for (var attempt = 1; await ConnectAllAsync(calls) > 0; attempt++)
        {
            await DisposeAllAsync(calls);
            if (attempt == 60)
            {
                throw new InvalidOperationException("the server refused warm-up calls for 30 s");
            }

            await Task.Delay(500);
            calls = CreateCalls("warm" + attempt, options.WarmupCalls, observed: 0, frames: 0);
        }

        var cadenceTicks = options.WarmupCadenceMs * Stopwatch.Frequency / 1000;
        var firstDue = Stopwatch.GetTimestamp();
        await Task.WhenAll(calls.Select((c, i) => c.SendMediaAsync(50, firstDue + (cadenceTicks * i / calls.Count), cadenceTicks, CancellationToken.None)));
        await SimulatedExotelCall.StopAllAsync(calls);
        await WaitReadableAsync(calls, calls.Sum(c => c.FramesSent), Stopwatch.GetTimestamp());
        await redis.DeleteAsync(calls);
        await DisposeAllAsync(calls);
    }

    /// <summary>N calls connected and started but silent: what each live call costs the servers in memory.</summary>
    public async Task<ScenarioResult> IdleAsync(int largeMessageBytes = 0)
    {
        await SettleAsync();
        var before = new ProcessUsage(options.Processes);
        var servers = ServerProcesses.Where(options.Processes.ContainsKey).ToList();
        var rssBefore = servers.ToDictionary(n => n, before.RssBytes, StringComparer.Ordinal);
        var scenario = largeMessageBytes > 0 ? "idle-large" : "idle";
        var calls = CreateCalls(scenario, options.Calls, observed: 0, frames: 0);
        var failed = await ConnectAllAsync(calls);
        if (largeMessageBytes > 0)
        {
            // Each call sends one large message, one call after another (never many at once), then goes quiet.
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60 + calls.Count / 10));
            foreach (var call in calls)
            {
                await call.SendLargeMessageAsync(largeMessageBytes, timeout.Token);
            }

            log.WriteLine($"  {calls.Count} calls each sent one {largeMessageBytes}-byte message");
        }

        await SettleAsync();
        var rssAfter = servers.ToDictionary(n => n, before.RssBytes, StringComparer.Ordinal);
        var live = calls.Count - failed;
        await SimulatedExotelCall.StopAllAsync(calls);
        var processes = before.Stop();
        await redis.DeleteAsync(calls);
        await DisposeAllAsync(calls);
        return new ScenarioResult
        {
            Scenario = scenario,
            Calls = live,
            KbPerIdleCall = live == 0 ? null : Math.Round((rssAfter.Values.Sum() - rssBefore.Values.Sum()) / 1024.0 / live, 1),
            KbPerIdleCallByProcess = live == 0 ? null : servers.ToDictionary(n => n, n => Math.Round((rssAfter[n] - rssBefore[n]) / 1024.0 / live, 1), StringComparer.Ordinal),
            Processes = processes,
            FailedCalls = failed,
        };
    }

    /// <summary>N calls at the real cadence for the configured seconds, frames evenly spread over each interval.</summary>
    public Task<ScenarioResult> RealTimeAsync() =>
        RunTrafficAsync("realtime", options.Calls, options.Seconds * 1000 / options.CadenceMs, options.CadenceMs);

    /// <summary>Fewer calls, each sending as fast as the server reads: the throughput ceiling.</summary>
    public Task<ScenarioResult> MaxThroughputAsync() =>
        RunTrafficAsync("max", options.MaxCalls, options.MaxFramesPerCall, cadenceMs: 0);

    private async Task<ScenarioResult> RunTrafficAsync(string scenario, int callCount, int framesPerCall, int cadenceMs)
    {
        var observed = Math.Min(options.ObservedCalls, callCount);
        var calls = CreateCalls(scenario, callCount, observed, framesPerCall);
        var failed = await ConnectAllAsync(calls);

        var driverCommandsBefore = await redis.CommandMicrosecondsAsync();
        var usage = new ProcessUsage(options.Processes);
        var cadenceTicks = cadenceMs * Stopwatch.Frequency / 1000;
        // Real time: the first frames go half a second from now, spread over one interval; flat out: at once.
        var firstDue = Stopwatch.GetTimestamp() + (cadenceMs > 0 ? Stopwatch.Frequency / 2 : 0);
        var sendBudget = TimeSpan.FromSeconds(Math.Max(60, framesPerCall * Math.Max(cadenceMs, 1) / 1000.0 * 3));
        using var sendTimeout = new CancellationTokenSource(sendBudget);
        var sending = 1;
        using var observeTimeout = new CancellationTokenSource(sendBudget + SettleTimeout);
        var observing = redis.ObserveAsync(calls.Take(observed).ToList(), () => Volatile.Read(ref sending) == 0, observeTimeout.Token);

        var sends = calls.Select((call, i) => SendSafelyAsync(call, framesPerCall, firstDue + (cadenceTicks * i / callCount), cadenceTicks, sendTimeout.Token)).ToArray();
        await Task.WhenAll(sends);
        Volatile.Write(ref sending, 0);
        var sent = calls.Sum(c => c.FramesSent);
        var lastReadable = await WaitReadableAsync(calls, sent, firstDue);
        var readable = await redis.CountReadableAsync(calls);
        var latencies = await observing;
        var processes = usage.Stop();
        var driverCommandsAfter = await redis.CommandMicrosecondsAsync();
        await SimulatedExotelCall.StopAllAsync(calls);

        var series = LatencySecond.Series(latencies, firstDue);
        if (series.Count > 0)
        {
            log.WriteLine($"  p99 ms by second: {string.Join(' ', series.Select(s => s.P99Ms.ToString("F0", System.Globalization.CultureInfo.InvariantCulture)))}");
        }

        log.WriteLine($"  verifying {calls.Count} streams...");
        var verification = await redis.VerifyAsync(calls, options);
        var bytesPerEntry = await redis.BytesPerAudioEntryAsync(calls.Take(50).ToList());
        await redis.DeleteAsync(calls);
        var window = Stopwatch.GetElapsedTime(firstDue, lastReadable).TotalSeconds;
        var result = new ScenarioResult
        {
            Scenario = scenario,
            Calls = callCount - failed,
            CadenceMs = cadenceMs,
            SampleRate = options.SampleRate,
            FrameBytes = options.FrameBytes,
            FramesSent = sent,
            FramesReadable = readable,
            WindowSeconds = Math.Round(window, 2),
            FramesPerSecond = window > 0 ? Math.Round(readable / window) : 0,
            MaxSendLagMs = Math.Round(calls.Max(c => c.MaxLagTicks) * 1000.0 / Stopwatch.Frequency, 1),
            ObservedCalls = observed,
            Latency = LatencySummary.From(latencies.Select(l => l.Ms).ToList()),
            LatencyBySecond = series,
            SteadyLatency = LatencySummary.From(latencies.Where(l => l.ReadTicks - firstDue >= 10 * Stopwatch.Frequency).Select(l => l.Ms).ToList()),
            Verification = verification,
            RedisBytesPerAudioEntry = bytesPerEntry,
            Processes = processes,
            RedisDriverCpuSeconds = Math.Round(RedisProbe.DriverCommands.Sum(c => driverCommandsAfter.GetValueOrDefault(c) - driverCommandsBefore.GetValueOrDefault(c)) / 1e6, 2),
            FailedCalls = failed,
        };
        await DisposeAllAsync(calls);
        return result;
    }

    private static async Task SendSafelyAsync(SimulatedExotelCall call, int frames, long firstDue, long cadenceTicks, CancellationToken token)
    {
        try
        {
            await call.SendMediaAsync(frames, firstDue, cadenceTicks, token);
        }
        catch (Exception ex) when (ex is System.Net.WebSockets.WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Counted: FramesSent stops where the socket failed, and the verifier checks exactly those.
        }
    }

    private List<SimulatedExotelCall> CreateCalls(string scenario, int count, int observed, int frames)
    {
        // A scenario may run more than once (--scenarios realtime,realtime: cold, then warm); stream ids never repeat.
        var batch = Interlocked.Increment(ref _batches);
        return Enumerable.Range(0, count)
            .Select(i => new SimulatedExotelCall($"bench-{options.System}-{_runId}-{scenario}{batch}-{i}", options, i < observed ? new long[frames] : null))
            .ToList();
    }

    /// <summary>Connects and starts every call, a bounded number at a time; returns how many failed.</summary>
    private async Task<int> ConnectAllAsync(List<SimulatedExotelCall> calls)
    {
        var failed = 0;
        using var gate = new SemaphoreSlim(options.ConnectConcurrency);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30 + calls.Count / 20));
        var started = Stopwatch.GetTimestamp();
        await Task.WhenAll(calls.Select(async call =>
        {
            await gate.WaitAsync();
            try
            {
                await call.ConnectAndStartAsync(timeout.Token);
            }
            catch (Exception ex) when (ex is System.Net.WebSockets.WebSocketException or OperationCanceledException or System.Net.Http.HttpRequestException)
            {
                Interlocked.Increment(ref failed);
            }
            finally
            {
                gate.Release();
            }
        }));
        log.WriteLine($"  connected {calls.Count - failed}/{calls.Count} calls in {Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s");
        return failed;
    }

    private static async Task DisposeAllAsync(List<SimulatedExotelCall> calls)
    {
        foreach (var call in calls)
        {
            await call.DisposeAsync();
        }
    }

    /// <summary>Polls XLEN until every sent frame is readable (or the settle timeout); returns when the last one was seen.</summary>
    private async Task<long> WaitReadableAsync(List<SimulatedExotelCall> calls, long expected, long since)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(SettleTimeout.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            var readable = await redis.CountReadableAsync(calls);
            var now = Stopwatch.GetTimestamp();
            if (readable >= expected)
            {
                return now;
            }

            await Task.Delay(50);
        }

        log.WriteLine($"  not every frame readable after {SettleTimeout.TotalSeconds} s ({Stopwatch.GetElapsedTime(since).TotalSeconds:F0} s since first send)");
        return Stopwatch.GetTimestamp();
    }

    /// <summary>Lets the servers finish what the previous phase started (GC, activations) before memory is read.</summary>
    private async Task SettleAsync()
    {
        long previous = 0;
        for (var i = 0; i < 20; i++)
        {
            await Task.Delay(500);
            var rss = options.Processes.Where(p => ServerProcesses.Contains(p.Key)).Sum(p => p.Value.Sum(ProcessSampler.RssBytes));
            if (i >= 3 && Math.Abs(rss - previous) < 256 * 1024)
            {
                return;
            }

            previous = rss;
        }
    }
}
