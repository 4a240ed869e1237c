using System.Diagnostics;
using Ingest.Grains.Interfaces;
using StackExchange.Redis;

namespace Ingest.Bench;

/// <summary>
/// Looks at the system only from outside, through Redis: when each observed frame became readable (XREAD BLOCK on a
/// multiplexer of its own, so the blocking read delays nothing else), how many entries are readable, and, at the end,
/// whether every stream holds exactly its frames, in order (XRANGE).
/// </summary>
public sealed class RedisProbe : IAsyncDisposable
{
    private const int ReadCount = 2000;
    private const int BlockMs = 200;

    private readonly ConnectionMultiplexer _commands;
    private readonly ConnectionMultiplexer _blockingReads;

    private RedisProbe(ConnectionMultiplexer commands, ConnectionMultiplexer blockingReads)
    {
        _commands = commands;
        _blockingReads = blockingReads;
    }

    public static async Task<RedisProbe> ConnectAsync(string configuration)
    {
        var options = ConfigurationOptions.Parse(configuration);
        options.SyncTimeout = options.AsyncTimeout = 30_000;
        options.AllowAdmin = true; // INFO commandstats, per scenario (CommandMicrosecondsAsync)
        var commands = await ConnectionMultiplexer.ConnectAsync(options);
        var blocking = await ConnectionMultiplexer.ConnectAsync(options.Clone());
        return new RedisProbe(commands, blocking);
    }

    public static RedisKey AudioKey(string streamSid) => StreamKeys.Audio(streamSid);

    /// <summary>True on a Redis Cluster, where one command may only name keys of one slot (each call's keys are one slot).</summary>
    public bool IsCluster => _commands.GetServers().Any(s => s.ServerType == ServerType.Cluster);

    public IDatabase Database => _commands.GetDatabase();

    /// <summary>
    /// Follows the observed calls' streams until every frame they sent has been seen or <paramref name="stop"/> fires,
    /// and returns the send→readable latency of each frame in milliseconds, with the time it became readable;
    /// <paramref name="onFrame"/>, when given, also hears each one with the index of its call.
    /// </summary>
    public async Task<List<(long ReadTicks, double Ms)>> ObserveAsync(
        IReadOnlyList<SimulatedExotelCall> calls, Func<bool> sendingDone, CancellationToken stop, Action<int, long, double>? onFrame = null)
    {
        var latencies = new List<(long ReadTicks, double Ms)>();
        if (calls.Count == 0)
        {
            return latencies;
        }

        if (IsCluster)
        {
            return await PollAsync(calls, sendingDone, stop, onFrame);
        }

        var db = _blockingReads.GetDatabase();
        var lastIds = Enumerable.Repeat("0-0", calls.Count).ToArray();
        var seen = new long[calls.Count];
        var index = calls.Select((c, i) => (Key: (string)AudioKey(c.StreamSid)!, Index: i)).ToDictionary(p => p.Key, p => p.Index, StringComparer.Ordinal);
        var args = new object[5 + calls.Count * 2];
        args[0] = "COUNT";
        args[1] = ReadCount;
        args[2] = "BLOCK";
        args[3] = BlockMs;
        args[4] = "STREAMS";
        for (var i = 0; i < calls.Count; i++)
        {
            args[5 + i] = (string)AudioKey(calls[i].StreamSid)!;
        }

        while (!stop.IsCancellationRequested)
        {
            if (sendingDone() && Enumerable.Range(0, calls.Count).All(i => seen[i] >= calls[i].FramesSent))
            {
                break;
            }

            for (var i = 0; i < calls.Count; i++)
            {
                args[5 + calls.Count + i] = lastIds[i];
            }

            var reply = await db.ExecuteAsync("XREAD", args);
            var now = Stopwatch.GetTimestamp();
            if (reply.IsNull)
            {
                continue;
            }

            foreach (var stream in (RedisResult[])reply!)
            {
                var pair = (RedisResult[])stream!;
                var i = index[(string)pair[0]!];
                var sendTicks = calls[i].SendTicks!;
                foreach (var entry in (RedisResult[])pair[1]!)
                {
                    var parts = (RedisResult[])entry!;
                    lastIds[i] = (string)parts[0]!;
                    var fields = (RedisResult[])parts[1]!;
                    for (var f = 0; f + 1 < fields.Length; f += 2)
                    {
                        if ((string)fields[f]! == "seq")
                        {
                            var seq = (long)fields[f + 1];
                            if (seq >= 2 && seq - 2 < sendTicks.Length && sendTicks[seq - 2] != 0)
                            {
                                var ms = Stopwatch.GetElapsedTime(sendTicks[seq - 2], now).TotalMilliseconds;
                                latencies.Add((now, ms));
                                onFrame?.Invoke(i, now, ms);
                            }

                            break;
                        }
                    }

                    seen[i]++;
                }
            }
        }

        return latencies;
    }

