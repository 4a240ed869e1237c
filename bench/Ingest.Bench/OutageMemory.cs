using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using System.Text.Json;
using System.Text;
using Ingest.Grains.Interfaces;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using StackExchange.Redis;

namespace Ingest.Bench;

/// <summary>
/// Memory through a Redis outage (issue 10 item 5, CONTRACT §7 "memory is bounded in bytes"): a few native calls send
/// large binary frames flat out while bench/outage-memory.sh takes Redis away (SIGSTOP or SHUTDOWN) for a while; the
/// gateway's and silo's RSS is sampled every 200 ms, and afterwards every frame sent is accounted for: published in
/// <c>ingest:audio:{id}</c> (in order, once) or covered by a <c>gap</c> entry in <c>ingest:calls</c>.
/// The driver does not touch Redis's process: it starts its calls, writes <c>--ready-file</c>, and keeps sending for
/// pre + outage + post seconds; the script, which owns Redis, follows the same timetable from that file.
/// A consumer of its own reads the audio streams as they grow and trims what it has read (XTRIM MINID), so Redis
/// itself stays small while gigabytes pass through it.
/// </summary>
public static class OutageMemory
{
    public static async Task<int> RunAsync(IReadOnlyList<string> args)
    {
        var o = OutageOptions.Parse(args);
        var stamp = DateTime.UtcNow.ToString("HHmmss", CultureInfo.InvariantCulture);
        var ids = Enumerable.Range(1, o.Calls).Select(i => $"outage-{o.Variant}-{stamp}-{i}").ToArray();
        var token = MintToken(o.JwtSecret);

        var sampler = new RssSampler(o.Processes);
        sampler.Start();

        var consumer = await AudioConsumer.ConnectAsync(o.Redis, ids, o.FrameBytes);
        var consuming = consumer.RunAsync();

        var calls = ids.Select(id => new NativeCall(id, o, token)).ToArray();
        foreach (var call in calls)
        {
            await call.ConnectAndStartAsync();
        }

        var clock = Stopwatch.StartNew();
        if (o.ReadyFile is not null)
        {
            await File.WriteAllTextAsync(o.ReadyFile, DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture));
        }

        var total = TimeSpan.FromSeconds(o.PreSeconds + o.OutageSeconds + o.PostSeconds);
        Console.WriteLine($"[outage-{o.Variant}] {o.Calls} native calls sending {o.FrameBytes:N0}-byte frames flat out for {total.TotalSeconds:N0} s " +
                          $"(outage from {o.PreSeconds} s to {o.PreSeconds + o.OutageSeconds} s)");
        var progress = Task.Run(async () =>
        {
            while (clock.Elapsed < total)
            {
                await Task.Delay(5000);
                Console.WriteLine($"  t={clock.Elapsed.TotalSeconds,5:N0}s sent={string.Join('/', calls.Select(c => c.FramesSent))} " +
                                  $"read={string.Join('/', consumer.Published.Select(p => p.Count))} rss gateway={Mb(sampler.Current("gateway"))} silo={Mb(sampler.Current("silo"))} MiB");
            }
        });
        await Task.WhenAll(calls.Select(c => c.SendUntilAsync(clock, total)));
        await progress;
        var sendingEnded = clock.Elapsed;

        // Stop each call and wait for the server to close (it waits for its last frames to be confirmed).
        await Task.WhenAll(calls.Select(c => c.StopAsync()));
        Console.WriteLine($"[outage-{o.Variant}] stopped at {sendingEnded.TotalSeconds:N1} s; waiting for the stop entries and the last frames");

        // Delivery of what the calls still hold may go on after close; wait for both stop entries (or give up).
        var drainDeadline = Stopwatch.StartNew();
        Dictionary<string, CallLifecycle> lifecycle;
        while (true)
        {
            lifecycle = await ReadLifecycleAsync(consumer.Database, ids);
            if (lifecycle.Values.All(l => l.Stopped) || drainDeadline.Elapsed > TimeSpan.FromSeconds(o.DrainSeconds))
            {
                break;
            }

            await Task.Delay(500);
        }

        await Task.Delay(1000);
        consumer.Finish();
        await consuming;
        lifecycle = await ReadLifecycleAsync(consumer.Database, ids);
        sampler.Stop();
        var drained = clock.Elapsed;

