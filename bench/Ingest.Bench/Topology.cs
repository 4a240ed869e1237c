using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Text;
using Ingest.Grains.Interfaces;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using StackExchange.Redis;

namespace Ingest.Bench;

/// <summary>
/// Many gateways and silos, changing under load (issue 13 item 3; bench/topology.sh). Before the calls, SUPPORT_EXOTEL is
/// turned off through the first gateway's admin API and an Exotel upgrade is tried on every gateway until each refuses
/// it, then turned on through the second and tried until each admits one. Then N real-time Exotel calls, spread
/// round-robin over the gateways, run for S seconds while bench/topology.sh changes the silos (it follows the time in
/// <c>--ready-file</c> and appends what it did to <c>--events</c>). Every second the driver lists the live calls through the
/// admin API (<c>GET /v1/admin/calls</c> names each call's silo) and samples the processes' CPU. After the calls stop,
/// Redis is read back: every frame exactly once and in order, one start and one stop per call, no gap entry, and every
/// socket open until the driver's stop.
/// </summary>
public static partial class Topology
{
    private static readonly JsonSerializerOptions WebJson = new(JsonSerializerDefaults.Web);

    public static async Task<int> RunAsync(IReadOnlyList<string> args)
    {
        var o = TopologyOptions.Parse(args);
        var startedUtc = DateTime.UtcNow;
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", MintAdminToken(o.JwtSecret));
        await using var redis = await RedisProbe.ConnectAsync(o.Bench.Redis);
        var cpu = new CpuTracker(o.Bench.Processes);
        cpu.Add("driver", Environment.ProcessId);

        Console.WriteLine($"[topology] flag check through {o.AdminUrls.Count} gateways");
        var flag = await FlagCheckAsync(o, http);
        Console.WriteLine($"  off via {flag.OffVia}: refused after {string.Join(", ", flag.OffObeyedMs.Select(p => $"{p.Key} {Ms(p.Value)}"))}; " +
                          $"on via {flag.OnVia}: admitted after {string.Join(", ", flag.OnObeyedMs.Select(p => $"{p.Key} {Ms(p.Value)}"))}; " +
                          $"refusal reasons {string.Join(", ", flag.RefusalReasons.Select(p => $"{p.Key} {p.Value}"))}");

        var runId = DateTime.UtcNow.ToString("HHmmss", CultureInfo.InvariantCulture);
        var perGateway = o.Urls.Select(u => o.Bench with { Url = u }).ToArray();
        var framesPerCall = o.Bench.Seconds * 1000 / o.Bench.CadenceMs;
        var observed = Math.Min(o.Bench.ObservedCalls, o.Bench.Calls);
        var calls = Enumerable.Range(0, o.Bench.Calls)
            .Select(i => new SimulatedExotelCall($"topo-{runId}-{i}", perGateway[i % perGateway.Length], i < observed ? new long[framesPerCall] : null))
            .ToList();
        var gatewayOf = calls.Select((c, i) => (c.StreamSid, Gateway: GatewayName(i % perGateway.Length))).ToDictionary(p => p.StreamSid, p => p.Gateway, StringComparer.Ordinal);

        var connectFailures = await ConnectAllAsync(calls, o.Bench.ConnectConcurrency);
        var connected = calls.Where(c => !connectFailures.ContainsKey(c.StreamSid)).ToList();
        Console.WriteLine($"[topology] {connected.Count}/{calls.Count} calls connected over {perGateway.Length} gateways; {framesPerCall} frames each at {o.Bench.CadenceMs} ms");

        // The clock the script follows: t=0 is the first frame.
        var cadenceTicks = o.Bench.CadenceMs * Stopwatch.Frequency / 1000;
        var firstDue = Stopwatch.GetTimestamp() + Stopwatch.Frequency;
        var t0 = DateTimeOffset.UtcNow.AddSeconds(1);
        if (o.ReadyFile is not null)
        {
            await File.WriteAllTextAsync(o.ReadyFile, t0.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture));
        }

