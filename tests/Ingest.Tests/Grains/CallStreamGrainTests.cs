using System.Collections.Immutable;
using System.Globalization;
using Ingest.Grains.Interfaces;
using Ingest.Tests.Infrastructure;
using StackExchange.Redis;

namespace Ingest.Tests.Grains;

[Collection(GrainClusterCollection.Name)]
public sealed class CallStreamGrainTests(GrainClusterFixture fixture)
{
    private static long _nextIndex;

    private static CallStart ExotelStart(string streamId, string connection = "conn-1") =>
        new(CallProtocol.Exotel, streamId, "call-" + streamId, "acct", "+911", "+912", "pcm16le", 8000, 1,
            ImmutableDictionary<string, string>.Empty, connection);

    private static CallItem Media(long seq, long? chunk = null) =>
        new(Interlocked.Increment(ref _nextIndex), CallItemKind.Media, seq, chunk, seq * 100, [(byte)seq, (byte)(seq >> 8)], null, null, null);

    private static CallItem Dtmf(long seq, string digit) =>
        new(Interlocked.Increment(ref _nextIndex), CallItemKind.Dtmf, seq, null, seq * 100, null, digit, 100, null);

    private static CallItem Mark(long seq, string name) =>
        new(Interlocked.Increment(ref _nextIndex), CallItemKind.Mark, seq, null, seq * 100, null, null, null, name);

    private ICallStreamGrain Grain(string streamId) => fixture.Cluster.Client.GetGrain<ICallStreamGrain>(streamId);

    private static string NewStreamId() => Guid.NewGuid().ToString("N");

    [Fact]
    public async Task A_warmup_calls_lifecycle_copy_renews_the_expiry_of_its_calls_stream_and_open_set_and_a_live_one_leaves_ingest_calls_without()
    {
        // The warm-up's calls stream and open set must expire like its calls' keys. They were given an expiry once, by
        // the gateway at the end of its warm-up; an entry copied after that had run out (a call ended late) made them
        // again without one, for good.
        var db = fixture.Connection.GetDatabase();
        var first = WarmupCalls.Prefix + NewStreamId();
        await Grain(first).Start(ExotelStart(first));
        Assert.InRange((await db.KeyTimeToLiveAsync(WarmupCalls.CallsKey))!.Value, TimeSpan.FromSeconds(1), WarmupCalls.Retention);

        await db.KeyPersistAsync(WarmupCalls.CallsKey);
        await db.KeyPersistAsync(WarmupCalls.OpenKey);
        Assert.Null(await db.KeyTimeToLiveAsync(WarmupCalls.CallsKey));
        var late = WarmupCalls.Prefix + NewStreamId();
        await Grain(late).Start(ExotelStart(late));
        Assert.InRange((await db.KeyTimeToLiveAsync(WarmupCalls.CallsKey))!.Value, TimeSpan.FromSeconds(1), WarmupCalls.Retention);
        Assert.InRange((await db.KeyTimeToLiveAsync(WarmupCalls.OpenKey))!.Value, TimeSpan.FromSeconds(1), WarmupCalls.Retention);

        // Real calls' lifecycle stream is trimmed by length and never expires (CONTRACT §8).
        var live = NewStreamId();
        await Grain(live).Start(ExotelStart(live));
        Assert.True(await db.KeyExistsAsync("ingest:calls"));
        Assert.Null(await db.KeyTimeToLiveAsync("ingest:calls"));
        await Grain(first).Stop(new CallStop("callended", 2, "conn-1"));
        await Grain(late).Stop(new CallStop("callended", 2, "conn-1"));
        await Grain(live).Stop(new CallStop("callended", 2, "conn-1"));
    }

    [Fact]
    public async Task Frames_are_published_once_each_in_sequence_order()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        for (var seq = 2; seq <= 101; seq += 10)
        {
            var batch = Enumerable.Range(seq, 10).Select(s => Media(s)).ToImmutableArray();
            var ack = await grain.Append("conn-1", batch);
            Assert.Equal(CallAckStatus.Ok, ack.Status);
            Assert.Equal(batch[^1].Index, ack.SettledIndex);
        }

        await grain.Stop(new CallStop("callended", 102, "conn-1"));

