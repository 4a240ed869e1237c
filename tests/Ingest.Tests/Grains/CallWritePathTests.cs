using System.Collections.Immutable;
using Ingest.Grains.Interfaces;
using Ingest.Grains;
using Ingest.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Ingest.Tests.Grains;

/// <summary>
/// The call's write path through real grains and a real redis-server, each test on a cluster of its own (its options
/// differ): retention, the bounds of CONTRACT §7, the lifecycle copy when its counter is lost, ownership.
/// </summary>
[RunsFor(60)]
public sealed class CallWritePathTests
{
    private static long _nextIndex;

    private static CallStart Start(string streamId, string connection = "conn-1") =>
        new(CallProtocol.Exotel, streamId, "call-" + streamId, "acct", "+911", "+912", "pcm16le", 8000, 1,
            ImmutableDictionary<string, string>.Empty, connection);

    private static CallItem Media(long seq) =>
        new(Interlocked.Increment(ref _nextIndex), CallItemKind.Media, seq, null, seq * 20, [(byte)seq, (byte)(seq >> 8)], null, null, null);

    private static CallItem Mark(long seq, string name) =>
        new(Interlocked.Increment(ref _nextIndex), CallItemKind.Mark, seq, null, seq * 20, null, null, null, name);

    private static string NewStreamId() => Guid.NewGuid().ToString("N");

    private static async Task<List<Dictionary<string, string>>> CallsOf(IConnectionMultiplexer redis, string id) =>
        [.. await RedisStreams.ReadLifecycleAsync(redis, id)];

    [Fact]
    [Trait("Category", "Slow")]
    public async Task At_the_shortest_retention_a_call_with_a_50_second_quiet_stretch_lands_whole_with_one_start_and_one_stop()
    {
        await using var cluster = await IngestGrainCluster.StartWithAsync(new Dictionary<string, string> { ["StreamTtl"] = "00:01:00" });
        var id = NewStreamId();
        var grain = cluster.Cluster.Client.GetGrain<ICallStreamGrain>(id);
        Assert.Equal(CallAckStatus.Ok, (await grain.Start(Start(id))).Status);
        Assert.Equal(CallAckStatus.Ok, (await grain.Append("conn-1", [.. Enumerable.Range(2, 30).Select(s => Media(s))])).Status);

        // Quiet: only the gateway's heartbeat (an empty append every 10 s) reaches the grain.
        for (var i = 0; i < 5; i++)
        {
            await Task.Delay(TimeSpan.FromSeconds(10));
            Assert.Equal(CallAckStatus.Ok, (await grain.Append("conn-1", [])).Status);
        }

        Assert.Equal(CallAckStatus.Ok, (await grain.Append("conn-1", [.. Enumerable.Range(32, 30).Select(s => Media(s))])).Status);
        await grain.Stop(new CallStop("callended", 62, "conn-1"));

        Assert.Equal(Enumerable.Range(2, 60).Select(s => (long)s), (await RedisStreams.ReadAudioAsync(cluster.Connection, id)).Select(a => a.Seq));
        Assert.Equal(["start", "stop"], (await CallsOf(cluster.Connection, id)).Select(e => e["event"]));
    }

    [Fact]
    public async Task A_20_ms_frame_call_longer_than_the_old_length_bound_keeps_its_first_frame_while_live()
    {
        await using var cluster = await IngestGrainCluster.StartWithAsync(new Dictionary<string, string>());
        var id = NewStreamId();
        var grain = cluster.Cluster.Client.GetGrain<ICallStreamGrain>(id);
        await grain.Start(Start(id));

        // 40,000 frames of 20 ms (13 minutes): above the 36,000 entries INGEST_AUDIO_MAXLEN used to trim live streams to.
        for (var seq = 2; seq < 40_002; seq += 250)
        {
            Assert.Equal(CallAckStatus.Ok, (await grain.Append("conn-1", [.. Enumerable.Range(seq, 250).Select(s => Media(s))])).Status);
        }

        var db = cluster.Connection.GetDatabase();
        var audio = "ingest:audio:{" + id + "}";
        Assert.Equal(40_000, await db.StreamLengthAsync(audio));
        Assert.Equal("2", (await db.StreamRangeAsync(audio, "-", "+", 1))[0]["seq"].ToString());
        await grain.Stop(new CallStop("callended", 40_002, "conn-1"));
    }