        var sending = 1;
        using var stopSampling = new CancellationTokenSource();
        var sampler = SampleAsync(o, http, cpu, t0, stopSampling.Token);
        using var observeTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(o.Bench.Seconds + 180));
        var observedCalls = connected.Where(c => c.SendTicks is not null).ToList();
        var perCall = observedCalls.Select(_ => new List<(long ReadTicks, double Ms)>()).ToArray();
        var observing = redis.ObserveAsync(observedCalls, () => Volatile.Read(ref sending) == 0, observeTimeout.Token, (i, ticks, ms) => perCall[i].Add((ticks, ms)));
        var sendErrors = new Dictionary<string, string>(StringComparer.Ordinal);
        using var sendTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(o.Bench.Seconds * 3 + 60));
        await Task.WhenAll(connected.Select((call, i) => SendAsync(call, framesPerCall, firstDue + (cadenceTicks * i / connected.Count), cadenceTicks, sendErrors, sendTimeout.Token)));
        Volatile.Write(ref sending, 0);
        var sendingEnded = DateTimeOffset.UtcNow;
        Console.WriteLine($"[topology] sending ended at t={(sendingEnded - t0).TotalSeconds:F1} s; stopping the calls");
        await SimulatedExotelCall.StopAllAsync(connected);

        // The stop entries come after each call's last frame is confirmed; wait for all of them (bounded).
        var lifecycle = await WaitLifecycleAsync(redis.Database, connected, TimeSpan.FromSeconds(90));
        await stopSampling.CancelAsync();
        var (samples, events) = await sampler;
        var latencies = await observing;

        Console.WriteLine($"[topology] verifying {connected.Count} streams...");
        var checks = await VerifyAsync(redis.Database, connected, o.Bench, lifecycle);
        var observedLatency = observedCalls.Select((c, i) => (c.StreamSid, perCall[i])).ToDictionary(p => p.StreamSid, p => p.Item2, StringComparer.Ordinal);
        var run = Summarise(o, startedUtc, flag, calls, connectFailures, gatewayOf, checks, samples, events, latencies, observedLatency, firstDue, cpu.Used(), t0, sendingEnded);
        var markdown = Render(run);
        Console.WriteLine(markdown);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(o.OutputPath))!);
        await File.WriteAllTextAsync(o.OutputPath, JsonSerializer.Serialize(run, ResultsTable.Json));
        await File.WriteAllTextAsync(Path.ChangeExtension(o.OutputPath, ".md"), markdown);
        Console.WriteLine($"[topology] wrote {o.OutputPath} and {Path.ChangeExtension(o.OutputPath, ".md")}");
        await redis.DeleteAsync(connected);
        foreach (var call in calls)
        {
            await call.DisposeAsync();
        }

        return run.Clean ? 0 : 1;
    }

    private static string GatewayName(int index) => "gateway-" + (char)('a' + index);

    // ---------------------------------------------------------------- the flag, obeyed by every gateway

    private static async Task<FlagCheck> FlagCheckAsync(TopologyOptions o, HttpClient http)
    {
        var names = o.AdminUrls.Select((_, i) => GatewayName(i)).ToArray();
        var offVia = 0;
        var onVia = o.AdminUrls.Count - 1;
        var before = await GetFlagAsync(http, o.AdminUrls[0]);
        var off = await TimeFlipAsync(o, http, offVia, enabled: false, names);
        var reasons = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var g = 0; g < o.AdminUrls.Count; g++)
        {
            reasons[names[g]] = await NewestRefusalAsync(http, o.AdminUrls[g]);
        }

        var on = await TimeFlipAsync(o, http, onVia, enabled: true, names);
        var after = await GetFlagAsync(http, o.AdminUrls[0]);
        var ok = off.Values.All(v => v is not null) && on.Values.All(v => v is not null) && reasons.Values.All(r => r == "exotel_disabled") && after;
        return new FlagCheck(names[offVia], names[onVia], before, after, off, on, reasons, ok);
    }

    /// <summary>Flips the flag through one gateway and tries an Exotel upgrade on every gateway every 50 ms until each obeys (10 s bound).</summary>
    private static async Task<Dictionary<string, double?>> TimeFlipAsync(TopologyOptions o, HttpClient http, int via, bool enabled, string[] names)
    {
        var clock = Stopwatch.StartNew();
        using var put = await http.PutAsync(new Uri(o.AdminUrls[via], "/v1/admin/flags/support-exotel"),
            new StringContent(enabled ? "{\"enabled\":true}" : "{\"enabled\":false}", Encoding.UTF8, "application/json"));
        if (!put.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"PUT /v1/admin/flags/support-exotel through {names[via]} answered {(int)put.StatusCode}: {await put.Content.ReadAsStringAsync()}");
        }

        var result = names.ToDictionary(n => n, _ => (double?)null, StringComparer.Ordinal);
        while (clock.Elapsed < TimeSpan.FromSeconds(10) && result.Values.Any(v => v is null))
        {
            for (var g = 0; g < o.Urls.Count; g++)
            {
                if (result[names[g]] is null && await UpgradeAdmittedAsync(o, o.Urls[g]) == enabled)
                {
                    result[names[g]] = Math.Round(clock.Elapsed.TotalMilliseconds, 1);
                }
            }

            await Task.Delay(50);
        }

        return result;
    }

    /// <summary>One Exotel upgrade (Basic credentials): true when the gateway answers 101, false on 401; closed at once.</summary>
    private static async Task<bool> UpgradeAdmittedAsync(TopologyOptions o, Uri url)
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        socket.Options.SetRequestHeader("Authorization", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(o.Bench.User + ":" + o.Bench.Password)));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await socket.ConnectAsync(url, timeout.Token);
            socket.Abort();
            return true;
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or HttpRequestException)
        {
            return socket.HttpStatusCode == HttpStatusCode.Unauthorized
                ? false
                : throw new InvalidOperationException($"an Exotel upgrade to {url} failed with HTTP {(int)socket.HttpStatusCode}: {ex.Message}", ex);
        }
    }

    private static async Task<bool> GetFlagAsync(HttpClient http, Uri admin)
    {
        using var doc = JsonDocument.Parse(await http.GetStringAsync(new Uri(admin, "/v1/admin/flags")));
        return doc.RootElement.GetProperty("supportExotel").GetBoolean();
    }

    private static async Task<string> NewestRefusalAsync(HttpClient http, Uri admin)
    {
        using var doc = JsonDocument.Parse(await http.GetStringAsync(new Uri(admin, "/v1/admin/refusals")));
        var list = doc.RootElement.ValueKind == JsonValueKind.Array ? doc.RootElement : doc.RootElement.EnumerateObject().First(p => p.Value.ValueKind == JsonValueKind.Array).Value;
        return list.GetArrayLength() == 0 ? "none" : list[0].GetProperty("reason").GetString() ?? "?";
    }

    // ---------------------------------------------------------------- calls

    private static async Task<Dictionary<string, string>> ConnectAllAsync(List<SimulatedExotelCall> calls, int concurrency)
    {
        var failures = new Dictionary<string, string>(StringComparer.Ordinal);
        using var gate = new SemaphoreSlim(concurrency);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30 + calls.Count / 20));
        await Task.WhenAll(calls.Select(async call =>
        {
            await gate.WaitAsync();
            try
            {
                await call.ConnectAndStartAsync(timeout.Token);
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or HttpRequestException)
            {
                lock (failures)
                {
                    failures[call.StreamSid] = ex.Message;
                }
            }
            finally
            {
                gate.Release();
            }
        }));
        return failures;
    }

    private static async Task SendAsync(SimulatedExotelCall call, int frames, long firstDue, long cadenceTicks, Dictionary<string, string> errors, CancellationToken token)
    {
        try
        {
            await call.SendMediaAsync(frames, firstDue, cadenceTicks, token);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException or IOException)
        {
            lock (errors)
            {
                errors[call.StreamSid] = $"send failed after {call.FramesSent} frames: {ex.Message}";
            }
        }
    }

    // ---------------------------------------------------------------- where the calls are, while the silos change

    /// <summary>Every second: the live calls by silo (admin API, first gateway, the next on failure), the script's new events, CPU.</summary>
    private static async Task<(List<Sample> Samples, List<TopologyEvent> Events)> SampleAsync(TopologyOptions o, HttpClient http, CpuTracker cpu, DateTimeOffset t0, CancellationToken stop)
    {
        var samples = new List<Sample>();
        var events = new List<TopologyEvent>();
        var eventLines = 0;
        while (!stop.IsCancellationRequested)
        {
            var began = DateTimeOffset.UtcNow;
            if (o.EventsFile is not null && File.Exists(o.EventsFile))
            {
                var lines = await File.ReadAllLinesAsync(o.EventsFile, CancellationToken.None);
                for (; eventLines < lines.Length; eventLines++)
                {
                    var parts = lines[eventLines].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length < 3)
                    {
                        continue;
                    }

                    var at = DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(parts[0], CultureInfo.InvariantCulture));
                    events.Add(new TopologyEvent(parts[1], parts[2], Math.Round((at - t0).TotalSeconds, 2)));
                    if (parts[1] == "add" && parts.Length >= 4)
                    {
                        cpu.Add(parts[2], int.Parse(parts[3], CultureInfo.InvariantCulture));
                    }
                }
            }

            cpu.Sample();
            samples.Add(await ListCallsAsync(o, http, t0, began));
            var wait = TimeSpan.FromSeconds(1) - (DateTimeOffset.UtcNow - began);
            try
            {
                await Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero, stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        cpu.Sample();
        return (samples, events);
    }

    private static async Task<Sample> ListCallsAsync(TopologyOptions o, HttpClient http, DateTimeOffset t0, DateTimeOffset began)
    {
        var errors = new List<string>();
        foreach (var admin in o.AdminUrls)
        {
            try
            {
                using var response = await http.GetAsync(new Uri(admin, "/v1/admin/calls"));
                if (!response.IsSuccessStatusCode)
                {
                    errors.Add($"{admin.Port}: HTTP {(int)response.StatusCode}");
                    continue;
                }

                var views = JsonSerializer.Deserialize<List<CallViewDto>>(await response.Content.ReadAsStringAsync(), WebJson) ?? [];
                var mine = views.Where(v => v.StreamId?.StartsWith("topo-", StringComparison.Ordinal) == true).ToList();
                var bySilo = mine.GroupBy(v => o.SiloName(v.Silo)).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
                var where = mine.GroupBy(v => v.StreamId!, StringComparer.Ordinal).ToDictionary(g => g.Key, g => o.SiloName(g.First().Silo), StringComparer.Ordinal);
                return new Sample(Math.Round((began - t0).TotalSeconds, 2), Math.Round((DateTimeOffset.UtcNow - began).TotalMilliseconds), mine.Count, bySilo, null) { Where = where };
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException)
            {
                errors.Add($"{admin.Port}: {ex.GetType().Name}");
            }
        }

        return new Sample(Math.Round((began - t0).TotalSeconds, 2), Math.Round((DateTimeOffset.UtcNow - began).TotalMilliseconds), 0, [], string.Join("; ", errors));
    }

    private sealed record CallViewDto([property: System.Text.Json.Serialization.JsonPropertyName("stream_id")] string? StreamId, string? Silo, long Frames);

    // ---------------------------------------------------------------- what landed in Redis

    private sealed class Lifecycle
    {
        public int Starts { get; set; }

        public int Stops { get; set; }

        public string? StopReason { get; set; }

        public long? StopFrames { get; set; }

        public List<Gap> Gaps { get; } = [];
    }

    private static async Task<Dictionary<string, Lifecycle>> WaitLifecycleAsync(IDatabase db, List<SimulatedExotelCall> calls, TimeSpan bound)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var life = await ReadLifecycleAsync(db, calls);
            if (life.Values.All(l => l.Stops > 0) || clock.Elapsed > bound)
            {
                // A second read a moment later catches a stop written twice just after the first.
                await Task.Delay(1000);
                return await ReadLifecycleAsync(db, calls);
            }

            await Task.Delay(500);
        }
    }

    private static async Task<Dictionary<string, Lifecycle>> ReadLifecycleAsync(IDatabase db, List<SimulatedExotelCall> calls)
    {
        var result = calls.ToDictionary(c => c.StreamSid, _ => new Lifecycle(), StringComparer.Ordinal);
        RedisValue from = "-";
        while (true)
        {
            var page = await db.StreamRangeAsync(StreamKeys.Calls, from, "+", 2000);
            foreach (var entry in page)
            {
                if ((string?)entry["stream_id"] is not { } id || !result.TryGetValue(id, out var life))
                {
                    continue;
                }

                switch ((string?)entry["event"])
                {
                    case "start":
                        life.Starts++;
                        break;
                    case "stop":
                        life.Stops++;
                        life.StopReason = (string?)entry["reason"];
                        life.StopFrames = entry["frames"].IsNull ? null : (long)entry["frames"];
                        break;
                    case "gap":
                        life.Gaps.Add(new Gap((long)entry["from_seq"], (long)entry["to_seq"], (string?)entry["reason"] ?? "?", (long)entry["missing"]));
                        break;
                }
            }

            if (page.Length < 2000)
            {
                return result;
            }

            from = "(" + page[^1].Id;
        }
    }

    private static async Task<List<CallCheck>> VerifyAsync(IDatabase db, List<SimulatedExotelCall> calls, BenchOptions options, Dictionary<string, Lifecycle> lifecycle)
    {
        var checks = new List<CallCheck>();
        using var gate = new SemaphoreSlim(16);
        await Task.WhenAll(calls.Select(async call =>
        {
            await gate.WaitAsync();
            try
            {
                var expected = SimulatedExotelCall.LandedAudioOf(call.StreamSid, options);
                var count = new int[call.FramesSent];
                var reordered = new List<long>();
                var corrupt = new List<long>();
                long previous = 1, landed = 0;
                RedisValue from = "-";
                while (true)
                {
                    var page = await db.StreamRangeAsync(RedisProbe.AudioKey(call.StreamSid), from, "+", 1000);
                    foreach (var entry in page)
                    {
                        landed++;
                        var seq = (long)entry["seq"];
                        if (seq < previous)
                        {
                            reordered.Add(seq);
                        }

                        previous = seq;
                        if (seq < 2 || seq - 2 >= count.Length || !((byte[])entry["audio"]!).AsSpan().SequenceEqual(expected))
                        {
                            corrupt.Add(seq);
                        }
                        else
                        {
                            count[seq - 2]++;
                        }
                    }

                    if (page.Length < 1000)
                    {
                        break;
                    }

                    from = "(" + page[^1].Id;
                }

                // seq = index + 2 (start is 1).
                var lost = Ranges(Enumerable.Range(0, count.Length).Where(i => count[i] == 0).Select(i => (long)i + 2));
                var doubled = Ranges(Enumerable.Range(0, count.Length).Where(i => count[i] > 1).Select(i => (long)i + 2));
                var life = lifecycle[call.StreamSid];
                var check = new CallCheck(call.StreamSid, call.FramesSent, landed, lost.Sum(r => r.To - r.From + 1), doubled.Sum(r => r.To - r.From + 1),
                    lost, doubled, reordered.Take(20).ToList(), corrupt.Take(20).ToList(), life.Starts, life.Stops, life.StopReason, life.StopFrames,
                    life.Gaps, call.EarlyClose, call.EarlyCloseAt, call.CloseAfterStop);
                lock (checks)
                {
                    checks.Add(check);
                }
            }
            finally
            {
                gate.Release();
            }
        }));
        return checks.OrderBy(c => c.StreamId, StringComparer.Ordinal).ToList();
    }

    private static List<SeqRange> Ranges(IEnumerable<long> seqs)
    {
        var ranges = new List<SeqRange>();
        foreach (var s in seqs)
        {
            if (ranges.Count > 0 && ranges[^1].To == s - 1)
            {
                ranges[^1] = ranges[^1] with { To = s };
            }
            else
            {
                ranges.Add(new SeqRange(s, s));
            }
        }

        return ranges;
    }

    // ---------------------------------------------------------------- the report

    private static TopologyRun Summarise(
        TopologyOptions o, DateTime startedUtc, FlagCheck flag, List<SimulatedExotelCall> calls, Dictionary<string, string> connectFailures,
        Dictionary<string, string> gatewayOf, List<CallCheck> checks, List<Sample> samples, List<TopologyEvent> events,
        List<(long ReadTicks, double Ms)> latencies, Dictionary<string, List<(long ReadTicks, double Ms)>> observedLatency, long firstDue,
        Dictionary<string, double> cpu, DateTimeOffset t0, DateTimeOffset sendingEnded)
    {
        // Calls per silo at the points the issue asks for: the last sample before each silo event, and the first one
        // after it in which every call is listed again on a silo that is still up ("settled").
        var points = new List<TopologyPoint>();
        var gone = new HashSet<string>(StringComparer.Ordinal);
        var first = samples.FirstOrDefault(s => s.Error is null && s.AtSeconds >= 0);
        if (first is not null)
        {
            points.Add(new TopologyPoint("start of calls", null, first.AtSeconds, first.BySilo, first.Total, null));
        }

        var series = LatencySecond.Series(latencies, firstDue);
        var silos = events.Where(e => e.Name is "add" or "sigterm" or "kill").ToList();
        for (var k = 0; k < silos.Count; k++)
        {
            var e = silos[k];
            var windowEnd = Math.Min(k + 1 < silos.Count ? silos[k + 1].AtSeconds : double.MaxValue, e.AtSeconds + 15);
            if (e.Name is "sigterm" or "kill")
            {
                gone.Add(e.Silo);
            }

            // A listing may miss calls whose grain did not answer within its 2 s (a silo busy joining or leaving): the
            // point before an event is the last complete one.
            var before = samples.LastOrDefault(s => s.Error is null && s.AtSeconds <= e.AtSeconds && s.Total >= checks.Count)
                         ?? samples.LastOrDefault(s => s.Error is null && s.AtSeconds <= e.AtSeconds);
            var settled = samples.FirstOrDefault(s => s.Error is null && s.AtSeconds > e.AtSeconds && s.Total >= checks.Count && !s.BySilo.Keys.Any(gone.Contains));
            // The worst send→readable latency from the event until the next one (at most 15 s): how long frames waited while calls moved.
            var stall = series.Where(s => s.Second >= (int)e.AtSeconds && s.Second < Math.Max((int)e.AtSeconds + 1, (int)Math.Min(windowEnd, 1e6))).Select(s => s.MaxMs).DefaultIfEmpty(double.NaN).Max();
            var onSilo = before?.BySilo.GetValueOrDefault(e.Silo) ?? 0;

            // The calls the event moved: those listed on the silo just before it. For each that is observed, the worst
            // send→readable latency of its frames from the event until the next one is how long its audio waited to move.
            var fromTicks = firstDue + (long)(e.AtSeconds * Stopwatch.Frequency);
            var toTicks = firstDue + (long)(Math.Min(windowEnd, 1e6) * Stopwatch.Frequency);
            double WorstIn(string call) => observedLatency[call].Where(l => l.ReadTicks >= fromTicks && l.ReadTicks < toTicks).Select(l => l.Ms).DefaultIfEmpty(double.NaN).Max();
            var waits = (before?.Where ?? []).Where(p => p.Value == e.Silo && observedLatency.ContainsKey(p.Key))
                .Select(p => WorstIn(p.Key))
                .Where(ms => !double.IsNaN(ms))
                .ToList();
            // The calls the event must not disturb: observed calls listed on another silo before it and on that same
            // silo once it settled. Their worst send→readable latency over the same window.
            var others = (before?.Where ?? [])
                .Where(p => p.Value != e.Silo && observedLatency.ContainsKey(p.Key) && settled?.Where?.GetValueOrDefault(p.Key) == p.Value)
                .Select(p => WorstIn(p.Key))
                .Where(ms => !double.IsNaN(ms))
                .ToList();
            if (before is not null)
            {
                points.Add(new TopologyPoint($"before {e.Name} {e.Silo}", null, before.AtSeconds, before.BySilo, before.Total, null));
            }

            points.Add(new TopologyPoint(
                $"after {e.Name} {e.Silo}", e.Name, settled?.AtSeconds ?? double.NaN, settled?.BySilo ?? [], settled?.Total ?? 0,
                settled is null ? null : Math.Round(settled.AtSeconds - e.AtSeconds, 2))
            {
                CallsOnSiloBefore = onSilo,
                MaxLatencyMsUntilNextEvent = stall,
                MovedCallsObserved = waits.Count,
                MovedCallWaitMs = waits.Count == 0 ? null : LatencySummary.From(waits),
                OtherCallsObserved = others.Count,
                OtherCallWaitMs = others.Count == 0 ? null : LatencySummary.From(others),
            });
        }

        var last = samples.LastOrDefault(s => s.Error is null && s.AtSeconds <= (sendingEnded - t0).TotalSeconds);
        if (last is not null)
        {
            points.Add(new TopologyPoint("end of sending", null, last.AtSeconds, last.BySilo, last.Total, null));
        }

        // Which silo each call was listed on, sample by sample: how many calls moved from where to where, by the silo
        // event they followed (a move is counted in the first sample that lists the call on its new silo).
        var moves = new Dictionary<string, Dictionary<string, int>>(StringComparer.Ordinal);
        var moveList = new List<CallMove>();
        var lastSilo = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var s in samples.Where(s => s.Where is not null))
        {
            var after = silos.LastOrDefault(e => e.AtSeconds <= s.AtSeconds) is { } ev ? $"after {ev.Name} {ev.Silo}" : "before any event";
            foreach (var (id, silo) in s.Where!)
            {
                if (lastSilo.TryGetValue(id, out var was) && was != silo)
                {
                    var byPair = moves.TryGetValue(after, out var m) ? m : moves[after] = new Dictionary<string, int>(StringComparer.Ordinal);
                    var key = $"{was} -> {silo}";
                    byPair[key] = byPair.GetValueOrDefault(key) + 1;
                    moveList.Add(new CallMove(id, was, silo, s.AtSeconds, silos.Any(e => e.Silo == was && e.Name != "add" && e.AtSeconds <= s.AtSeconds)));
                }

                lastSilo[id] = silo;
            }
        }

        // Calls that moved off a silo that stayed up: did their frames stall like the moved calls of a failed silo? Each
        // observed one's worst send→readable latency from 2 s before the listing that first showed it elsewhere to 1 s after.
        var strayWaits = moveList.Where(m => !m.FromSiloGone && observedLatency.ContainsKey(m.StreamId))
            .Select(m =>
            {
                var from = firstDue + (long)((m.SeenAtSeconds - 2) * Stopwatch.Frequency);
                var to = firstDue + (long)((m.SeenAtSeconds + 1) * Stopwatch.Frequency);
                return observedLatency[m.StreamId].Where(l => l.ReadTicks >= from && l.ReadTicks < to).Select(l => l.Ms).DefaultIfEmpty(double.NaN).Max();
            })
            .Where(ms => !double.IsNaN(ms))
            .ToList();

        var problems = new List<string>();
        foreach (var (id, why) in connectFailures)
        {
            problems.Add($"{id} ({gatewayOf[id]}): did not connect: {why}");
        }

        // A silo the script added must have joined: a run whose added silo never did measures another topology.
        foreach (var added in events.Where(e => e.Name == "add" && !events.Any(r => r.Name == "ready" && r.Silo == e.Silo)))
        {
            problems.Add($"silo {added.Silo} added at t={added.AtSeconds:F1} s never became ready (see its log)");
        }

        foreach (var c in checks)
        {
            var at = $"{c.StreamId} ({gatewayOf[c.StreamId]}, last on {lastSilo.GetValueOrDefault(c.StreamId, "?")})";
            if (c.Lost > 0)
            {
                problems.Add($"{at}: {c.Lost} frames lost, seq {string.Join(", ", c.LostSeqs.Take(10).Select(r => r.ToString()))}{EventNear(c.LostSeqs, events, o.Bench.CadenceMs)}");
            }

            if (c.Doubled > 0)
            {
                problems.Add($"{at}: {c.Doubled} frames doubled, seq {string.Join(", ", c.DoubledSeqs.Take(10).Select(r => r.ToString()))}{EventNear(c.DoubledSeqs, events, o.Bench.CadenceMs)}");
            }

            if (c.OutOfOrder.Count > 0 || c.Corrupt.Count > 0)
            {
                problems.Add($"{at}: out of order at seq {string.Join(",", c.OutOfOrder)}; corrupt or unexpected seq {string.Join(",", c.Corrupt)}");
            }

            if (c.Starts != 1 || c.Stops != 1)
            {
                problems.Add($"{at}: {c.Starts} start and {c.Stops} stop entries in ingest:calls");
            }

            if (c.StopFrames is { } f && f != c.FramesSent)
            {
                problems.Add($"{at}: stop entry says frames={f}, {c.FramesSent} were sent (reason {c.StopReason})");
            }

            if (c.Gaps.Count > 0)
            {
                problems.Add($"{at}: gap entries {string.Join("; ", c.Gaps.Take(5).Select(g => $"{g.From}..{g.To} {g.Reason}"))}");
            }

            if (c.EarlyClose is not null)
            {
                problems.Add($"{at}: socket closed before the driver's stop at t={(c.EarlyCloseAt!.Value - t0).TotalSeconds:F1} s: {c.EarlyClose} (after {c.FramesSent} frames)");
            }
            else if (c.CloseAfterStop is not { } close || !close.StartsWith("1000", StringComparison.Ordinal))
            {
                problems.Add($"{at}: after stop the socket ended with '{c.CloseAfterStop ?? "nothing"}', not a normal close");
            }
        }

        var machine = $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}";
        return new TopologyRun(
            machine, startedUtc, o.RedisKind, o.Bench.Calls, o.Bench.Seconds, o.Bench.CadenceMs, o.Urls.Count, o.Silos.Keys.ToList(), flag,
            calls.Count - connectFailures.Count,
            gatewayOf.Where(p => !connectFailures.ContainsKey(p.Key)).GroupBy(p => p.Value).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal),
            checks.Sum(c => c.FramesSent), checks.Sum(c => c.Landed), checks.Sum(c => c.Lost), checks.Sum(c => c.Doubled),
            checks.Sum(c => c.OutOfOrder.Count), checks.Sum(c => c.Corrupt.Count), checks.Sum(c => c.Gaps.Count),
            checks.Count(c => c.Starts == 1 && c.Stops == 1), checks.Count(c => c.EarlyClose is not null),
            checks.Count(c => c.EarlyClose is null && c.CloseAfterStop?.StartsWith("1000", StringComparison.Ordinal) == true),
            checks.GroupBy(c => c.StopReason ?? "none").ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal),
            events, points, moves, moveList, strayWaits.Count == 0 ? null : LatencySummary.From(strayWaits), strayWaits.Count, problems, cpu,
            LatencySummary.From(latencies.Select(l => l.Ms).ToList()), series, samples,
            problems.Count == 0 && flag.Ok);
    }

    /// <summary>The silo event nearest before the time a seq was due, so a loss or a double names what caused it.</summary>
    private static string EventNear(List<SeqRange> ranges, List<TopologyEvent> events, int cadenceMs)
    {
        if (ranges.Count == 0)
        {
            return string.Empty;
        }

        var dueSeconds = (ranges[0].From - 2) * cadenceMs / 1000.0;
        var e = events.LastOrDefault(e => e.AtSeconds <= dueSeconds + 1);
        return string.Create(CultureInfo.InvariantCulture, $" (first due at t={dueSeconds:F1} s{(e is null ? string.Empty : $", after {e.Name} {e.Silo} at t={e.AtSeconds:F1} s")})");
    }

    public static string Render(TopologyRun r)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"topology: {r.Gateways} gateways, silos {string.Join(", ", r.Silos)}, {r.RedisKind}; {r.Calls} Exotel calls at {r.CadenceMs} ms for {r.Seconds} s ({r.Machine})");
        sb.AppendLine();
        var f = r.Flag;
        sb.AppendLine(CultureInfo.InvariantCulture, $"SUPPORT_EXOTEL: off through {f.OffVia}, a new Exotel upgrade refused by {string.Join(", ", f.OffObeyedMs.Select(p => $"{p.Key} after {Ms(p.Value)}"))} " +
                                                    $"(newest refusal: {string.Join(", ", f.RefusalReasons.Select(p => $"{p.Key} {p.Value}"))}); on through {f.OnVia}, admitted by {string.Join(", ", f.OnObeyedMs.Select(p => $"{p.Key} after {Ms(p.Value)}"))}: **{(f.Ok ? "obeyed by every gateway" : "NOT obeyed")}**");
        sb.AppendLine();
        sb.AppendLine("| calls connected (per gateway) | frames sent | landed | lost | doubled | out of order | corrupt | gap entries | calls with 1 start + 1 stop | sockets closed before stop | normal close after stop | stop reasons |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"| {r.Connected} ({string.Join(", ", r.CallsPerGateway.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}"))}) | {r.FramesSent:N0} | {r.FramesLanded:N0} | {r.FramesLost:N0} | {r.FramesDoubled:N0} | {r.OutOfOrder} | {r.Corrupt} | {r.GapEntries} | {r.CallsWithOneStartOneStop} | {r.SocketsClosedEarly} | {r.NormalCloses} | {string.Join(", ", r.StopReasons.Select(p => $"{p.Key} {p.Value}"))} |");
        sb.AppendLine();
        var silos = r.Points.SelectMany(p => p.BySilo.Keys).Distinct(StringComparer.Ordinal).OrderBy(s => s, StringComparer.Ordinal).ToList();
        sb.AppendLine(CultureInfo.InvariantCulture, $"| point | t (s) | calls listed | {string.Join(" | ", silos)} | calls on the silo before | all calls listed on live silos after (s) | max send→readable ms until the next event (≤ 15 s), all observed calls | the same for the observed calls of that silo: p50 / max of each call's worst (calls) | the same for the observed calls that stayed on other silos |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"|---|---:|---:|{string.Concat(silos.Select(_ => "---:|"))}---:|---:|---:|---|---|");
        foreach (var p in r.Points)
        {
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| {p.Label} | {Num(p.AtSeconds)} | {p.Total} | {string.Join(" | ", silos.Select(s => p.BySilo.GetValueOrDefault(s).ToString(CultureInfo.InvariantCulture)))} | {(p.CallsOnSiloBefore is { } b ? b.ToString(CultureInfo.InvariantCulture) : "")} | {(p.Event is null ? "" : p.SettledAfterSeconds is { } s ? Num(s) : "never")} | {(p.MaxLatencyMsUntilNextEvent is { } m ? Num(m) : "")} | {(p.MovedCallWaitMs is { } w ? $"{Num(w.P50Ms)} / {Num(w.MaxMs)} ({p.MovedCallsObserved})" : "")} | {(p.OtherCallWaitMs is { } x ? $"{Num(x.P50Ms)} / {Num(x.MaxMs)} ({p.OtherCallsObserved})" : "")} |");
        }

        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"events (t from the first frame): {string.Join("; ", r.Events.Select(e => $"{e.Name} {e.Silo} at {Num(e.AtSeconds)} s"))}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"calls that moved (silo listed in one sample, another in a later one): {(r.Moves.Count == 0 ? "none" : string.Join("; ", r.Moves.Select(m => $"{m.Key}: {string.Join(", ", m.Value.Select(p => $"{p.Key} {p.Value}"))}")))}");
        var stray = r.MoveList.Where(m => !m.FromSiloGone).ToList();
        var strayWait = r.StrayMoveWaitMs is { } sw
            ? string.Create(CultureInfo.InvariantCulture, $"; their frames around the move (observed calls: {r.StrayMovesObserved}): worst send→readable p50 {Num(sw.P50Ms)} ms, max {Num(sw.MaxMs)} ms")
            : string.Empty;
        sb.AppendLine(CultureInfo.InvariantCulture, $"calls that moved off a silo that was still up: {stray.Count}{(stray.Count == 0 ? "" : $" (e.g. {string.Join(", ", stray.Take(5).Select(m => $"{m.StreamId} {m.From}->{m.To} seen at t={Num(m.SeenAtSeconds)} s"))})")}{strayWait}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"send→readable ms of the observed calls: p50 {ResultsTable.Ms(r.Latency.P50Ms)}, p99 {ResultsTable.Ms(r.Latency.P99Ms)}, max {ResultsTable.Ms(r.Latency.MaxMs)}; max by second: {string.Join(' ', r.LatencyBySecond.Select(s => s.MaxMs.ToString("F0", CultureInfo.InvariantCulture)))}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"CPU s over the run: {string.Join(", ", r.CpuSeconds.Select(p => $"{p.Key} {p.Value:0.0}"))}");
        var failed = r.Samples.Where(s => s.Error is not null).ToList();
        sb.AppendLine(CultureInfo.InvariantCulture, $"admin samples: {r.Samples.Count}, {failed.Count} unanswered{(failed.Count == 0 ? "" : $" (at t={string.Join(",", failed.Select(s => Num(s.AtSeconds)))}: {failed[0].Error})")}, slowest {r.Samples.Select(s => s.Ms).DefaultIfEmpty().Max():0} ms");
        sb.AppendLine();
        sb.AppendLine(r.Problems.Count == 0 ? "problems: none" : $"problems ({r.Problems.Count}):");
        foreach (var p in r.Problems.Take(100))
        {
            sb.AppendLine("- " + p);
        }

        return sb.ToString();
    }

    private static string Ms(double? ms) => ms is { } v ? v.ToString("0", CultureInfo.InvariantCulture) + " ms" : "NEVER (10 s)";

    private static string Num(double v) => double.IsNaN(v) ? "-" : v.ToString("0.#", CultureInfo.InvariantCulture);

    private static string MintAdminToken(string secret) =>
        new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Claims = new Dictionary<string, object> { ["sub"] = "bench-topology", ["role"] = "admin" },
            NotBefore = DateTime.UtcNow.AddMinutes(-1),
            IssuedAt = DateTime.UtcNow.AddMinutes(-1),
            Expires = DateTime.UtcNow.AddMinutes(40),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)), SecurityAlgorithms.HmacSha256),
        });
}