        var results = new List<OutageCallResult>();
        for (var i = 0; i < calls.Length; i++)
        {
            results.Add(Account(calls[i], consumer.Published[i], consumer.BadAudio[i], lifecycle[ids[i]]));
        }

        var run = new OutageRun(
            o.Variant,
            $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}",
            DateTime.UtcNow,
            o.FrameBytes,
            o.PreSeconds,
            o.OutageSeconds,
            o.PostSeconds,
            Math.Round(sendingEnded.TotalSeconds, 1),
            Math.Round(drained.TotalSeconds, 1),
            sampler.Peaks(),
            sampler.PeaksBetween(TimeSpan.Zero, TimeSpan.FromSeconds(o.PreSeconds), clock),
            sampler.PeakSplit(),
            Environment.GetEnvironmentVariable("BENCH_OUTAGE_NOTE") ?? string.Empty,
            results);
        Console.WriteLine(Render(run));
        await File.WriteAllTextAsync(o.OutputPath, JsonSerializer.Serialize(run, ResultsTable.Json));
        Console.WriteLine($"[outage-{o.Variant}] wrote {o.OutputPath}");
        await consumer.DisposeAsync();
        return 0;
    }

    public static string Render(OutageRun r)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"outage variant: {r.Variant} ({r.FrameBytes:N0}-byte frames, {r.PreSeconds} s before, {r.OutageSeconds} s outage, {r.PostSeconds} s after; sending ended {r.SendingEndedSeconds} s, all accounted {r.DrainedSeconds} s)");
        sb.AppendLine("| process | peak RSS (MiB) | RSS peak before the outage (MiB) | at the highest 200 ms sample |");
        sb.AppendLine("|---|---:|---:|---|");
        foreach (var (name, peak) in r.PeakRssMib)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {peak:N0} | {r.PeakRssBeforeOutageMib.GetValueOrDefault(name):N0} | {r.AtPeakSampled.GetValueOrDefault(name)} |");
        }

        sb.AppendLine();
        sb.AppendLine("| call | frames sent | published | gap (reason: missing) | sent but neither published nor in a gap | duplicates | out of order | bad audio | stop reason / frames | socket close |");
        sb.AppendLine("|---|---:|---:|---|---:|---:|---:|---:|---|---|");
        foreach (var c in r.Calls)
        {
            var gaps = c.GapsByReason.Count == 0 ? "none" : string.Join(", ", c.GapsByReason.Select(g => $"{g.Key}: {g.Value:N0}"));
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| {c.StreamId} | {c.FramesSent:N0} | {c.Published:N0} | {gaps} | {c.Unaccounted:N0} | {c.Duplicates:N0} | {c.OutOfOrder:N0} | {c.BadAudio:N0} | {c.StopReason ?? "no stop entry"} / {c.StopFrames?.ToString(CultureInfo.InvariantCulture) ?? "-"} | {c.Close} |");
        }

        sb.AppendLine();
        foreach (var c in r.Calls)
        {
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"gap entries of {c.StreamId} (from..to reason missing): ") +
                string.Join("; ", c.FirstGaps.Take(12).Select(g => $"{g.From}..{g.To} {g.Reason} {g.Missing}")) + (c.FirstGaps.Count > 12 ? "; ..." : string.Empty));
        }

        return sb.ToString();
    }

    private static string Mb(long bytes) => (bytes / 1048576.0).ToString("N0", CultureInfo.InvariantCulture);

    private static string MintToken(string secret) =>
        new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Claims = new Dictionary<string, object> { ["sub"] = "bench-outage" },
            NotBefore = DateTime.UtcNow.AddMinutes(-1),
            IssuedAt = DateTime.UtcNow.AddMinutes(-1),
            Expires = DateTime.UtcNow.AddMinutes(30),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)), SecurityAlgorithms.HmacSha256),
        });

    private static OutageCallResult Account(NativeCall call, List<long> published, long badAudio, CallLifecycle life)
    {
        var sent = call.FramesSent;
        var seen = new bool[sent + 1];
        long dup = 0, order = 0, beyond = 0, previous = 0;
        foreach (var seq in published)
        {
            if (seq <= previous)
            {
                order += seq < previous ? 1 : 0;
            }

            previous = Math.Max(previous, seq);
            if (seq < 1 || seq > sent)
            {
                beyond++;
            }
            else if (seen[seq])
            {
                dup++;
            }
            else
            {
                seen[seq] = true;
            }
        }

        long both = 0;
        var covered = (bool[])seen.Clone();
        foreach (var (from, to, _, _) in life.Gaps)
        {
            for (var s = Math.Max(1, from); s <= Math.Min(sent, to); s++)
            {
                if (seen[s])
                {
                    both++;
                }

                covered[s] = true;
            }
        }

        var unaccounted = 0L;
        for (var s = 1; s <= sent; s++)
        {
            unaccounted += covered[s] ? 0 : 1;
        }

        var missingMismatch = life.Gaps.Count(g => g.Missing != g.To - g.From + 1);
        var byReason = life.Gaps.GroupBy(g => g.Reason).ToDictionary(g => g.Key, g => g.Sum(x => x.Missing), StringComparer.Ordinal);
        return new OutageCallResult(call.StreamId, sent, seen.LongCount(s => s), byReason, unaccounted, dup, order, badAudio + beyond, both,
            life.StopReason, life.StopFrames, missingMismatch, call.CloseDescription, life.Gaps.Take(50).ToList());
    }

    private static async Task<Dictionary<string, CallLifecycle>> ReadLifecycleAsync(IDatabase db, IReadOnlyList<string> ids)
    {
        var result = ids.ToDictionary(id => id, _ => new CallLifecycle(), StringComparer.Ordinal);
        RedisValue from = "-";
        while (true)
        {
            StreamEntry[] page;
            try
            {
                page = await db.StreamRangeAsync(StreamKeys.Calls, from, "+", 1000);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                return result;
            }

            foreach (var entry in page)
            {
                var id = (string?)entry["stream_id"];
                if (id is null || !result.TryGetValue(id, out var life))
                {
                    continue;
                }

                switch ((string?)entry["event"])
                {
                    case "gap":
                        life.Gaps.Add(new Gap((long)entry["from_seq"], (long)entry["to_seq"], (string?)entry["reason"] ?? "?", (long)entry["missing"]));
                        break;
                    case "stop":
                        life.Stopped = true;
                        life.StopReason = (string?)entry["reason"];
                        life.StopFrames = entry["frames"].IsNull ? null : (long)entry["frames"];
                        break;
                }
            }

            if (page.Length < 1000)
            {
                return result;
            }

            from = "(" + page[^1].Id;
        }
    }

    private sealed class CallLifecycle
    {
        public List<Gap> Gaps { get; } = [];

        public bool Stopped { get; set; }

        public string? StopReason { get; set; }

        public long? StopFrames { get; set; }
    }
}