    [Fact]
    public async Task The_copied_number_deleted_mid_call_as_an_expiry_would_and_the_stop_is_still_copied_once()
    {
        await using var cluster = await IngestGrainCluster.StartWithAsync(new Dictionary<string, string>());
        var id = NewStreamId();
        var grain = cluster.Cluster.Client.GetGrain<ICallStreamGrain>(id);
        await grain.Start(Start(id));
        await grain.Append("conn-1", [Media(2), Mark(3, "before")]);
        Assert.True(await cluster.Connection.GetDatabase().KeyDeleteAsync("{ingest:calls}:copied:" + id));

        await grain.Append("conn-1", [Media(4), Mark(5, "after")]);
        Assert.Equal(CallAckStatus.Ok, (await grain.Stop(new CallStop("callended", 6, "conn-1"))).Status);

        Assert.True(await RedisStreams.WaitUntilAsync(async () => (await CallsOf(cluster.Connection, id)).Any(e => e["event"] == "stop"), TimeSpan.FromSeconds(10)));
        Assert.Equal(["start", "mark", "mark", "stop"], (await CallsOf(cluster.Connection, id)).Select(e => e["event"]));
        Assert.Null(await cluster.Connection.GetDatabase().SortedSetScoreAsync("{ingest:calls}:open", id));
    }

    [Fact]
    public async Task Sixty_thousand_marks_on_one_call_leave_at_most_the_bound_in_ingest_calls_and_a_call_beside_it_exact()
    {
        await using var cluster = await IngestGrainCluster.StartWithAsync(new Dictionary<string, string>());
        var noisy = NewStreamId();
        var normal = NewStreamId();
        var n = cluster.Cluster.Client.GetGrain<ICallStreamGrain>(noisy);
        var c = cluster.Cluster.Client.GetGrain<ICallStreamGrain>(normal);
        await n.Start(Start(noisy));
        await c.Start(Start(normal));

        long seq = 2, normalSeq = 2;
        for (var batch = 0; batch < 240; batch++)
        {
            var items = Enumerable.Range(0, 250).Select(_ => Mark(seq++, "m")).ToImmutableArray();
            Assert.Equal(CallAckStatus.Ok, (await n.Append("conn-1", items)).Status);
            if (batch % 24 == 0)
            {
                await c.Append("conn-1", [Media(normalSeq++), Mark(normalSeq++, "turn")]);
            }
        }

        await n.Append("conn-1", [Media(seq)]);
        await n.Stop(new CallStop("callended", seq + 1, "conn-1"));
        await c.Stop(new CallStop("callended", normalSeq, "conn-1"));

        var noisyEntries = await CallsOf(cluster.Connection, noisy);
        Assert.Equal(10_000, noisyEntries.Count(e => e["event"] == "mark"));
        var stop = Assert.Single(noisyEntries, e => e["event"] == "stop");
        Assert.Equal("50000", stop["events_dropped"]);
        Assert.Equal("1", stop["frames"]);
        Assert.DoesNotContain(noisyEntries, e => e["event"] == "gap");

        var normalEntries = await CallsOf(cluster.Connection, normal);
        Assert.Equal(["start", .. Enumerable.Repeat("mark", 10), "stop"], normalEntries.Select(e => e["event"]));
        Assert.Equal("0", normalEntries[^1]["events_dropped"]);
        Assert.Equal(Enumerable.Range(0, 10).Select(s => 2L + (2 * s)), (await RedisStreams.ReadAudioAsync(cluster.Connection, normal)).Select(a => a.Seq));
    }