/// <summary>CPU seconds of processes that may die during the run: each is read every second, the last reading counts.</summary>
public sealed class CpuTracker
{
    private readonly Dictionary<string, List<int>> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<int, (double First, double Last)> _cpu = [];

    public CpuTracker(IReadOnlyDictionary<string, int[]> processes)
    {
        foreach (var (name, pids) in processes)
        {
            foreach (var pid in pids)
            {
                Add(name, pid);
            }
        }
    }

    public void Add(string name, int pid)
    {
        lock (_cpu)
        {
            if (!_names.TryGetValue(name, out var list))
            {
                _names[name] = list = [];
            }

            list.Add(pid);
            Read(pid);
        }
    }

    public void Sample()
    {
        lock (_cpu)
        {
            foreach (var pid in _names.Values.SelectMany(p => p))
            {
                Read(pid);
            }
        }
    }

    public Dictionary<string, double> Used()
    {
        lock (_cpu)
        {
            return _names.ToDictionary(n => n.Key, n => Math.Round(n.Value.Where(_cpu.ContainsKey).Sum(p => _cpu[p].Last - _cpu[p].First), 1), StringComparer.Ordinal);
        }
    }

    private void Read(int pid)
    {
        try
        {
            var now = ProcessSampler.CpuSeconds(pid);
            _cpu[pid] = _cpu.TryGetValue(pid, out var seen) ? (seen.First, now) : (now, now);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
            // Gone (SIGTERM, kill -9): its last reading stands.
        }
    }
}

