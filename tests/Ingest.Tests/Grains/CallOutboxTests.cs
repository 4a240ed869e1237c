using System.Collections.Immutable;
using Ingest.Grains;
using Ingest.Grains.Publishing;
using Ingest.Grains.Sequencing;
using Ingest.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Ingest.Tests.Grains;

/// <summary>
/// The outbox on its own: a real redis-server, no cluster, a fake clock. A small driver plays the grain's part (it
/// numbers the entries and builds the cursor each leads to), so what is tested is only what the outbox owns.
/// </summary>
public sealed class CallOutboxTests : IAsyncLifetime
{
    private RedisServer _redis = null!;
    private ConnectionMultiplexer _connection = null!;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartAsync();
        _connection = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString + ",abortConnect=false,connectTimeout=500,syncTimeout=500,asyncTimeout=500");
    }

    public async Task DisposeAsync()
    {
        await _connection.DisposeAsync();
        await _redis.DisposeAsync();
    }

    private IDatabase Db => _connection.GetDatabase();

    private Driver NewCall(IngestOptions? options = null, SiloBuffers? silo = null, FakeTimeProvider? time = null, ILogger? logger = null)
    {
        options ??= new IngestOptions { StreamTtl = TimeSpan.FromSeconds(60) };
        time ??= new FakeTimeProvider(DateTimeOffset.UtcNow);
        var store = new CallStreamStore(_connection, Options.Create(options), time);
        var id = Guid.NewGuid().ToString("N");
        return new Driver(id, new CallOutbox(store.ForStream(id), silo ?? new SiloBuffers(), GrainMetrics.Live, logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance), time, store);
    }

    private async Task<List<Dictionary<string, string>>> CallsOf(string id) => [.. await RedisStreams.ReadLifecycleAsync(_connection, id)];

    [Fact]
    public async Task Every_entry_counts_against_the_calls_count_and_byte_budgets_and_the_silos()
    {
        var silo = new SiloBuffers();
        var options = new IngestOptions { BufferLimit = 5, BufferBytes = 64 * 1024, SiloBufferBytes = 100 * 1024 };
        var a = NewCall(options, silo);
        var b = NewCall(options, silo);

        // The count: five entries of any kind, then nothing fits.
        a.Start();
        a.Mark(2, "m1");
        a.Gap(3, 3);
        a.Audio(4, 100);
        a.Mark(5, "m2");
        Assert.False(a.Outbox.Fits(0));

        // Bytes: a mark holds bytes too, not only audio.
        Assert.True(a.Outbox.Count == 5 && silo.Bytes > 100 + (3 * 96));

        // The silo's bytes are shared by its calls (a service, not a static: a fresh SiloBuffers starts at 0).
        b.Audio(2, 60 * 1024);
        Assert.False(b.Outbox.Fits(60 * 1024));
        Assert.False(a.Outbox.Fits(0) && a.Outbox.Fits(40 * 1024));
        Assert.Equal(0, new SiloBuffers().Bytes);

        // Written, the budget is given back.
        await a.Outbox.FlushAsync(force: true);
        await b.Outbox.FlushAsync(force: true);
        Assert.Equal(0, silo.Bytes);
        Assert.True(a.Outbox.Fits(0));
    }

    [Fact]
    public async Task Consecutive_overflowed_frames_coalesce_into_one_gap_entry()
    {
        var call = NewCall();
        call.Start();
        call.Audio(2, 10);
        Assert.True(call.OverflowGap(3));
        Assert.False(call.OverflowGap(4));
        Assert.False(call.OverflowGap(5));
        call.Audio(6, 10);
        await call.Outbox.FlushAsync(force: true);

        var gap = Assert.Single(await CallsOf(call.Id), e => e["event"] == "gap");
        Assert.Equal(("3", "5", "3", "buffer_overflow"), (gap["from_seq"], gap["to_seq"], gap["missing"], gap["reason"]));
    }

    [Fact]
    public async Task A_live_calls_keys_are_pushed_forward_from_its_heartbeat_while_it_is_quiet_and_get_the_retention_at_the_stop()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var call = NewCall(new IngestOptions { StreamTtl = TimeSpan.FromSeconds(60) }, time: time);
        call.Start();
        call.Audio(2, 10);
        await call.Outbox.FlushAsync(force: false);
        var cursorKey = "ingest:cursor:{" + call.Id + "}";
        var audioKey = "ingest:audio:{" + call.Id + "}";

        // Live: the retention plus the push interval (a tenth of it), on every key of the call.
        Assert.InRange((await Db.KeyTimeToLiveAsync(audioKey))!.Value.TotalSeconds, 60, 66);
        await Db.KeyExpireAsync(audioKey, TimeSpan.FromSeconds(5));
        await Db.KeyExpireAsync(cursorKey, TimeSpan.FromSeconds(5));

        // A heartbeat before the interval is over writes nothing; one after it pushes the expiry forward.
        time.Advance(TimeSpan.FromSeconds(3));
        await call.Outbox.HeartbeatAsync();
        Assert.True((await Db.KeyTimeToLiveAsync(cursorKey))!.Value.TotalSeconds <= 5);
        time.Advance(TimeSpan.FromSeconds(4));
        await call.Outbox.HeartbeatAsync();
        Assert.InRange((await Db.KeyTimeToLiveAsync(cursorKey))!.Value.TotalSeconds, 60, 66);
        Assert.InRange((await Db.KeyTimeToLiveAsync(audioKey))!.Value.TotalSeconds, 60, 66);

        // The stop: exactly the retention.
        call.Stop();
        await call.Outbox.FlushAsync(force: true);
        Assert.InRange((await Db.KeyTimeToLiveAsync(audioKey))!.Value.TotalSeconds, 55, 60);
    }

    [Fact]
    public async Task A_write_that_timed_out_but_landed_is_settled_from_the_cursor_and_not_written_twice()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var call = NewCall(time: time);
        call.Start();
        call.Audio(2, 10);
        await call.Outbox.FlushAsync(force: true);

        // Redis freezes mid-write: the write is sent, the answer does not come within the write timeout.
        _redis.Pause();
        call.Audio(3, 10);
        call.Audio(4, 10);
        var flush = call.Outbox.FlushAsync(force: true);
        await Task.Delay(200);
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(FlushOutcome.Held, await flush);
        Assert.True(call.Outbox.RedisDown);

        // It wakes and runs what it was sent; the next flush reads the cursor, settles both frames, writes nothing again.
        _redis.Resume();
        call.Audio(5, 10);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(await RedisStreams.WaitUntilAsync(async () => await call.Outbox.FlushAsync(force: true) == FlushOutcome.Done, TimeSpan.FromSeconds(10)));
        Assert.Equal([2L, 3, 4, 5], (await RedisStreams.ReadAudioAsync(_connection, call.Id)).Select(a => a.Seq));
        Assert.Equal(0, call.Outbox.Count);
    }

    [Fact]
    public async Task Appended_frames_a_failed_over_master_lost_make_the_settling_read_a_conflict_never_a_silent_hole()
    {
        // Frames 3 and 4 go as bare appends and are acknowledged; the master then fails over before its replica had
        // them (played here by deleting them: the stream's last entry is frame 2 again, the cursor's version unchanged).
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var call = NewCall(time: time);
        call.Start();
        call.Audio(2, 10);
        await call.Outbox.FlushAsync(force: true);
        call.Audio(3, 10);
        await call.Outbox.FlushAsync(force: true);
        call.Audio(4, 10);
        await call.Outbox.FlushAsync(force: true);
        var audioKey = "ingest:audio:{" + call.Id + "}";
        var landed = await Db.StreamRangeAsync(audioKey);
        Assert.Equal(3, landed.Length);
        await Db.StreamDeleteAsync(audioKey, [landed[1].Id, landed[2].Id]);

        // The failover: the next write fails (the master is down; the server restarts with what it had saved). Once
        // Redis answers, the stream has fewer frames than were written, under the same version: a conflict (the grain
        // reloads and the gap shows), not "settled", and frame 5 is not written after frame 2.
        await _redis.ShutdownSaveAsync();
        call.Audio(5, 10);
        Assert.Equal(FlushOutcome.Held, await call.Outbox.FlushAsync(force: true));
        await _redis.StartProcessAsync();
        Assert.True(await RedisStreams.WaitUntilAsync(() => Task.FromResult(_connection.IsConnected), TimeSpan.FromSeconds(10)));
        time.Advance(TimeSpan.FromSeconds(1));
        var outcome = FlushOutcome.Held;
        Assert.True(await RedisStreams.WaitUntilAsync(async () => (outcome = await call.Outbox.FlushAsync(force: true)) != FlushOutcome.Held, TimeSpan.FromSeconds(10)));
        Assert.Equal(FlushOutcome.Conflict, outcome);
        Assert.Equal([2L], (await RedisStreams.ReadAudioAsync(_connection, call.Id)).Select(a => a.Seq));

        // The next activation numbers on from what the stream holds: frame 2 was the last one written.
        var (cursor, _) = await NewCallOn(call, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance).Outbox.LoadAsync();
        Assert.Equal((1L, 2L), (cursor.Frames, cursor.Sequence.MediaSeq));
    }

    [Fact]
    public async Task After_a_lost_connection_the_next_write_checks_the_stream_holds_every_appended_frame()
    {
        // A quiet call across a failover: nothing of it fails, but frame 3, appended bare and acknowledged, is gone
        // when the connection comes back. Frame 4 must not be appended after frame 2 as if nothing were missing.
        var call = NewCall();
        call.Start();
        call.Audio(2, 10);
        await call.Outbox.FlushAsync(force: true);
        call.Audio(3, 10);
        await call.Outbox.FlushAsync(force: true);
        var audioKey = "ingest:audio:{" + call.Id + "}";
        var landed = await Db.StreamRangeAsync(audioKey);
        await Db.StreamDeleteAsync(audioKey, [landed[^1].Id]);

        var failures = call.Store.ConnectionFailures;
        await using (var admin = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString + ",allowAdmin=true"))
        {
            await admin.GetDatabase().ExecuteAsync("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");
        }

        Assert.True(await RedisStreams.WaitUntilAsync(() => Task.FromResult(call.Store.ConnectionFailures > failures && _connection.IsConnected), TimeSpan.FromSeconds(10)));
        call.Audio(4, 10);
        Assert.Equal(FlushOutcome.Conflict, await call.Outbox.FlushAsync(force: true));
        Assert.Equal([2L], (await RedisStreams.ReadAudioAsync(_connection, call.Id)).Select(a => a.Seq));
    }

    [Fact]
    public async Task A_stream_whose_newest_scripted_frames_were_deleted_does_not_wedge_the_next_activation()
    {
        var call = NewCall();
        call.Start();
        call.Audio(2, 10);
        call.Audio(3, 10);
        await call.Outbox.FlushAsync(force: true);
        var audioKey = "ingest:audio:{" + call.Id + "}";
        var landed = await Db.StreamRangeAsync(audioKey);
        await Db.StreamDeleteAsync(audioKey, [landed[^1].Id]);

        // The cursor hash says two frames; the stream holds one. The next activation trusts the stream and writes on.
        var next = NewCallOn(call, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var (cursor, _) = await next.Outbox.LoadAsync();
        Assert.Equal(1, cursor.Frames);
        next.Resume(call);
        next.Continue(cursor);
        next.Audio(4, 10);
        Assert.Equal(FlushOutcome.Done, await next.Outbox.FlushAsync(force: true));
        Assert.Equal([2L, 4], (await RedisStreams.ReadAudioAsync(_connection, call.Id)).Select(a => a.Seq));
    }

    [Fact]
    public async Task A_copied_number_deleted_mid_call_neither_doubles_the_start_nor_wedges_the_stop()
    {
        var call = NewCall();
        call.Start();
        call.Audio(2, 10);
        await call.Outbox.FlushAsync(force: true);
        Assert.Equal(["start"], (await CallsOf(call.Id)).Select(e => e["event"]));

        // As an expiry or an eviction would.
        Assert.True(await Db.KeyDeleteAsync("{ingest:calls}:copied:" + call.Id));
        call.Mark(3, "m");
        call.Stop();
        await call.Outbox.FlushAsync(force: true);

        Assert.Equal(["start", "mark", "stop"], (await CallsOf(call.Id)).Select(e => e["event"]));
        Assert.False(call.Outbox.CopyDue);
        Assert.Null(await Db.SortedSetScoreAsync("{ingest:calls}:open", call.Id));
    }

    [Fact]
    public async Task Entries_ingest_calls_lost_in_a_rollback_are_copied_again_from_the_calls_own_keys_once()
    {
        var call = NewCall();
        call.Start();
        call.Mark(2, "a");
        call.Mark(3, "b");
        await call.Outbox.FlushAsync(force: true);
        Assert.Equal(3, (await CallsOf(call.Id)).Count);

        // A failover with WAIT 0: the new master lacks the last two entries and has the copied number before them.
        var entries = await Db.StreamRangeAsync("ingest:calls");
        await Db.StreamDeleteAsync("ingest:calls", [entries[^2].Id, entries[^1].Id]);
        await Db.StringSetAsync("{ingest:calls}:copied:" + call.Id, 1);

        call.Stop();
        await call.Outbox.FlushAsync(force: true);
        Assert.Equal(["start", "mark", "mark", "stop"], (await CallsOf(call.Id)).Select(e => e["event"]));
        Assert.Equal(["a", "b"], (await CallsOf(call.Id)).Where(e => e["event"] == "mark").Select(e => e["name"]));
    }

    [Fact]
    public async Task What_the_calls_own_keys_no_longer_hold_is_skipped_counted_and_logged_never_waited_for()
    {
        var logs = new CapturingLoggerProvider();
        var call = NewCall();
        call.Start();
        call.Mark(2, "a");
        await call.Outbox.FlushAsync(force: true);

        // Both lost: ingest:calls rolled back past the mark, and the call's own copy of it is gone too.
        var entries = await Db.StreamRangeAsync("ingest:calls");
        await Db.StreamDeleteAsync("ingest:calls", [entries[^1].Id]);
        await Db.StringSetAsync("{ingest:calls}:copied:" + call.Id, 1);
        await Db.StreamDeleteAsync("ingest:lifecycle:{" + call.Id + "}", ["0-2"]);

        var reloaded = NewCallOn(call, logs.CreateLogger("outbox"));
        await reloaded.Outbox.LoadAsync();
        reloaded.Resume(call);
        reloaded.Stop();
        await reloaded.Outbox.FlushAsync(force: true);

        Assert.Equal(["start", "stop"], (await CallsOf(call.Id)).Select(e => e["event"]));
        Assert.Contains(logs.Entries, e => e.Level == LogLevel.Error && e.Message.Contains("can no longer be copied", StringComparison.Ordinal));
        Assert.False(reloaded.Outbox.CopyDue);
    }

    [Fact]
    public async Task A_copy_that_makes_no_progress_backs_off_and_is_logged_once_a_minute()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var logs = new CapturingLoggerProvider();
        var call = NewCall(time: time, logger: logs.CreateLogger("outbox"));
        call.Start();
        await call.Outbox.FlushAsync(force: true);

        // ingest:calls cannot be written (its key holds another type): every copy fails at once.
        await Db.KeyRenameAsync("ingest:calls", "ingest:calls:moved");
        await Db.StringSetAsync("ingest:calls", "not a stream");
        call.Stop();
        await call.Outbox.FlushAsync(force: true);
        Assert.True(call.Outbox.CopyDue);
        for (var i = 0; i < 20; i++)
        {
            time.Advance(TimeSpan.FromSeconds(5));
            await call.Outbox.RetryAsync();
        }

        var stalled = logs.Entries.Count(e => e.Level == LogLevel.Warning && e.Message.Contains("not reaching ingest:calls", StringComparison.Ordinal));
        Assert.Equal(2, stalled); // 100 s of failures: once at the start, once a minute later

        // The stream is back: the next attempt copies the stop once.
        await Db.KeyDeleteAsync("ingest:calls");
        await Db.KeyRenameAsync("ingest:calls:moved", "ingest:calls");
        time.Advance(TimeSpan.FromSeconds(5));
        await call.Outbox.RetryAsync();
        Assert.False(call.Outbox.CopyDue);
        Assert.Equal(["start", "stop"], (await CallsOf(call.Id)).Select(e => e["event"]));
    }

    [Fact]
    public async Task A_zombies_bare_append_is_refused_after_a_lifecycle_only_script_of_a_silo_whose_clock_is_behind()
    {
        // A's clock runs a minute ahead of B's. A writes audio, then a lifecycle entry alone (its epoch moves on with
        // its clock); B takes the call over and writes a lifecycle entry alone, then audio. A, a zombie, appends bare
        // with its epoch: the cursor's epoch made B's above it, so Redis refuses A's frame.
        var ahead = new FakeTimeProvider(DateTimeOffset.UtcNow + TimeSpan.FromMinutes(1));
        var a = NewCall(time: ahead);
        a.Start();
        a.Audio(2, 10);
        await a.Outbox.FlushAsync(force: true);
        a.Mark(3, "a");
        await a.Outbox.FlushAsync(force: true);

        var b = new Driver(a.Id, new CallOutbox(new CallStreamStore(_connection, Options.Create(new IngestOptions { StreamTtl = TimeSpan.FromSeconds(60) }), new FakeTimeProvider(DateTimeOffset.UtcNow)).ForStream(a.Id), new SiloBuffers(), GrainMetrics.Live, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance), new FakeTimeProvider(DateTimeOffset.UtcNow), a.Store);
        await b.Outbox.LoadAsync();
        b.Resume(a);
        b.Mark(4, "b");
        await b.Outbox.FlushAsync(force: true);
        b.Audio(5, 10);
        await b.Outbox.FlushAsync(force: true);

        a.Audio(5, 10);
        Assert.Equal(FlushOutcome.Conflict, await a.Outbox.FlushAsync(force: true));
        Assert.Equal([2L, 5], (await RedisStreams.ReadAudioAsync(_connection, a.Id)).Select(e => e.Seq));
    }

    /// <summary>A new activation of the same call (its outbox knows only what Redis holds).</summary>
    private static Driver NewCallOn(Driver call, ILogger logger) =>
        new(call.Id, new CallOutbox(call.Store.ForStream(call.Id), new SiloBuffers(), GrainMetrics.Live, logger), call.Time, call.Store);

    /// <summary>Plays the grain: numbers lifecycle entries and frames and builds the cursor each entry leads to.</summary>
    private sealed class Driver(string id, CallOutbox outbox, FakeTimeProvider time, CallStreamStore store)
    {
        private CallCursor _head = CallCursor.Empty;
        private long _index;

        public string Id { get; } = id;

        public CallOutbox Outbox { get; } = outbox;

        public FakeTimeProvider Time { get; } = time;

        public CallStreamStore Store { get; } = store;

        public void Resume(Driver from) => _head = from._head with { Version = Outbox.Written.Version };

        /// <summary>Numbers on from a loaded cursor's frames.</summary>
        public void Continue(CallCursor loaded) => _head = _head with { Frames = loaded.Frames };

        public void Start()
        {
            _head = _head with { Owner = "conn", Started = true, Protocol = "exotel", StartedAt = 1 };
            Lifecycle(new StartEntry("exotel", "pcm16le", 8000, 1, "call", null, null, null, ImmutableDictionary<string, string>.Empty));
        }

        public void Audio(long seq, int bytes)
        {
            _head = _head with { Frames = _head.Frames + 1, Index = ++_index, Sequence = new SequenceState(1, seq, null, 0, 0) };
            Outbox.Add(new AudioEntry(seq, seq * 100, new byte[bytes]), _head, _index);
        }

        public void Mark(long seq, string name) => Lifecycle(new MarkEntry(seq, seq * 100, name));

        public void Gap(long from, long to) => Lifecycle(new GapEntry(from, to, to - from + 1, "missing"));

        /// <summary>True when a new gap entry was made, false when the open one grew.</summary>
        public bool OverflowGap(long seq)
        {
            _head = _head with { Index = ++_index, Missing = _head.Missing + 1 };
            if (Outbox.TryExtendGap(new GapEntry(seq, seq, 1, "buffer_overflow"), _head, _index))
            {
                return false;
            }

            _head = _head with { Gaps = _head.Gaps + 1, Lifecycle = _head.Lifecycle + 1 };
            Outbox.Add(new GapEntry(seq, seq, 1, "buffer_overflow"), _head, _index, openGap: true);
            return true;
        }

        public void Stop()
        {
            _head = _head with { Stopped = true };
            Lifecycle(new StopEntry("callended", _head.Frames, _head.Gaps, _head.Missing, 0, 2, "call"));
        }

        private void Lifecycle(CallEntry entry)
        {
            _head = _head with { Lifecycle = _head.Lifecycle + 1, Index = ++_index };
            Outbox.Add(entry, _head, _index);
        }
    }
}