        var audio = await RedisStreams.ReadAudioAsync(fixture.Connection, id);
        Assert.Equal(Enumerable.Range(2, 100).Select(i => (long)i), audio.Select(a => a.Seq));
        Assert.All(audio, a => Assert.Equal(new[] { (byte)a.Seq, (byte)(a.Seq >> 8) }, a.Audio));
        var lifecycle = await RedisStreams.ReadLifecycleAsync(fixture.Connection, id);
        Assert.Equal(["start", "stop"], lifecycle.Select(e => e["event"]));
        Assert.Equal("call-" + id, lifecycle[0]["call_sid"]);
        Assert.Equal("8000", lifecycle[0]["sample_rate"]);
        Assert.Equal("callended", lifecycle[1]["reason"]);
        Assert.Equal("100", lifecycle[1]["frames"]);
    }

    [Fact]
    public async Task Duplicate_sequence_number_is_dropped_and_counted()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        await grain.Append("conn-1", [Media(2), Media(3)]);
        var ack = await grain.Append("conn-1", [Media(3), Media(2), Media(4)]);

        Assert.Equal(2, ack.Duplicates);
        var audio = await RedisStreams.ReadAudioAsync(fixture.Connection, id);
        Assert.Equal([2L, 3L, 4L], audio.Select(a => a.Seq));
    }

    [Fact]
    public async Task Missing_sequence_number_is_recorded_as_a_gap_entry()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        var ack = await grain.Append("conn-1", [Media(2), Media(3), Media(6), Media(7)]);

        Assert.Equal(1, ack.GapsRecorded);
        Assert.Equal(2, ack.MissingFrames);
        var gap = Assert.Single(await RedisStreams.ReadLifecycleAsync(fixture.Connection, id), e => e["event"] == "gap");
        Assert.Equal("4", gap["from_seq"]);
        Assert.Equal("5", gap["to_seq"]);
        Assert.Equal("2", gap["missing"]);
        Assert.Equal([2L, 3L, 6L, 7L], (await RedisStreams.ReadAudioAsync(fixture.Connection, id)).Select(a => a.Seq));
    }

    [Fact]
    public async Task Dtmf_and_mark_take_sequence_numbers_without_making_a_gap()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        var ack = await grain.Append("conn-1", [Media(2), Dtmf(3, "5"), Media(4), Mark(5, "turn-1"), Media(6)]);

        Assert.Equal(0, ack.GapsRecorded);
        var lifecycle = await RedisStreams.ReadLifecycleAsync(fixture.Connection, id);
        Assert.DoesNotContain(lifecycle, e => e["event"] == "gap");
        Assert.Equal("5", Assert.Single(lifecycle, e => e["event"] == "dtmf")["digit"]);
        Assert.Equal("turn-1", Assert.Single(lifecycle, e => e["event"] == "mark")["name"]);
        Assert.Equal([2L, 4L, 6L], (await RedisStreams.ReadAudioAsync(fixture.Connection, id)).Select(a => a.Seq));
    }

    [Fact]
    public async Task Frame_lost_before_a_reordered_dtmf_is_one_gap()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));

        // The protocol vectors' sequence: media 2 (chunk 1), media 3 (chunk 2), dtmf 7, media 5 (chunk 4): one frame lost.
        var ack = await grain.Append("conn-1", [Media(2, 1), Media(3, 2), Dtmf(7, "5"), Media(5, 4)]);

        Assert.Equal(1, ack.GapsRecorded);
        Assert.Equal(1, ack.MissingFrames);
    }

    [Fact]
    public async Task Resend_after_the_grain_lost_its_activation_is_not_written_twice()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        await grain.Append("conn-1", [Media(2), Media(3), Media(4)]);

        // A fresh activation (as after a silo failure) knows only what Redis holds.
        var management = fixture.Cluster.Client.GetGrain<IManagementGrain>(0);
        await management.ForceActivationCollection(TimeSpan.Zero);
        await Task.Delay(200);

        var notStarted = await grain.Append("conn-1", [Media(5)]);
        Assert.Equal(CallAckStatus.NotStarted, notStarted.Status);
        await grain.Start(ExotelStart(id));
        var ack = await grain.Append("conn-1", [Media(3), Media(4), Media(5), Media(6)]);

        Assert.Equal(2, ack.Duplicates);
        Assert.Equal([2L, 3L, 4L, 5L, 6L], (await RedisStreams.ReadAudioAsync(fixture.Connection, id)).Select(a => a.Seq));
        Assert.Single(await RedisStreams.ReadLifecycleAsync(fixture.Connection, id), e => e["event"] == "start");
    }

    [Fact]
    public async Task A_second_connection_cannot_take_a_live_stream()
    {
        var id = NewStreamId();
        await Grain(id).Start(ExotelStart(id, "owner"));
        var ack = await Grain(id).Start(ExotelStart(id, "intruder"));
        Assert.Equal(CallAckStatus.Conflict, ack.Status);
    }

    [Fact]
    public async Task A_stopped_stream_accepts_nothing_more()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        await grain.Append("conn-1", [Media(2)]);
        await grain.Stop(new CallStop("stopped", 3, "conn-1"));

        var again = await grain.Start(ExotelStart(id));
        Assert.Equal(CallAckStatus.Ended, again.Status);
        var stops = (await RedisStreams.ReadLifecycleAsync(fixture.Connection, id)).Count(e => e["event"] == "stop");
        Assert.Equal(1, stops);
    }

    [Fact]
    public async Task Call_whose_gateway_went_silent_is_ended_by_its_grain_with_reason_gateway_lost()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        await grain.Append("conn-1", [Media(2), Media(3)]);

        // The fixture's orphan timeout is 3 s; nothing more is sent, as when a gateway process dies mid-call.
        var ended = await RedisStreams.WaitUntilAsync(
            async () => (await RedisStreams.ReadLifecycleAsync(fixture.Connection, id)).Any(e => e["event"] == "stop"),
            TimeSpan.FromSeconds(15));

        Assert.True(ended);
        var stop = Assert.Single(await RedisStreams.ReadLifecycleAsync(fixture.Connection, id), e => e["event"] == "stop");
        Assert.Equal("gateway_lost", stop["reason"]);
        Assert.Equal("2", stop["frames"]);
    }

    [Fact]
    public async Task A_streams_keys_expire_the_retention_time_after_its_stop()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        await grain.Append("conn-1", [Media(2), Media(3)]);
        await grain.Stop(new CallStop("stopped", 4, "conn-1"));

        var db = fixture.Connection.GetDatabase();
        foreach (var key in new[] { "ingest:audio:{" + id + "}", "ingest:cursor:{" + id + "}" })
        {
            var ttl = await db.KeyTimeToLiveAsync(key);
            Assert.NotNull(ttl);
            Assert.InRange(ttl.Value.TotalSeconds, 880, 900);
        }
    }

    [Fact]
    public async Task The_meta_hash_holds_the_start_fields_then_the_stop_fields_and_expires_with_the_audio()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        var db = fixture.Connection.GetDatabase();
        var meta = "ingest:meta:{" + id + "}";
        await grain.Start(ExotelStart(id));

        var started = (await db.HashGetAllAsync(meta)).ToDictionary(e => (string)e.Name!, e => (string)e.Value!);
        Assert.Equal(id, started["stream_id"]);
        Assert.Equal("exotel", started["protocol"]);
        Assert.Equal("pcm16le", started["encoding"]);
        Assert.Equal("8000", started["sample_rate"]);
        Assert.Equal("call-" + id, started["call_sid"]);
        Assert.InRange(long.Parse(started["started_at"]), DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeMilliseconds(), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        Assert.False(started.ContainsKey("stopped_at"));

        // Frames write nothing to the meta hash.
        await grain.Append("conn-1", [Media(2), Media(3), Media(6)]);
        Assert.Equal(started.Count, (int)await db.HashLengthAsync(meta));

        await grain.Stop(new CallStop("stopped", 7, "conn-1"));
        var stopped = (await db.HashGetAllAsync(meta)).ToDictionary(e => (string)e.Name!, e => (string)e.Value!);
        var stop = Assert.Single(await RedisStreams.ReadLifecycleAsync(fixture.Connection, id), e => e["event"] == "stop");
        Assert.Equal("stopped", stopped["stop_reason"]);
        Assert.Equal(stop["at"], stopped["stopped_at"]);
        Assert.Equal("3", stopped["frames"]);
        Assert.Equal("1", stopped["gaps"]);
        Assert.Equal("2", stopped["missing"]);
        Assert.Equal(started["started_at"], stopped["started_at"]);

        var audioTtl = await db.KeyTimeToLiveAsync("ingest:audio:{" + id + "}");
        var metaTtl = await db.KeyTimeToLiveAsync(meta);
        Assert.NotNull(metaTtl);
        Assert.InRange(metaTtl.Value.TotalSeconds, 880, 900);
        Assert.InRange((metaTtl.Value - audioTtl!.Value).Duration().TotalSeconds, 0, 2);
    }

    [Fact]
    public async Task A_stream_that_never_stops_expires_the_retention_time_after_its_last_write()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        await grain.Append("conn-1", [Media(2)]);
        await Task.Delay(1100);
        await grain.Append("conn-1", [Media(3)]);
        var lastWrite = DateTime.UtcNow;

        // A live call's writes push the expiry forward every tenth of the retention time (30 s at most): the keys expire
        // at least the retention time (900 s here), at most that and 30 s, after the last write.
        var db = fixture.Connection.GetDatabase();
        foreach (var key in new[] { "ingest:audio:{" + id + "}", "ingest:cursor:{" + id + "}" })
        {
            var ttl = await db.KeyTimeToLiveAsync(key);
            Assert.NotNull(ttl);
            var expiresAfterLastWrite = (DateTime.UtcNow + ttl.Value - lastWrite).TotalSeconds;
            Assert.InRange(expiresAfterLastWrite, 899, 931);
        }
    }

    [Fact]
    public async Task An_absurd_sequence_number_is_malformed_and_does_not_poison_the_rest_of_the_call()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        var ack = await grain.Append("conn-1", [Media(2), Media(long.MaxValue - 1), Media(1_764_000_000_000), Media(3), Dtmf(9_000_000, "1"), Media(4)]);

        Assert.Equal(3, ack.Malformed);
        Assert.Equal(0, ack.GapsRecorded);
        Assert.Equal([2L, 3L, 4L], (await RedisStreams.ReadAudioAsync(fixture.Connection, id)).Select(a => a.Seq));
    }

    [Fact]
    public async Task Numbers_missing_just_before_the_stop_are_a_trailing_gap()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        await grain.Append("conn-1", [Media(2), Media(3)]);
        await grain.Stop(new CallStop("callended", 7, "conn-1"));

        var lifecycle = await RedisStreams.ReadLifecycleAsync(fixture.Connection, id);
        var gap = Assert.Single(lifecycle, e => e["event"] == "gap");
        Assert.Equal(("4", "6", "3", "missing"), (gap["from_seq"], gap["to_seq"], gap["missing"], gap["reason"]));
        Assert.Equal(["start", "gap", "stop"], lifecycle.Select(e => e["event"]));
    }

    [Fact]
    public async Task A_received_but_unusable_frame_is_a_malformed_gap_not_a_missing_one()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        var first = Media(2);
        var bad = new CallItem(Interlocked.Increment(ref _nextIndex), CallItemKind.Malformed, 3, null, 300, null, null, null, null);
        var bad2 = new CallItem(Interlocked.Increment(ref _nextIndex), CallItemKind.Malformed, 4, null, 400, null, null, null, null);
        await grain.Append("conn-1", [first, bad, bad2, Media(5)]);

        var gap = Assert.Single(await RedisStreams.ReadLifecycleAsync(fixture.Connection, id), e => e["event"] == "gap");
        Assert.Equal(("3", "4", "2", "malformed"), (gap["from_seq"], gap["to_seq"], gap["missing"], gap["reason"]));
        Assert.Equal([2L, 5L], (await RedisStreams.ReadAudioAsync(fixture.Connection, id)).Select(a => a.Seq));
    }

    [Fact]
    public async Task Frames_of_the_owner_after_the_stream_stopped_leave_an_after_stop_gap()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        await grain.Append("conn-1", [Media(2)]);
        await grain.Stop(new CallStop("gateway_lost", null, "conn-1"));
        var ack = await grain.Append("conn-1", [Media(3), Media(4)]);

        Assert.Equal(CallAckStatus.Ended, ack.Status);
        var gap = Assert.Single(await RedisStreams.ReadLifecycleAsync(fixture.Connection, id), e => e["event"] == "gap");
        Assert.Equal(("3", "4", "2", "after_stop"), (gap["from_seq"], gap["to_seq"], gap["missing"], gap["reason"]));
    }

    [Fact]
    public async Task A_resent_frame_zero_is_not_written_twice()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id) with { StartSequence = null });
        await grain.Append("conn-1", [Media(0)]);
        var ack = await grain.Append("conn-1", [Media(0), Media(1)]);

        Assert.Equal(1, ack.Duplicates);
        Assert.Equal([0L, 1L], (await RedisStreams.ReadAudioAsync(fixture.Connection, id)).Select(a => a.Seq));
    }

    [Fact]
    public async Task Reordered_dtmf_and_mark_are_published_and_make_no_phantom_gap()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        var ack = await grain.Append("conn-1", [Media(2), Mark(4, "m"), Dtmf(3, "5"), Media(5), Dtmf(7, "6"), Media(6), Media(8)]);

        Assert.Equal(0, ack.GapsRecorded);
        Assert.Equal(0, ack.Duplicates);
        var lifecycle = await RedisStreams.ReadLifecycleAsync(fixture.Connection, id);
        Assert.Equal(["start", "mark", "dtmf", "dtmf"], lifecycle.Select(e => e["event"]));
        Assert.Equal([2L, 5L, 6L, 8L], (await RedisStreams.ReadAudioAsync(fixture.Connection, id)).Select(a => a.Seq));
    }

    [Fact]
    public async Task Ten_thousand_marks_between_two_frames_keep_the_cursor_small_and_make_no_gap()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        await grain.Append("conn-1", [Media(2)]);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (var from = 3; from < 10_003; from += 100)
        {
            await grain.Append("conn-1", [.. Enumerable.Range(from, 100).Select(n => Mark(n, "m" + n))]);
        }

        var ack = await grain.Append("conn-1", [Media(10_003)]);
        clock.Stop();

        Assert.Equal(0, ack.GapsRecorded);
        var cursor = await fixture.Connection.GetDatabase().HashGetAllAsync("ingest:cursor:{" + id + "}");

        // The cursor holds a count of the events above the last frame, not their numbers.
        Assert.All(cursor, e => Assert.True(e.Value.Length() < 200, $"cursor field {e.Name} is {e.Value.Length()} bytes"));
        Assert.Equal(10_000, (await RedisStreams.ReadLifecycleAsync(fixture.Connection, id)).Count(e => e["event"] == "mark"));
    }

    [Fact]
    public async Task Another_connection_can_neither_append_to_nor_stop_a_live_stream()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id, "owner"));
        await grain.Append("owner", [Media(2)]);

        Assert.Equal(CallAckStatus.Conflict, (await grain.Append("intruder", [Media(3)])).Status);
        Assert.Equal(CallAckStatus.Conflict, (await grain.Stop(new CallStop("stopped", 4, "intruder"))).Status);
        Assert.Equal(CallAckStatus.Ok, (await grain.Append("owner", [Media(3)])).Status);
        Assert.DoesNotContain(await RedisStreams.ReadLifecycleAsync(fixture.Connection, id), e => e["event"] == "stop");
    }

    [Fact]
    public async Task Ownership_survives_a_reactivation_of_the_grain()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id, "owner"));
        await grain.Append("owner", [Media(2)]);

        // A fresh activation (as after a silo failure or a rolling restart) knows the owner from Redis.
        await fixture.Cluster.Client.GetGrain<IManagementGrain>(0).ForceActivationCollection(TimeSpan.Zero);
        await Task.Delay(200);

        Assert.Equal(CallAckStatus.Conflict, (await grain.Start(ExotelStart(id, "intruder"))).Status);
        Assert.Equal(CallAckStatus.Ok, (await grain.Start(ExotelStart(id, "owner"))).Status);
        Assert.Equal(CallAckStatus.Ok, (await grain.Append("owner", [Media(3)])).Status);
        Assert.Equal([2L, 3L], (await RedisStreams.ReadAudioAsync(fixture.Connection, id)).Select(a => a.Seq));
    }

    [Fact]
    public async Task Items_resent_by_the_gateway_after_a_reactivation_are_recognised_by_their_index()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        var first = Media(2);
        var dtmf = Dtmf(3, "1");
        await grain.Append("conn-1", [first, dtmf]);
        await fixture.Cluster.Client.GetGrain<IManagementGrain>(0).ForceActivationCollection(TimeSpan.Zero);
        await Task.Delay(200);

        await grain.Start(ExotelStart(id));
        await grain.Append("conn-1", [dtmf, Media(4)]);

        Assert.Single(await RedisStreams.ReadLifecycleAsync(fixture.Connection, id), e => e["event"] == "dtmf");
    }

    [Fact]
    public async Task A_Redis_that_lost_its_scripts_is_sent_them_again_and_nothing_is_lost()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        await grain.Append("conn-1", [Media(2), Media(3)]);

        // As after a restart or on a cluster node not used yet: EVALSHA answers NOSCRIPT, nothing ran.
        var server = fixture.Connection.GetServer(fixture.Connection.GetEndPoints()[0]);
        await server.ExecuteAsync("SCRIPT", "FLUSH");
        Assert.Equal(CallAckStatus.Ok, (await grain.Append("conn-1", [Media(4), Dtmf(5, "2")])).Status);
        await server.ExecuteAsync("SCRIPT", "FLUSH");
        Assert.Equal(CallAckStatus.Ok, (await grain.Stop(new CallStop("callended", 6, "conn-1"))).Status);

        Assert.Equal([2L, 3L, 4L], (await RedisStreams.ReadAudioAsync(fixture.Connection, id)).Select(a => a.Seq));
        Assert.Equal(["start", "dtmf", "stop"], (await RedisStreams.ReadLifecycleAsync(fixture.Connection, id)).Select(e => e["event"]));
    }

    [Fact]
    public async Task One_frame_batches_are_appended_without_the_script_with_write_time_and_frame_number_as_id()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        var begun = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await grain.Start(ExotelStart(id));
        await grain.Append("conn-1", [Media(2)]);
        var before = await CommandCallsAsync();
        for (var seq = 3; seq <= 42; seq++)
        {
            Assert.Equal(CallAckStatus.Ok, (await grain.Append("conn-1", [Media(seq, chunk: seq - 1)])).Status);
        }

        var after = await CommandCallsAsync();
        var scripts = after.GetValueOrDefault("evalsha") - before.GetValueOrDefault("evalsha");
        var adds = after.GetValueOrDefault("xadd") - before.GetValueOrDefault("xadd");

        // 40 frames: the script about once a second (its epoch lease), every frame an XADD.
        Assert.True(adds >= 40, $"{adds} XADD for 40 frames");
        Assert.True(scripts <= 6, $"{scripts} scripts for 40 one-frame batches (the other tests of this collection run one at a time)");
        var entries = await fixture.Connection.GetDatabase().StreamRangeAsync("ingest:audio:{" + id + "}");
        var ended = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var ids = entries.Select(e => e.Id.ToString().Split('-')).Select(p => (Ms: long.Parse(p[0], CultureInfo.InvariantCulture), N: long.Parse(p[1], CultureInfo.InvariantCulture))).ToList();
        // <epoch>-<frame number>: the frame numbers 1..41; the epochs times of the silo's clock while the test ran, never falling.
        Assert.Equal(Enumerable.Range(1, 41).Select(n => (long)n), ids.Select(i => i.N));
        Assert.All(ids, i => Assert.InRange(i.Ms, begun - 1000, ended + 1000));
        Assert.Equal(ids.Select(i => i.Ms).Order(), ids.Select(i => i.Ms));
        Assert.Equal(Enumerable.Range(2, 41).Select(n => (long)n), (await RedisStreams.ReadAudioAsync(fixture.Connection, id)).Select(a => a.Seq));
    }

    [Fact]
    public async Task Frames_appended_without_the_script_are_known_to_the_next_activation_and_never_written_twice()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        var sent = Enumerable.Range(2, 20).Select(seq => Media(seq, chunk: seq - 1)).ToList();
        foreach (var item in sent)
        {
            await grain.Append("conn-1", [item]);
        }

        await fixture.Cluster.Client.GetGrain<IManagementGrain>(0).ForceActivationCollection(TimeSpan.Zero);
        await Task.Delay(200);

        // The gateway resends its last ten items (same indexes), then goes on.
        await grain.Start(ExotelStart(id));
        var ack = await grain.Append("conn-1", [.. sent.Skip(10), Media(22, chunk: 21), Media(23, chunk: 22)]);
        Assert.Equal(CallAckStatus.Ok, ack.Status);
        Assert.Equal(0, ack.GapsRecorded);
        await grain.Stop(new CallStop("callended", 24, "conn-1"));

        Assert.Equal(Enumerable.Range(2, 22).Select(n => (long)n), (await RedisStreams.ReadAudioAsync(fixture.Connection, id)).Select(a => a.Seq));
        var stop = Assert.Single(await RedisStreams.ReadLifecycleAsync(fixture.Connection, id), e => e["event"] == "stop");
        Assert.Equal("22", stop["frames"]);
        Assert.DoesNotContain(await RedisStreams.ReadLifecycleAsync(fixture.Connection, id), e => e["event"] == "gap");
    }

    [Fact]
    public async Task A_batch_of_several_frames_only_is_appended_as_pipelined_XADDs_without_the_script()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        await grain.Append("conn-1", [Media(2, chunk: 1)]);
        var between = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(CallAckStatus.Ok, (await grain.Append("conn-1", [Media(3, chunk: 2), Media(4, chunk: 3), Media(5, chunk: 4)])).Status);
        var elapsed = between.Elapsed;

        // Frame 1 went through the script (the trim of the copied start was due) and took an epoch; a script run would
        // take a later one, so frames 2-4 carry frame 1's epoch only if they were bare XADDs within its lease (1 s).
        var entries = await fixture.Connection.GetDatabase().StreamRangeAsync("ingest:audio:{" + id + "}");
        Assert.Equal(["1", "2", "3", "4"], entries.Select(e => e.Id.ToString().Split('-')[1]));
        if (elapsed < TimeSpan.FromMilliseconds(900))
        {
            Assert.Single(entries.Select(e => e.Id.ToString().Split('-')[0]).Distinct());
        }

        // A dtmf in the batch changes more than the position: the script again, and every frame once.
        await grain.Append("conn-1", [Media(6, chunk: 5), Dtmf(7, "5"), Media(8, chunk: 6)]);
        await grain.Stop(new CallStop("callended", 9, "conn-1"));
        Assert.Equal([2L, 3L, 4L, 5L, 6L, 8L], (await RedisStreams.ReadAudioAsync(fixture.Connection, id)).Select(a => a.Seq));
        Assert.Single(await RedisStreams.ReadLifecycleAsync(fixture.Connection, id), e => e["event"] == "dtmf");
    }

    [Fact]
    public async Task A_frame_a_former_activation_appended_after_the_next_one_loaded_is_refused_by_the_fence_not_written_twice()
    {
        var id = NewStreamId();
        var grain = Grain(id);
        await grain.Start(ExotelStart(id));
        foreach (var seq in Enumerable.Range(2, 10))
        {
            await grain.Append("conn-1", [Media(seq, chunk: seq - 1)]);
        }

        await fixture.Cluster.Client.GetGrain<IManagementGrain>(0).ForceActivationCollection(TimeSpan.Zero);
        await Task.Delay(200);
        await grain.Start(ExotelStart(id));

        // The former activation's bare append of frame 12 (the call's 11th) lands only now, after the next activation
        // loaded the stream, with the former's older write time: an id Redis alone would accept before the next frame's.
        var late = Media(12, chunk: 11);
        var db = fixture.Connection.GetDatabase();
        var key = "ingest:audio:{" + id + "}";
        var top = (await db.StreamRangeAsync(key, "-", "+", 1, Order.Descending))[0];
        var topMs = long.Parse(top.Id.ToString().Split('-')[0], CultureInfo.InvariantCulture);
        await db.StreamAddAsync(
            key,
            [new NameValueEntry("seq", 12), new NameValueEntry("ts", 1200), new NameValueEntry("audio", new byte[] { 12, 0 }), new NameValueEntry("i", late.Index + ":11")],
            topMs + "-11");

        // The gateway resends that frame (it saw no ack) and goes on.
        var ack = await grain.Append("conn-1", [late, Media(13, chunk: 12)]);
        Assert.Equal(CallAckStatus.Ok, ack.Status);
        Assert.Equal(0, ack.GapsRecorded);
        await grain.Stop(new CallStop("callended", 14, "conn-1"));

        Assert.Equal(Enumerable.Range(2, 12).Select(n => (long)n), (await RedisStreams.ReadAudioAsync(fixture.Connection, id)).Select(a => a.Seq));
        Assert.Equal("12", Assert.Single(await RedisStreams.ReadLifecycleAsync(fixture.Connection, id), e => e["event"] == "stop")["frames"]);
    }

    private async Task<Dictionary<string, long>> CommandCallsAsync()
    {
        var server = fixture.Connection.GetServer(fixture.Connection.GetEndPoints()[0]);
        var info = (await server.ExecuteAsync("INFO", "commandstats")).ToString();
        var calls = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in info.Split('\n'))
        {
            // cmdstat_xadd:calls=12,usec=...
            if (line.StartsWith("cmdstat_", StringComparison.Ordinal) && line.IndexOf(':') is var colon and > 0)
            {
                var name = line[8..colon];
                var value = line[(colon + 7)..].Split(',')[0];
                calls[name] = long.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return calls;
    }
}