public sealed partial record TopologyOptions
{
    public BenchOptions Bench { get; init; } = new() { Calls = 500, Seconds = 60, ObservedCalls = 100 };

    public IReadOnlyList<Uri> Urls { get; init; } = [];

    public IReadOnlyList<Uri> AdminUrls { get; init; } = [];

    public string JwtSecret { get; init; } = string.Empty;

    /// <summary>Silo name by its SILO_PORT, to name the silo a call is listed on (the admin API gives its Orleans address).</summary>
    public IReadOnlyDictionary<string, int> Silos { get; init; } = new Dictionary<string, int>();

    public string RedisKind { get; init; } = "one Redis node";

    public string? EventsFile { get; init; }

    public string? ReadyFile { get; init; }

    public string OutputPath { get; init; } = "bench/results/topology.json";

    public string SiloName(string? address)
    {
        // Orleans silo addresses print as S127.0.0.1:11111:123456789 (ip:port:generation).
        var match = address is null ? null : SiloPort().Match(address);
        if (match is { Success: true } && int.TryParse(match.Groups[1].Value, CultureInfo.InvariantCulture, out var port))
        {
            var name = Silos.FirstOrDefault(s => s.Value == port).Key;
            if (name is not null)
            {
                return name;
            }
        }

        return address ?? "?";
    }

