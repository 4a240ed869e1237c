using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Ingest.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Ingest.Tests.Consumers;

/// <summary>
/// The sample consumer (samples/Ingest.SampleWorker) as two real processes: worker A claims the calls and is killed
/// (SIGKILL) mid-call, worker B of the same group takes them over with XAUTOCLAIM and finishes them from A's checkpoint.
/// The calls are written into Redis directly in the platform's format (start entry + meta hash, audio entries of
/// varying sizes, a gap, stop entry + meta stop fields), live, while the workers read.
/// </summary>
public sealed class SampleWorkerTests(ITestOutputHelper output)
{
    private const int Rate = 8000;
    private const int ChunkBytes = Rate; // 500 ms of PCM16 mono
    private const int ClaimIdleMs = 1500;

    [Theory]
    [Trait("Category", "Slow")]
    [InlineData("kill")]
    [InlineData("pause")]
    public async Task A_worker_killed_or_paused_mid_call_is_taken_over_and_nothing_is_emitted_twice_or_skipped(string failure)
    {
        await using var redis = await RedisServer.StartAsync();
        using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString + ",abortConnect=false");
        var db = connection.GetDatabase();
        var ids = Enumerable.Range(0, 3).Select(_ => Guid.NewGuid().ToString("N")).ToArray();
        var sent = ids.ToDictionary(id => id, _ => new List<byte>());

        using var a = Worker(redis, "A");
        foreach (var id in ids)
        {
            await StartCallAsync(db, id);
        }

        // 24 s of audio per call, written at ~5x real time, in frames of varying (and odd) sizes, with seq 40 missing.
        var writer = Task.Run(() => WriteAudioAsync(db, ids, sent, totalBytes: 24 * 2 * Rate));

        Assert.True(await RedisStreams.WaitUntilAsync(async () => (await Task.WhenAll(ids.Select(id => db.StreamLengthAsync(Chunks(id))))).All(n => n >= 6), TimeSpan.FromSeconds(60)), "worker A emitted no chunks\n" + a.Output);
        if (failure == "kill")
        {
            a.Process.Kill(entireProcessTree: true);
        }
        else
        {
            Signals.Send(a.Process, "-STOP");
        }

        var killedAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        if (failure == "kill")
        {
            await a.Process.WaitForExitAsync();
        }

        var byA = await Task.WhenAll(ids.Select(id => db.StreamLengthAsync(Chunks(id))));

        using var b = Worker(redis, "B");
        var bStartedAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        if (failure == "pause")
        {
            // A wakes up after B took its calls, still believing it owns them: the chunk-count fence and the
            // ownership check must make it let go without emitting anything twice.
            Assert.True(await RedisStreams.WaitUntilAsync(async () => (await Task.WhenAll(ids.Select(id => db.HashGetAsync(Checkpoint(id), "worker")))).All(w => w == "B"), TimeSpan.FromSeconds(30)), "B did not take over\n" + b.Output);
            Signals.Send(a.Process, "-CONT");
        }

        await writer;
        foreach (var id in ids)
        {
            await StopCallAsync(db, id, sent[id].Count);
        }

        Assert.True(
            await RedisStreams.WaitUntilAsync(async () => (await Task.WhenAll(ids.Select(id => db.HashGetAsync(Checkpoint(id), "done")))).All(d => d == "1"), TimeSpan.FromSeconds(60)),
            "worker B did not finish the calls\nA:\n" + a.Output + "\nB:\n" + b.Output);