/// <summary>A gap entry of ingest:calls: accounting uses from_seq..to_seq, the table reports the product's "missing".</summary>
public sealed record Gap(long From, long To, string Reason, long Missing);

public sealed record OutageRun(
    string Variant,
    string Machine,
    DateTime FinishedUtc,
    int FrameBytes,
    int PreSeconds,
    int OutageSeconds,
    int PostSeconds,
    double SendingEndedSeconds,
    double DrainedSeconds,
    Dictionary<string, double> PeakRssMib,
    Dictionary<string, double> PeakRssBeforeOutageMib,
    Dictionary<string, string> AtPeakSampled,
    string Note,
    List<OutageCallResult> Calls);

public sealed record OutageCallResult(
    string StreamId,
    long FramesSent,
    long Published,
    Dictionary<string, long> GapsByReason,
    long Unaccounted,
    long Duplicates,
    long OutOfOrder,
    long BadAudio,
    long PublishedAndInGap,
    string? StopReason,
    long? StopFrames,
    int GapsWhoseMissingIsNotTheirRange,
    string Close,
    List<Gap> FirstGaps);

public sealed record OutageOptions
{
    public Uri Url { get; init; } = new("ws://127.0.0.1:8080/v1/ingest");

    public string Redis { get; init; } = "127.0.0.1:6380";

    public string JwtSecret { get; init; } = string.Empty;

    public IReadOnlyDictionary<string, int> Processes { get; init; } = new Dictionary<string, int>();

    public string Variant { get; init; } = "sigstop";

    public int Calls { get; init; } = 2;

    public int FrameBytes { get; init; } = 256_000;

    public int PreSeconds { get; init; } = 5;

    public int OutageSeconds { get; init; } = 30;