    [GeneratedRegex(@":(\d+)[:@]")]
    private static partial Regex SiloPort();

    public static TopologyOptions Parse(IReadOnlyList<string> args)
    {
        var o = new TopologyOptions();
        var rest = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{name} needs a value");
            switch (name)
            {
                case "--urls":
                    o = o with { Urls = Value().Split(',', StringSplitOptions.RemoveEmptyEntries).Select(u => new Uri(u)).ToList() };
                    break;
                case "--admin":
                    o = o with { AdminUrls = Value().Split(',', StringSplitOptions.RemoveEmptyEntries).Select(u => new Uri(u)).ToList() };
                    break;
                case "--jwt-secret":
                    o = o with { JwtSecret = Value() };
                    break;
                case "--silos":
                    o = o with
                    {
                        Silos = Value().Split(',', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=', 2))
                            .ToDictionary(p => p[0], p => int.Parse(p[1], CultureInfo.InvariantCulture), StringComparer.Ordinal),
                    };
                    break;
                case "--redis-kind":
                    o = o with { RedisKind = Value() };
                    break;
                case "--events":
                    o = o with { EventsFile = Value() };
                    break;
                case "--ready-file":
                    o = o with { ReadyFile = Value() };
                    break;
                case "--out":
                    o = o with { OutputPath = Value() };
                    break;
                default:
                    rest.Add(name);
                    if (i + 1 < args.Count)
                    {
                        rest.Add(args[++i]);
                    }

                    break;
            }
        }

        // The rest are the run command's options (--calls, --seconds, --cadence-ms, --user, --pass, --redis, --pids, --observe).
        var defaults = new List<string> { "--calls", "500", "--seconds", "60", "--observe", "100" };
        var bench = BenchOptions.Parse([.. defaults, .. rest]);
        o = o with { Bench = bench };
        if (o.Urls.Count < 1 || o.AdminUrls.Count != o.Urls.Count || Encoding.UTF8.GetByteCount(o.JwtSecret) < 32)
        {
            throw new ArgumentException("--urls ws://..,ws://.. and --admin http://..,http://.. (one per gateway), --jwt-secret of at least 32 bytes");
        }

        return o;
    }
}