        output.WriteLine("A:\n" + a.Output);
        output.WriteLine("B:\n" + b.Output);
        foreach (var id in ids)
        {
            var chunks = await db.StreamRangeAsync(Chunks(id));
            Assert.Equal(Enumerable.Range(0, chunks.Length).Select(i => (long)i), chunks.Select(c => (long)c["index"]));
            Assert.Equal(sent[id].Count / ChunkBytes + 1, chunks.Length);
            Assert.All(chunks[..^1], c => Assert.Equal(ChunkBytes, ((byte[])c["audio"]!).Length));
            Assert.Equal("1", chunks[^1]["final"]);
            Assert.Equal(sent[id], chunks.SelectMany(c => (byte[])c["audio"]!));
            Assert.Equal(1, chunks.Sum(c => (long)c["gap_seqs"]));
            Assert.Contains(chunks, c => c["worker"] == "A");
            Assert.Contains(chunks, c => c["worker"] == "B");
            Assert.Equal(0, (await db.StreamPendingAsync(CallWorkerCalls, "asr")).PendingMessageCount);

            var firstByB = chunks.First(c => c["worker"] == "B");
            var firstByBAt = long.Parse(((string)firstByB.Id!).Split('-')[0], CultureInfo.InvariantCulture);
            output.WriteLine($"{id}: {chunks.Length} chunks, {chunks.Count(c => c["worker"] == "A")} by A; kill -> B's first new chunk {firstByBAt - killedAt} ms (B started {bStartedAt - killedAt} ms after the kill)");
        }

        output.WriteLine($"calls per worker: A claimed {ids.Length} (chunks before the kill: {string.Join(", ", byA)}), B took over {ids.Length}");
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task Two_workers_share_the_calls_each_call_whole_on_one_worker()
    {
        await using var redis = await RedisServer.StartAsync();
        using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString + ",abortConnect=false");
        var db = connection.GetDatabase();
        var ids = Enumerable.Range(0, 8).Select(_ => Guid.NewGuid().ToString("N")).ToArray();
        var sent = ids.ToDictionary(id => id, _ => new List<byte>());

        // Each worker takes at most 4 calls at a time: 8 live calls split 4/4 however fast each polls.
        using var a = Worker(redis, "A", maxCalls: 4);
        using var b = Worker(redis, "B", maxCalls: 4);
        Assert.True(await RedisStreams.WaitUntilAsync(() => Task.FromResult(a.Output.Contains("started", StringComparison.Ordinal) && b.Output.Contains("started", StringComparison.Ordinal)), TimeSpan.FromSeconds(30)));
        foreach (var id in ids)
        {
            await StartCallAsync(db, id);
        }

        await WriteAudioAsync(db, ids, sent, totalBytes: 4 * 2 * Rate);
        foreach (var id in ids)
        {
            await StopCallAsync(db, id, sent[id].Count);
        }

        Assert.True(
            await RedisStreams.WaitUntilAsync(async () => (await Task.WhenAll(ids.Select(id => db.HashGetAsync(Checkpoint(id), "done")))).All(d => d == "1"), TimeSpan.FromSeconds(60)),
            "the workers did not finish the calls\nA:\n" + a.Output + "\nB:\n" + b.Output);
        var owners = new List<string>();
        foreach (var id in ids)
        {
            var chunks = await db.StreamRangeAsync(Chunks(id));
            Assert.Equal(Enumerable.Range(0, chunks.Length).Select(i => (long)i), chunks.Select(c => (long)c["index"]));
            Assert.Equal(sent[id], chunks.SelectMany(c => (byte[])c["audio"]!));
            owners.Add(Assert.Single(chunks.Select(c => (string)c["worker"]!).Distinct()));
        }