    public int PostSeconds { get; init; } = 10;

    public int DrainSeconds { get; init; } = 120;

    public string? ReadyFile { get; init; }

    public string OutputPath { get; init; } = "bench/results/outage.json";

    public static OutageOptions Parse(IReadOnlyList<string> args)
    {
        var o = new OutageOptions();
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{name} needs a value");
            int Int() => int.Parse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture);
            o = name switch
            {
                "--url" => o with { Url = new Uri(Value()) },
                "--redis" => o with { Redis = Value() },
                "--jwt-secret" => o with { JwtSecret = Value() },
                "--pids" => o with
                {
                    Processes = Value().Split(',', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=', 2))
                        .ToDictionary(p => p[0], p => int.Parse(p[1], CultureInfo.InvariantCulture), StringComparer.Ordinal),
                },
                "--variant" => o with { Variant = Value() },
                "--calls" => o with { Calls = Int() },
                "--frame-bytes" => o with { FrameBytes = Int() },
                "--pre" => o with { PreSeconds = Int() },
                "--outage" => o with { OutageSeconds = Int() },
                "--post" => o with { PostSeconds = Int() },
                "--drain" => o with { DrainSeconds = Int() },
                "--ready-file" => o with { ReadyFile = Value() },
                "--out" => o with { OutputPath = Value() },
                _ => throw new ArgumentException($"unknown option {name}"),
            };
        }

        if (Encoding.UTF8.GetByteCount(o.JwtSecret) < 32 || o.FrameBytes < 8 || o.Calls < 1)
        {
            throw new ArgumentException("--jwt-secret of at least 32 bytes, --frame-bytes >= 8, --calls >= 1");
        }

        return o;
    }
}

/// <summary>One native call (CONTRACT §6): Bearer JWT, JSON start, binary frames (seq = position), JSON stop.</summary>
public sealed class NativeCall
{
    private readonly ClientWebSocket _socket = new();
    private readonly OutageOptions _options;
    private readonly byte[] _frame;
    private Task? _receiving;

    public NativeCall(string streamId, OutageOptions options, string token)
    {
        StreamId = streamId;
        _options = options;
        _socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
        _socket.Options.KeepAliveInterval = TimeSpan.Zero;
        _frame = AudioConsumer.FrameOf(0, options.FrameBytes);
    }

    public string StreamId { get; }

    public long FramesSent { get; private set; }

    public string CloseDescription { get; private set; } = "open";

    public async Task ConnectAndStartAsync()
    {
        await _socket.ConnectAsync(_options.Url, CancellationToken.None);
        _receiving = ReceiveUntilClosedAsync();
        var start = $"{{\"event\":\"start\",\"stream_id\":\"{StreamId}\",\"sample_rate\":16000,\"encoding\":\"pcm16le\",\"channels\":1}}";
        await _socket.SendAsync(Encoding.UTF8.GetBytes(start), WebSocketMessageType.Text, true, CancellationToken.None);
    }