public sealed record FlagCheck(
    string OffVia, string OnVia, bool EnabledBefore, bool EnabledAfter,
    Dictionary<string, double?> OffObeyedMs, Dictionary<string, double?> OnObeyedMs, Dictionary<string, string> RefusalReasons, bool Ok);

public sealed record TopologyEvent(string Name, string Silo, double AtSeconds);

/// <summary>A call listed on one silo and later on another; <paramref name="FromSiloGone"/> false means it left a silo that was still up.</summary>
public sealed record CallMove(string StreamId, string From, string To, double SeenAtSeconds, bool FromSiloGone);

public sealed record Sample(double AtSeconds, double Ms, int Total, Dictionary<string, int> BySilo, string? Error)
{
    [System.Text.Json.Serialization.JsonIgnore]
    public Dictionary<string, string>? Where { get; init; }
}

public sealed record TopologyPoint(string Label, string? Event, double AtSeconds, Dictionary<string, int> BySilo, int Total, double? SettledAfterSeconds)
{
    public int? CallsOnSiloBefore { get; init; }

    public double? MaxLatencyMsUntilNextEvent { get; init; }

    /// <summary>Observed calls that were on the silo just before the event.</summary>
    public int MovedCallsObserved { get; init; }

    /// <summary>Over those calls: each one's worst send→readable latency from the event until the next (how long its frames waited).</summary>
    public LatencySummary? MovedCallWaitMs { get; init; }