        output.WriteLine($"calls per worker: A {owners.Count(o => o == "A")}, B {owners.Count(o => o == "B")}");
        Assert.Equal(4, owners.Count(o => o == "A"));
        Assert.Equal(4, owners.Count(o => o == "B"));
    }

    [Fact]
    public async Task A_two_track_call_is_emitted_as_two_chunk_streams_each_whole_and_a_one_track_call_makes_no_outbound_one()
    {
        await using var redis = await RedisServer.StartAsync();
        using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString + ",abortConnect=false");
        var db = connection.GetDatabase();
        var (both, single) = (Guid.NewGuid().ToString("N"), Guid.NewGuid().ToString("N"));
        using var worker = Worker(redis, "A");
        Assert.True(await RedisStreams.WaitUntilAsync(() => Task.FromResult(worker.Output.Contains("started", StringComparison.Ordinal)), TimeSpan.FromSeconds(30)));
        await StartCallAsync(db, both);
        await StartCallAsync(db, single);

        // CONTRACT §7: the caller in ingest:audio:{id}, the agent in ingest:audio:{id}:outbound, numbered by one sequence.
        var sent = new Dictionary<string, List<byte>> { [""] = [], [":outbound"] = [], ["single"] = [] };
        var random = new Random(7);
        for (var n = 0; n < 30; n++)
        {
            foreach (var track in new[] { "", ":outbound" })
            {
                var audio = new byte[1600];
                random.NextBytes(audio);
                sent[track].AddRange(audio);
                await db.StreamAddAsync("ingest:audio:{" + both + "}" + track, [new("seq", 2 + (2 * n) + (track.Length > 0 ? 1 : 0)), new("ts", n * 100), new("audio", audio)]);
            }

            var one = new byte[1600];
            random.NextBytes(one);
            sent["single"].AddRange(one);
            await db.StreamAddAsync("ingest:audio:{" + single + "}", [new("seq", 2 + n), new("ts", n * 100), new("audio", one)]);
        }

        await StopCallAsync(db, both, 30);
        await StopCallAsync(db, single, 30);
        Assert.True(
            await RedisStreams.WaitUntilAsync(async () => (await Task.WhenAll(new[] { Checkpoint(both), Checkpoint(both) + ":outbound", Checkpoint(single) }.Select(k => db.HashGetAsync(k, "done")))).All(d => d == "1"), TimeSpan.FromSeconds(30)),
            "the worker did not finish the calls\n" + worker.Output);
        Assert.Equal(sent[""], (await db.StreamRangeAsync(Chunks(both))).SelectMany(c => (byte[])c["audio"]!));
        Assert.Equal(sent[":outbound"], (await db.StreamRangeAsync(Chunks(both) + ":outbound")).SelectMany(c => (byte[])c["audio"]!));
        Assert.Equal(sent["single"], (await db.StreamRangeAsync(Chunks(single))).SelectMany(c => (byte[])c["audio"]!));
        Assert.False(await db.KeyExistsAsync(Chunks(single) + ":outbound"));
        Assert.True(await RedisStreams.WaitUntilAsync(async () => (await db.StreamPendingAsync(CallWorkerCalls, "asr")).PendingMessageCount == 0, TimeSpan.FromSeconds(10)), "the start entries were not acknowledged");
    }

    [Fact]
    public async Task An_entry_the_worker_cannot_read_is_passed_over_once_and_the_call_still_finishes()
    {
        // Issue 24 item 6: an audio entry whose seq is not a number used to throw in every worker that took the call,
        // each after the claim idle time, forever. It is said once and passed over; the rest of the call is emitted.
        await using var redis = await RedisServer.StartAsync();
        using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString + ",abortConnect=false");
        var db = connection.GetDatabase();
        var id = Guid.NewGuid().ToString("N");
        using var worker = Worker(redis, "A");
        Assert.True(await RedisStreams.WaitUntilAsync(() => Task.FromResult(worker.Output.Contains("started", StringComparison.Ordinal)), TimeSpan.FromSeconds(30)));
        await StartCallAsync(db, id);
        var sent = new List<byte>();
        for (var n = 0; n < 20; n++)
        {
            var audio = new byte[1600];
            new Random(n).NextBytes(audio);
            if (n == 7)
            {
                await db.StreamAddAsync("ingest:audio:{" + id + "}", [new("seq", "not-a-number"), new("ts", n * 100), new("audio", audio)]);
                continue;
            }

            sent.AddRange(audio);
            await db.StreamAddAsync("ingest:audio:{" + id + "}", [new("seq", 2 + n), new("ts", n * 100), new("audio", audio)]);
        }

        await StopCallAsync(db, id, 20);
        Assert.True(
            await RedisStreams.WaitUntilAsync(async () => await db.HashGetAsync(Checkpoint(id), "done") == "1", TimeSpan.FromSeconds(30)),
            "the worker did not finish the call\n" + worker.Output);
        Assert.Equal(sent, (await db.StreamRangeAsync(Chunks(id))).SelectMany(c => (byte[])c["audio"]!));
        Assert.Single(worker.Lines, l => l.Contains("has no integer seq or no audio; skipped", StringComparison.Ordinal));
    }

    private const string CallWorkerCalls = "ingest:calls";

    private static string Chunks(string id) => "samples:chunks:{" + id + "}";

    private static string Checkpoint(string id) => "ingest:worker:{" + id + "}";

    private static async Task StartCallAsync(IDatabase db, string id)
    {
        var at = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        // The grain writes both in one fenced batch; written one by one, the meta hash goes first, or a worker claiming the
        // start entry in between finds neither the hash nor audio and drops the call as expired.
        await db.HashSetAsync("ingest:meta:{" + id + "}", [new("stream_id", id), new("protocol", "exotel"), new("encoding", "pcm16le"), new("sample_rate", Rate), new("started_at", at), new("call_sid", "call-" + id)]);
        await db.StreamAddAsync("ingest:calls", [new("event", "start"), new("stream_id", id), new("protocol", "exotel"), new("encoding", "pcm16le"), new("sample_rate", Rate), new("at", at), new("call_sid", "call-" + id)]);
    }

    private static async Task StopCallAsync(IDatabase db, string id, int bytes)
    {
        var at = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await db.StreamAddAsync("ingest:calls", [new("event", "stop"), new("stream_id", id), new("reason", "stopped"), new("frames", bytes), new("at", at)]);
        await db.HashSetAsync("ingest:meta:{" + id + "}", [new("stopped_at", at), new("stop_reason", "stopped"), new("gaps", 1), new("missing", 1)]);
    }

    private static async Task WriteAudioAsync(IDatabase db, string[] ids, Dictionary<string, List<byte>> sent, int totalBytes)
    {
        int[] sizes = [320, 1600, 3200, 999, 160, 4801, 2000];
        var random = new Random(12);
        var written = 0;
        var seq = 2L;
        for (var frame = 0; written < totalBytes; frame++, seq++)
        {
            if (seq == 40)
            {
                foreach (var id in ids)
                {
                    await db.StreamAddAsync("ingest:calls", [new("event", "gap"), new("stream_id", id), new("from_seq", 40), new("to_seq", 40), new("missing", 1), new("reason", "missing")]);
                }

                seq++;
            }

            var size = sizes[frame % sizes.Length];
            foreach (var id in ids)
            {
                var audio = new byte[size];
                random.NextBytes(audio);
                sent[id].AddRange(audio);
                await db.StreamAddAsync("ingest:audio:{" + id + "}", [new("seq", seq), new("ts", written / 16), new("audio", audio)]);
            }

            written += size;
            // ~5x real time: 16 bytes a ms at 8 kHz.
            await Task.Delay(size / 16 / 5);
        }
    }

    private static WorkerProcess Worker(RedisServer redis, string name, int maxCalls = 100)
    {
        var dll = ProcessCluster.HostDll("samples/Ingest.SampleWorker", "Ingest.SampleWorker");
        var info = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { dll, "--redis", redis.ConnectionString, "--group", "asr", "--name", name, "--claim-idle-ms", ClaimIdleMs.ToString(CultureInfo.InvariantCulture), "--poll-ms", "20", "--max-calls", maxCalls.ToString(CultureInfo.InvariantCulture) },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start the sample worker");
        var worker = new WorkerProcess(process);
        process.OutputDataReceived += (_, e) => worker.Lines.Enqueue(e.Data ?? string.Empty);
        process.ErrorDataReceived += (_, e) => worker.Lines.Enqueue(e.Data ?? string.Empty);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return worker;
    }

    private sealed class WorkerProcess(Process process) : IDisposable
    {
        public Process Process { get; } = process;

        public ConcurrentQueue<string> Lines { get; } = new();

        public string Output => string.Join('\n', Lines);

        public void Dispose()
        {
            try
            {
                if (!Process.HasExited)
                {
                    Process.Kill(entireProcessTree: true);
                }
            }
            catch (InvalidOperationException)
            {
            }

            Process.Dispose();
        }
    }
}