    public async Task SendUntilAsync(Stopwatch clock, TimeSpan until)
    {
        try
        {
            while (clock.Elapsed < until && _socket.State == WebSocketState.Open)
            {
                // The frame's first 8 bytes carry its sequence number, so the consumer checks each entry's audio.
                BinaryPrimitives.WriteInt64LittleEndian(_frame, FramesSent + 1);
                await _socket.SendAsync(_frame, WebSocketMessageType.Binary, true, CancellationToken.None);
                FramesSent++;
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or ObjectDisposedException)
        {
            CloseDescription = $"send failed after {FramesSent} frames: {ex.Message}";
        }
    }

    public async Task StopAsync()
    {
        if (_socket.State == WebSocketState.Open)
        {
            try
            {
                await _socket.SendAsync("{\"event\":\"stop\"}"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
            }
            catch (Exception ex) when (ex is WebSocketException or IOException)
            {
                CloseDescription = $"stop failed: {ex.Message}";
            }
        }

        if (_receiving is not null)
        {
            await Task.WhenAny(_receiving, Task.Delay(TimeSpan.FromSeconds(60)));
        }

        _socket.Abort();
        _socket.Dispose();
    }

    private async Task ReceiveUntilClosedAsync()
    {
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                var r = await _socket.ReceiveAsync(buffer, CancellationToken.None);
                if (r.MessageType == WebSocketMessageType.Close)
                {
                    var status = $"{(int?)_socket.CloseStatus} {_socket.CloseStatusDescription}";
                    CloseDescription = CloseDescription == "open" ? status : $"{CloseDescription}; {status}";
                    try
                    {
                        await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
                    }
                    catch (Exception ex) when (ex is WebSocketException or IOException)
                    {
                    }

                    return;
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or ObjectDisposedException)
        {
            CloseDescription = CloseDescription == "open" ? $"aborted: {ex.Message}" : CloseDescription;
        }
    }
}

/// <summary>Reads the calls' audio streams as they grow (seq, audio check), then XTRIM MINID so Redis stays small.</summary>
public sealed class AudioConsumer : IAsyncDisposable
{
    private readonly ConnectionMultiplexer _redis;
    private readonly string[] _ids;
    private volatile bool _finish;

    private readonly int _frameBytes;

    private AudioConsumer(ConnectionMultiplexer redis, string[] ids, int frameBytes)
    {
        _frameBytes = frameBytes;
        _redis = redis;
        _ids = ids;
        Published = ids.Select(_ => new List<long>()).ToArray();
        BadAudio = new long[ids.Length];
    }

    public List<long>[] Published { get; }

    public long[] BadAudio { get; }

    public IDatabase Database => _redis.GetDatabase();

    public static byte[] FrameOf(long seq, int bytes)
    {
        var frame = new byte[bytes];
        for (var i = 8; i < bytes; i++)
        {
            frame[i] = (byte)(i * 31);
        }

        BinaryPrimitives.WriteInt64LittleEndian(frame, seq);
        return frame;
    }

    public static async Task<AudioConsumer> ConnectAsync(string configuration, string[] ids, int frameBytes)
    {
        var options = ConfigurationOptions.Parse(configuration);
        options.SyncTimeout = options.AsyncTimeout = 5000;
        options.AbortOnConnectFail = false;
        options.ConnectRetry = 100;
        return new AudioConsumer(await ConnectionMultiplexer.ConnectAsync(options), ids, frameBytes);
    }

    /// <summary>Ends after the next read that finds nothing new.</summary>
    public void Finish() => _finish = true;

    public async Task RunAsync()
    {
        var db = _redis.GetDatabase();
        var lastIds = _ids.Select(_ => "0-0").ToArray();
        var args = new object[5 + _ids.Length * 2];
        args[0] = "COUNT";
        args[1] = 64;
        args[2] = "BLOCK";
        args[3] = 200;
        args[4] = "STREAMS";
        for (var i = 0; i < _ids.Length; i++)
        {
            args[5 + i] = (string)RedisProbe.AudioKey(_ids[i])!;
        }

        var expectedTail = FrameOf(0, _frameBytes);
        while (true)
        {
            var finishing = _finish;
            for (var i = 0; i < _ids.Length; i++)
            {
                args[5 + _ids.Length + i] = lastIds[i];
            }

            RedisResult reply;
            try
            {
                reply = await db.ExecuteAsync("XREAD", args);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Redis away: timeouts, cancelled tasks, even the client's own pipe errors while it reconnects.
                await Task.Delay(200);
                continue;
            }

            var any = false;
            if (!reply.IsNull)
            {
                foreach (var stream in (RedisResult[])reply!)
                {
                    var pair = (RedisResult[])stream!;
                    var i = Array.IndexOf(args, (string)pair[0]!, 5, _ids.Length) - 5;
                    foreach (var entry in (RedisResult[])pair[1]!)
                    {
                        any = true;
                        var parts = (RedisResult[])entry!;
                        lastIds[i] = (string)parts[0]!;
                        var fields = (RedisResult[])parts[1]!;
                        long seq = -1;
                        byte[]? audio = null;
                        for (var f = 0; f + 1 < fields.Length; f += 2)
                        {
                            switch ((string)fields[f]!)
                            {
                                case "seq":
                                    seq = (long)fields[f + 1];
                                    break;
                                case "audio":
                                    audio = (byte[])fields[f + 1]!;
                                    break;
                            }
                        }

                        Published[i].Add(seq);
                        if (audio is null || audio.Length < 8 || BinaryPrimitives.ReadInt64LittleEndian(audio) != seq
                            || audio.Length != expectedTail.Length || !audio.AsSpan(8).SequenceEqual(expectedTail.AsSpan(8)))
                        {
                            BadAudio[i]++;
                        }
                    }

                    // MINID keeps the last entry read (the grain may look at a stream's tail).
                    try
                    {
                        await db.ExecuteAsync("XTRIM", (string)pair[0]!, "MINID", lastIds[i]);
                    }
                    catch (Exception ex) when (ex is not OutOfMemoryException)
                    {
                    }
                }
            }

            if (finishing && !any)
            {
                return;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _redis.CloseAsync();
        _redis.Dispose();
    }
}

/// <summary>VmRSS of each process every 200 ms (and VmHWM at the end, reset at the start where the kernel allows).</summary>
public sealed class RssSampler(IReadOnlyDictionary<string, int> processes)
{
    private readonly List<(TimeSpan At, string Name, long Bytes)> _samples = [];
    private readonly Dictionary<string, long> _current = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (long Rss, long Anon, long File)> _peakSplit = new(StringComparer.Ordinal);

    /// <summary>At the highest sampled VmRSS of each process: RssAnon (heaps, stacks) and RssFile (mapped binaries), MiB.</summary>
    public Dictionary<string, string> PeakSplit()
    {
        lock (_samples)
        {
            return _peakSplit.ToDictionary(p => p.Key, p => string.Create(CultureInfo.InvariantCulture,
                $"anon {p.Value.Anon / 1048576.0:N0} + file {p.Value.File / 1048576.0:N0} MiB"), StringComparer.Ordinal);
        }
    }

    private static (long Rss, long Anon, long File) ReadStatus(int pid)
    {
        long rss = 0, anon = 0, file = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            static long Kb(string l) => long.Parse(l[(l.IndexOf(':') + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rss = Kb(line);
            }
            else if (line.StartsWith("RssAnon:", StringComparison.Ordinal))
            {
                anon = Kb(line);
            }
            else if (line.StartsWith("RssFile:", StringComparison.Ordinal))
            {
                file = Kb(line);
            }
        }

        return (rss, anon, file);
    }
    private readonly Stopwatch _clock = new();
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;

    public void Start()
    {
        foreach (var pid in processes.Values)
        {
            ProcessSampler.TryResetPeak(pid);
        }

        _clock.Start();
        _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                foreach (var (name, pid) in processes)
                {
                    try
                    {
                        var (rss, anon, file) = ReadStatus(pid);
                        lock (_samples)
                        {
                            _samples.Add((_clock.Elapsed, name, rss));
                            _current[name] = rss;
                            if (rss >= _peakSplit.GetValueOrDefault(name).Rss)
                            {
                                _peakSplit[name] = (rss, anon, file);
                            }
                        }
                    }
                    catch (IOException)
                    {
                        // The process has gone (an OOM kill would show here as missing samples).
                    }
                }

                try
                {
                    await Task.Delay(200, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }
        });
    }

    public long Current(string name)
    {
        lock (_samples)
        {
            return _current.GetValueOrDefault(name);
        }
    }

    public void Stop()
    {
        _stop.Cancel();
        _loop?.Wait();
    }

    public Dictionary<string, double> Peaks() =>
        processes.ToDictionary(
            p => p.Key,
            p =>
            {
                long sampled;
                lock (_samples)
                {
                    sampled = _samples.Where(s => s.Name == p.Key).Select(s => s.Bytes).DefaultIfEmpty().Max();
                }

                long hwm = 0;
                try
                {
                    hwm = ProcessSampler.PeakRssBytes(p.Value);
                }
                catch (IOException)
                {
                }

                return Math.Round(Math.Max(sampled, hwm) / 1048576.0, 1);
            },
            StringComparer.Ordinal);

    /// <summary>Peak sampled RSS in a window of the scenario clock (started after the sampler, so offset by the gap).</summary>
    public Dictionary<string, double> PeaksBetween(TimeSpan from, TimeSpan to, Stopwatch scenarioClock)
    {
        var offset = _clock.Elapsed - scenarioClock.Elapsed;
        lock (_samples)
        {
            return processes.Keys.ToDictionary(
                n => n,
                n => Math.Round(_samples.Where(s => s.Name == n && s.At - offset >= from && s.At - offset < to).Select(s => s.Bytes).DefaultIfEmpty().Max() / 1048576.0, 1),
                StringComparer.Ordinal);
        }
    }
}