    /// <summary>
    /// <see cref="ObserveAsync"/> on a Redis Cluster: one XREAD naming many streams is CROSSSLOT there, and a blocking
    /// read per stream would hold the multiplexer's connection, so every observed stream is read without BLOCK, all
    /// pipelined, one round every <see cref="PollPauseMs"/> ms: a frame is timed when the round that returns it ends,
    /// so the latency reads up to one round (a few ms) longer than the blocking read of a single node would.
    /// </summary>
    private async Task<List<(long ReadTicks, double Ms)>> PollAsync(
        IReadOnlyList<SimulatedExotelCall> calls, Func<bool> sendingDone, CancellationToken stop, Action<int, long, double>? onFrame)
    {
        var latencies = new List<(long ReadTicks, double Ms)>();
        var db = _blockingReads.GetDatabase();
        var keys = calls.Select(c => AudioKey(c.StreamSid)).ToArray();
        var lastIds = Enumerable.Repeat((RedisValue)"0-0", calls.Count).ToArray();
        var seen = new long[calls.Count];
        while (!stop.IsCancellationRequested)
        {
            if (sendingDone() && Enumerable.Range(0, calls.Count).All(i => seen[i] >= calls[i].FramesSent))
            {
                break;
            }

            var pending = Enumerable.Range(0, calls.Count).Where(i => !sendingDone() || seen[i] < calls[i].FramesSent).ToArray();
            var reads = pending.Select(i => db.StreamReadAsync(keys[i], lastIds[i], ReadCount)).ToArray();
            var pages = await Task.WhenAll(reads);
            var now = Stopwatch.GetTimestamp();
            for (var p = 0; p < pending.Length; p++)
            {
                var i = pending[p];
                var sendTicks = calls[i].SendTicks!;
                foreach (var entry in pages[p])
                {
                    lastIds[i] = entry.Id;
                    var seq = (long)entry["seq"];
                    if (seq >= 2 && seq - 2 < sendTicks.Length && sendTicks[seq - 2] != 0)
                    {
                        var ms = Stopwatch.GetElapsedTime(sendTicks[seq - 2], now).TotalMilliseconds;
                        latencies.Add((now, ms));
                        onFrame?.Invoke(i, now, ms);
                    }

                    seen[i]++;
                }
            }

            try
            {
                await Task.Delay(PollPauseMs, stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        return latencies;
    }

    private const int PollPauseMs = 5;

    /// <summary>The commands the driver itself sends while a scenario runs (observing and counting); no system under test sends them.</summary>
    public static readonly string[] DriverCommands = ["xread", "xlen"];

    /// <summary>
    /// CPU microseconds Redis has spent in each command since its statistics were last reset (<c>INFO commandstats</c>,
    /// summed over every node), so a scenario can tell its own reads from the system's work.
    /// </summary>
    public async Task<Dictionary<string, long>> CommandMicrosecondsAsync()
    {
        var totals = new Dictionary<string, long>(StringComparer.OrdinalIgnoreCase);
        foreach (var server in _commands.GetServers().Where(s => s.IsConnected && !s.IsReplica))
        {
            foreach (var group in await server.InfoAsync("commandstats"))
            {
                foreach (var (key, value) in group)
                {
                    // cmdstat_xadd: calls=1,usec=8,usec_per_call=8.00,...
                    var usec = value.Split(',').FirstOrDefault(f => f.StartsWith("usec=", StringComparison.Ordinal));
                    if (key.StartsWith("cmdstat_", StringComparison.Ordinal) && usec is not null)
                    {
                        var name = key["cmdstat_".Length..];
                        totals[name] = totals.GetValueOrDefault(name) + long.Parse(usec["usec=".Length..], System.Globalization.CultureInfo.InvariantCulture);
                    }
                }
            }
        }

        return totals;
    }

    /// <summary>Entries readable in the calls' audio streams (XLEN, pipelined).</summary>
    public async Task<long> CountReadableAsync(IReadOnlyList<SimulatedExotelCall> calls)
    {
        var db = _commands.GetDatabase();
        var lengths = await Task.WhenAll(calls.Select(c => db.StreamLengthAsync(AudioKey(c.StreamSid))));
        return lengths.Sum();
    }

    /// <summary>Reads every stream back and counts frames missing, duplicated, out of order or with wrong audio.</summary>
    public async Task<Verification> VerifyAsync(IReadOnlyList<SimulatedExotelCall> calls, BenchOptions options)
    {
        var db = _commands.GetDatabase();
        long lost = 0, duplicated = 0, reordered = 0, corrupt = 0;
        using var gate = new SemaphoreSlim(16);
        await Task.WhenAll(calls.Select(async call =>
        {
            await gate.WaitAsync();
            try
            {
                var expected = SimulatedExotelCall.LandedAudioOf(call.StreamSid, options);
                var seen = new bool[call.FramesSent];
                long previous = 1, dup = 0, order = 0, bad = 0;
                RedisValue from = "-";
                while (true)
                {
                    var page = await db.StreamRangeAsync(AudioKey(call.StreamSid), from, "+", 1000);
                    foreach (var entry in page)
                    {
                        var seq = (long)entry["seq"];
                        if (seq < previous)
                        {
                            order++;
                        }

                        previous = seq;
                        if (seq < 2 || seq - 2 >= seen.Length)
                        {
                            bad++;
                        }
                        else if (seen[seq - 2])
                        {
                            dup++;
                        }
                        else
                        {
                            seen[seq - 2] = true;
                        }

                        if (!((byte[])entry["audio"]!).AsSpan().SequenceEqual(expected))
                        {
                            bad++;
                        }
                    }

                    if (page.Length < 1000)
                    {
                        break;
                    }

                    // Exclusive start after the last id read.
                    from = "(" + page[^1].Id;
                }

                Interlocked.Add(ref lost, seen.LongCount(s => !s));
                Interlocked.Add(ref duplicated, dup);
                Interlocked.Add(ref reordered, order);
                Interlocked.Add(ref corrupt, bad);
            }
            finally
            {
                gate.Release();
            }
        }));

        return new Verification(lost, duplicated, reordered, corrupt);
    }

    /// <summary>
    /// Redis memory per audio entry over some of the scenario's streams: <c>MEMORY USAGE key SAMPLES 0</c> (every
    /// entry counted, not a sample) divided by <c>XLEN</c>; null when the streams are empty.
    /// </summary>
    public async Task<double?> BytesPerAudioEntryAsync(IReadOnlyList<SimulatedExotelCall> calls)
    {
        var db = _commands.GetDatabase();
        long bytes = 0, entries = 0;
        foreach (var call in calls)
        {
            var key = AudioKey(call.StreamSid);
            var length = await db.StreamLengthAsync(key);
            if (length == 0)
            {
                continue;
            }

            var usage = await db.ExecuteAsync("MEMORY", "USAGE", (string)key!, "SAMPLES", 0);
            if (!usage.IsNull)
            {
                bytes += (long)usage;
                entries += length;
            }
        }

        return entries == 0 ? null : Math.Round((double)bytes / entries, 1);
    }

    /// <summary>Deletes a scenario's audio streams and cursors so Redis memory stays bounded across scenarios.</summary>
    public async Task DeleteAsync(IReadOnlyList<SimulatedExotelCall> calls)
    {
        // One DEL per call (its two keys share a slot): a DEL naming several calls would be CROSSSLOT on a cluster.
        var db = _commands.GetDatabase();
        foreach (var chunk in calls.Chunk(500))
        {
            await Task.WhenAll(chunk.Select(c => db.KeyDeleteAsync([AudioKey(c.StreamSid), "ingest:cursor:{" + c.StreamSid + "}"])));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _commands.CloseAsync();
        await _blockingReads.CloseAsync();
        _commands.Dispose();
        _blockingReads.Dispose();
    }
}

public sealed record Verification(long Lost, long Duplicated, long Reordered, long Corrupt);