    [Fact]
    public async Task While_Redis_is_away_marks_count_against_the_silos_byte_budget_and_are_pushed_back_not_dropped()
    {
        await using var cluster = await IngestGrainCluster.StartWithAsync(new Dictionary<string, string>
        {
            ["MaxEventsPerCall"] = "1000000",
            ["BufferLimit"] = "1000000",
            ["BufferBytes"] = (4 * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["SiloBufferBytes"] = (8 * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        var budget = cluster.SiloService<SiloBuffers>();
        var id = NewStreamId();
        var grain = cluster.Cluster.Client.GetGrain<ICallStreamGrain>(id);
        await grain.Start(Start(id));
        await cluster.Redis.ShutdownSaveAsync();

        // 200,000 marks of 1 KiB (about 200 MiB): what the grain holds stays inside the call's 4 MiB.
        var name = new string('x', 1024);
        var sent = new List<CallItem>();
        long settled = 0, peak = 0;
        var busy = 0;
        for (var seq = 2; seq < 200_002; seq += 500)
        {
            var items = Enumerable.Range(seq, 500).Select(s => Mark(s, name)).ToImmutableArray();
            sent.AddRange(items);
            var ack = await grain.Append("conn-1", items);
            busy += ack.Status == CallAckStatus.Busy ? 1 : 0;
            settled = Math.Max(settled, ack.SettledIndex);
            peak = Math.Max(peak, budget.Bytes);
        }

        Assert.InRange(peak, 1024 * 1024, 4 * 1024 * 1024);
        Assert.True(busy > 350, $"pushed back {busy} of 400 batches");

        // Redis back: what the grain took is written; what it refused comes again from the gateway's copy.
        await cluster.Redis.StartProcessAsync();
        var accepted = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            var ack = await grain.Append("conn-1", []);
            if (ack.Status == CallAckStatus.Ok && ack.Buffered == 0)
            {
                accepted = (int)(ack.SettledIndex - sent[0].Index + 1);
                break;
            }

            await Task.Delay(200);
        }

        Assert.InRange(accepted, 1000, 4096);
        var marks = await cluster.Connection.GetDatabase().StreamRangeAsync("ingest:lifecycle:{" + id + "}");
        Assert.Equal(Enumerable.Range(2, accepted).Select(s => s.ToString(System.Globalization.CultureInfo.InvariantCulture)), marks.Where(e => e["event"] == "mark").Select(e => e["seq"].ToString()));
        Assert.Equal(0, budget.Bytes);
    }

    [Fact]
    public async Task A_silent_owners_stream_is_ended_after_the_orphan_timeout_and_never_handed_to_another_connection()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var cluster = await IngestGrainCluster.StartWithAsync(new Dictionary<string, string>(), orphanSeconds: 40, time: time);
        var id = NewStreamId();
        var grain = cluster.Cluster.Client.GetGrain<ICallStreamGrain>(id);
        Assert.Equal(CallAckStatus.Ok, (await grain.Start(Start(id, "owner"))).Status);
        await grain.Append("owner", [Media(2)]);

        // Silent past the 30 s lease a former release handed streams over after: still the owner's.
        time.Advance(TimeSpan.FromSeconds(35));
        Assert.Equal(CallAckStatus.Conflict, (await grain.Start(Start(id, "intruder"))).Status);

        // Past INGEST_ORPHAN_SECONDS the grain ends it itself; the other connection is told it is over.
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.True(await RedisStreams.WaitUntilAsync(async () => (await CallsOf(cluster.Connection, id)).Any(e => e["event"] == "stop"), TimeSpan.FromSeconds(20)));
        Assert.Equal("gateway_lost", (await CallsOf(cluster.Connection, id)).Single(e => e["event"] == "stop")["reason"]);
        Assert.Equal(CallAckStatus.Ended, (await grain.Start(Start(id, "intruder"))).Status);
        Assert.Equal([2L], (await RedisStreams.ReadAudioAsync(cluster.Connection, id)).Select(a => a.Seq));
    }
}