    /// <summary>Observed calls on other silos that stayed where they were.</summary>
    public int OtherCallsObserved { get; init; }

    /// <summary>Each such call's worst send→readable latency from the event until the next one: what the event cost the calls it should not touch.</summary>
    public LatencySummary? OtherCallWaitMs { get; init; }
}

public sealed record SeqRange(long From, long To)
{
    public override string ToString() => From == To ? From.ToString(CultureInfo.InvariantCulture) : $"{From}..{To}";
}

public sealed record CallCheck(
    string StreamId, long FramesSent, long Landed, long Lost, long Doubled, List<SeqRange> LostSeqs, List<SeqRange> DoubledSeqs,
    List<long> OutOfOrder, List<long> Corrupt, int Starts, int Stops, string? StopReason, long? StopFrames, List<Gap> Gaps,
    string? EarlyClose, DateTimeOffset? EarlyCloseAt, string? CloseAfterStop);

public sealed record TopologyRun(
    string Machine, DateTime StartedUtc, string RedisKind, int Calls, int Seconds, int CadenceMs, int Gateways, List<string> Silos,
    FlagCheck Flag, int Connected, Dictionary<string, int> CallsPerGateway,
    long FramesSent, long FramesLanded, long FramesLost, long FramesDoubled, long OutOfOrder, long Corrupt, long GapEntries,
    int CallsWithOneStartOneStop, int SocketsClosedEarly, int NormalCloses, Dictionary<string, int> StopReasons,
    List<TopologyEvent> Events, List<TopologyPoint> Points, Dictionary<string, Dictionary<string, int>> Moves, List<CallMove> MoveList,
    LatencySummary? StrayMoveWaitMs, int StrayMovesObserved, List<string> Problems,
    Dictionary<string, double> CpuSeconds, LatencySummary Latency, List<LatencySecond> LatencyBySecond, List<Sample> Samples, bool Clean);
