using System.Collections.Immutable;
using System.Diagnostics;
using Ingest.Grains.Interfaces;
using Ingest.Grains.Publishing;
using Ingest.Grains.Sequencing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Ingest.Grains;

/// <summary>
/// One activation per live stream. Items arrive in the order the gateway received them; the grain drops resends,
/// records gaps (missing, malformed, buffer_overflow, after_stop), and writes to Redis in batches fenced by the call's
/// cursor (see <see cref="CallStreamWriter"/>, which alone knows how any of it looks in Redis). The cursor also holds the owning connection and the last gateway
/// index settled, so ownership and exactly-once survive a reactivation on another silo.
/// While Redis is unreachable it holds up to <see cref="IngestOptions.BufferLimit"/> entries (and the byte budgets)
/// and retries on a timer; frames beyond that are counted and become one gap entry. A Redis that is connected but slow
/// gets pushback instead (<see cref="CallAckStatus.Busy"/>): nothing is dropped and the gateway keeps the items.
/// </summary>
public sealed partial class CallStreamGrain(
    CallStreamStore store,
    IOptions<IngestOptions> options,
    ILogger<CallStreamGrain> logger) : Grain, ICallStreamGrain
{
    private static readonly TimeSpan QuietExpiryRefreshInterval = TimeSpan.FromSeconds(30);

    // How often a live call tells the open-lifecycle set it is still looked after (LifecycleSweeper takes the rest).
    private static readonly TimeSpan LifecycleTouchInterval = TimeSpan.FromSeconds(30);

    private IngestOptions _options = options.Value;
    private GrainMetrics _metrics = GrainMetrics.Live;
    private bool _warmup;
    private readonly SequenceTracker _tracker = new();
    private readonly List<PendingEntry> _pending = [];

    private string _streamId = string.Empty;
    private CallStreamWriter _writer = null!;
    private bool _loaded;

    // Lifecycle copies to ingest:calls (step two of a write): when the call last touched the open set, and the
    // earliest next attempt after a failed one (the call path never waits on a shard that just failed).
    private DateTime _lastCopyUtc;
    private DateTime _nextCopyUtc;

    // What Redis holds (written) and what it will hold once everything pending is written.
    private CallCursor _written = CallCursor.Empty;
    private CallCursor _head = CallCursor.Empty;

    private long _lastIndex;

    // The owner presented its call to this activation (a fresh activation answers NotStarted until it does).
    private bool _presented;
    private DateTime _ownerSeenUtc;
    private bool _cursorDirty;

    // A write failed after it may have been sent (a timeout): it may still land. Before writing again the cursor is read
    // (which, on the one connection, comes after that write) and what landed is settled.
    private bool _uncertain;
    private bool _redisDown;
    private DateTime _nextRetryUtc;
    private DateTime _lastExpiryUtc;
    private bool _audioExpirySet;
    private IGrainTimer? _retryTimer;
    private IGrainTimer? _orphanTimer;
    private PendingEntry? _openGap;
    private int _publishedSinceAck;
    private long _pendingBytes;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _streamId = this.GetPrimaryKeyString();
        _writer = store.ForStream(_streamId);

        // A warm-up call (WarmupCalls) runs the same code, but with its own keys and retention (the writer's options),
        // unexported instruments, no spans and no log lines.
        _options = _writer.Options;
        _warmup = WarmupCalls.Is(_streamId);
        if (_warmup)
        {
            _metrics = GrainMetrics.Warmup;
            logger = Microsoft.Extensions.Logging.Abstractions.NullLogger<CallStreamGrain>.Instance;
        }

        return Task.CompletedTask;
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (_pending.Count > 0)
        {
            await FlushAsync(force: true);
            if (_pending.Count > 0)
            {
                LogDeactivatedWithPending(_streamId, _pending.Count, reason.Description);
                ReleasePending();
            }
        }

        if (_writer.CopyDue)
        {
            await CopyLifecycleAsync(force: true);
        }
    }

    public async ValueTask<CallAck> Start(CallStart start)
    {
        using var span = StartLifecycleSpan("ingest.grain.start");
        var ack = await StartCoreAsync(start);
        span?.SetTag("ack", ack.Status.ToString());
        return ack;
    }

    private async ValueTask<CallAck> StartCoreAsync(CallStart start)
    {
        await EnsureLoadedAsync();
        if (_head.Stopped)
        {
            return Ack(CallAckStatus.Ended);
        }

        var now = DateTime.UtcNow;
        if (_head.Owner.Length > 0 && _head.Owner != start.ConnectionId && now - _ownerSeenUtc < _options.OwnerLease)
        {
            LogStreamConflict(_streamId);
            return Ack(CallAckStatus.Conflict);
        }

        if (_head.Owner != start.ConnectionId)
        {
            if (_head.Owner.Length > 0)
            {
                LogOwnerReplaced(_streamId, _options.OwnerLease.TotalSeconds);
            }

            // A new owner: the first, or one taking over a stream whose owner has been silent past the lease. Its
            // gateway indexes start again, and the cursor says so with the next write.
            _head = _head with { Owner = start.ConnectionId, Index = 0 };
            _lastIndex = 0;
            _cursorDirty = true;
        }

        _presented = true;
        _ownerSeenUtc = now;
        if (!_head.Started)
        {
            _tracker.SetBaseline(start.StartSequence);
            _head = _head with
            {
                Started = true,
                CallSid = start.CallSid ?? string.Empty,
                Protocol = ProtocolName(start.Protocol),
                StartedAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            };
            Enqueue(
                new StartEntry(_head.Protocol, start.Encoding, start.SampleRate, _head.StartedAt, start.CallSid, start.AccountSid, start.From, start.To, start.Parameters),
                _lastIndex);
        }

        EnsureOrphanTimer();

        // While Redis is away the retry timer writes; a re-presented call must not wait on it again.
        using (StartRedisSpan("start"))
        {
            await FlushAsync(force: !_redisDown);
        }

        return Ack(Status());
    }

    // Per-frame batches: kept out of the Orleans Dashboard's profiler (one filter pass and a lock per call otherwise).
    [Orleans.Dashboard.NoProfiling]
    public async ValueTask<CallAck> Append(string connectionId, ImmutableArray<CallItem> items)
    {
        await EnsureLoadedAsync();
        if (_head.Stopped)
        {
            if (connectionId == _head.Owner)
            {
                await RecordAfterStopAsync(items);
            }

            return Ack(CallAckStatus.Ended);
        }

        if (!_presented)
        {
            // A fresh activation after a failover: the gateway must re-present the call before resending.
            return Ack(CallAckStatus.NotStarted);
        }

        if (connectionId != _head.Owner)
        {
            return Ack(CallAckStatus.Conflict);
        }

        _ownerSeenUtc = DateTime.UtcNow;
        if (items.IsDefaultOrEmpty)
        {
            await HeartbeatAsync();
            return Ack(Status());
        }

        if (BufferFull(0) && _writer.IsConnected)
        {
            // Redis is there but slow (overload, not an outage): take nothing more. The gateway keeps these items and
            // sends them again after a pause, so nothing is dropped and the pressure reaches the sockets.
            await FlushAsync(force: true);
            if (!_presented)
            {
                return Ack(CallAckStatus.NotStarted);
            }

            if (BufferFull(0))
            {
                _metrics.Pushback.Add(1);
                return Ack(CallAckStatus.Busy);
            }
        }

        int duplicates = 0, gaps = 0, overflowed = 0, malformed = 0;
        long missing = 0;
        var busy = false;

        foreach (var item in items)
        {
            if (item.Index <= _lastIndex)
            {
                continue;
            }

            if (item.Kind == CallItemKind.Media && BufferFull(item.Bytes) && _writer.IsConnected)
            {
                // Connected but slow: this item and the rest of the batch are not taken; they come again.
                busy = true;
                break;
            }

            _lastIndex = item.Index;
            var gapBefore = SequenceDecision.New;
            var decision = item.Kind switch
            {
                CallItemKind.Media or CallItemKind.Malformed => _tracker.OnMedia(item.Seq, item.Chunk),
                CallItemKind.Overflow => _tracker.OnMediaRange(item.Seq, item.ToSeq, out gapBefore),
                _ => _tracker.OnEvent(item.Seq),
            };

            if (decision.Verdict == SequenceVerdict.Duplicate)
            {
                duplicates++;
                continue;
            }

            if (decision.Verdict == SequenceVerdict.Malformed)
            {
                malformed++;
                LogSequenceJump(_streamId, item.Seq, _tracker.Highest);
                continue;
            }

            switch (item.Kind)
            {
                case CallItemKind.Media:
                    gaps += RecordMissing(decision, item.Index - 1, ref missing);
                    if (_redisDown && !_writer.IsConnected && BufferFull(item.Bytes))
                    {
                        // Only a real outage (no connection) drops frames; a slow Redis pushes back instead (see above).
                        overflowed++;
                        gaps += AddToGap("buffer_overflow", item.Seq, item.Seq, 1, item.Index);
                        continue;
                    }

                    _head = _head with { Frames = _head.Frames + 1 };
                    Enqueue(new AudioEntry(item.Seq, item.TimestampMs, item.Audio ?? []), item.Index, item.Bytes);
                    break;
                case CallItemKind.Malformed:
                    gaps += RecordMissing(decision, item.Index - 1, ref missing);
                    gaps += AddToGap("malformed", item.Seq, item.Seq, 1, item.Index);
                    break;
                case CallItemKind.Overflow:
                    // The gateway could not keep these frames; they take their numbers as one buffer_overflow gap.
                    gaps += RecordMissing(gapBefore, item.Index - 1, ref missing);

                    // The range may hold dtmf/mark numbers too; the item counts the frames themselves.
                    var frames = item.Count > 0 ? Math.Min(item.Count, decision.Missing) : decision.Missing;
                    overflowed += (int)Math.Min(int.MaxValue, frames);
                    gaps += AddToGap("buffer_overflow", decision.MissingFrom, decision.MissingTo, frames, item.Index);
                    break;
                default:
                    Enqueue(EventEntry(item), item.Index);
                    break;
            }
        }

        if (duplicates > 0)
        {
            _metrics.Duplicates.Add(duplicates);
            LogDuplicates(_streamId, duplicates);
        }

        if (gaps > 0)
        {
            _metrics.Gaps.Add(gaps);
            _metrics.MissingFrames.Add(missing);
        }

        if (overflowed > 0)
        {
            _metrics.Overflowed.Add(overflowed);
        }

        if (malformed > 0)
        {
            _metrics.Malformed.Add(malformed);
        }

        await FlushAsync(force: busy);
        var status = Status();
        if (busy && status != CallAckStatus.NotStarted)
        {
            _metrics.Pushback.Add(1);
            status = CallAckStatus.Busy;
        }

        var ack = Ack(status);
        return ack with { Duplicates = duplicates, GapsRecorded = gaps, MissingFrames = missing, Overflowed = overflowed, Malformed = malformed };
    }

    public async ValueTask<CallAck> Stop(CallStop stop)
    {
        using var span = StartLifecycleSpan("ingest.grain.stop");
        span?.SetTag("reason", stop.Reason);
        var ack = await StopLifecycleAsync(stop);
        span?.SetTag("ack", ack.Status.ToString());
        span?.SetTag("frames", _head.Frames);
        return ack;
    }

    public async ValueTask Sweep()
    {
        await EnsureLoadedAsync();
        if (!_head.Started && _pending.Count == 0)
        {
            // Nothing of the call is in Redis (its keys expired, or its start never landed): nothing to copy or end.
            try
            {
                await _writer.ForgetAsync().WaitAsync(_options.WriteTimeout);
            }
            catch (Exception ex) when (ex is StoreUnavailableException or TimeoutException)
            {
                _metrics.RedisFailures.Add(1);
            }

            DeactivateOnIdle();
            return;
        }

        // Refreshes the call in the open set, or takes it out once stopped and copied; a live call without an owner is
        // ended by the orphan timer that loading it started.
        await CopyLifecycleAsync(force: true);
        if (_head.Stopped && _pending.Count == 0 && !_writer.CopyDue)
        {
            DeactivateOnIdle();
        }
    }

    /// <summary>
    /// A server span for the grain's Start or Stop, continuing the caller's trace: Orleans' activity propagation puts
    /// the caller's traceparent in the request context. Never for Append (per frame batch).
    /// </summary>
    private System.Diagnostics.Activity? StartLifecycleSpan(string name)
    {
        if (!IngestTelemetry.Source.HasListeners() || _warmup)
        {
            return null;
        }

        // Orleans' server span when it made one; otherwise the caller's span, from the traceparent its outgoing filter set.
        var parent = default(System.Diagnostics.ActivityContext);
        if (System.Diagnostics.Activity.Current is { Recorded: true } current)
        {
            parent = current.Context;
        }
        else if (RequestContext.Get("traceparent") is string traceParent)
        {
            System.Diagnostics.ActivityContext.TryParse(traceParent, RequestContext.Get("tracestate") as string, isRemote: true, out parent);
        }

        if (parent == default)
        {
            return null;
        }

        var activity = IngestTelemetry.Source.StartActivity(name, System.Diagnostics.ActivityKind.Server, parent);
        activity?.SetTag("stream_id", _streamId);
        return activity;
    }

    /// <summary>A span for the Redis write of the start or stop batch (child of the grain's lifecycle span).</summary>
    private static System.Diagnostics.Activity? StartRedisSpan(string batch)
    {
        if (System.Diagnostics.Activity.Current is not { Source.Name: IngestTelemetry.SourceName })
        {
            return null;
        }

        var activity = IngestTelemetry.Source.StartActivity("ingest.redis.write", System.Diagnostics.ActivityKind.Client);
        activity?.SetTag("db.system", "redis");
        activity?.SetTag("batch", batch);
        return activity;
    }

    private async ValueTask<CallAck> StopLifecycleAsync(CallStop stop)
    {
        await EnsureLoadedAsync();
        if (_head.Stopped)
        {
            // A resent stop of the owner is already done; anyone else is told the stream is over.
            return Ack(stop.ConnectionId == _head.Owner ? Status() : CallAckStatus.Ended);
        }

        if (!_head.Started || !_presented)
        {
            return Ack(CallAckStatus.NotStarted);
        }

        if (stop.ConnectionId != _head.Owner)
        {
            LogStreamConflict(_streamId);
            return Ack(CallAckStatus.Conflict);
        }

        // Numbers missing just before the stop: the stop's own sequence number tells.
        long missing = 0;
        if (RecordMissing(_tracker.OnStop(stop.Seq), _lastIndex, ref missing) > 0)
        {
            _metrics.Gaps.Add(1);
            _metrics.MissingFrames.Add(missing);
        }

        var ack = await StopCoreAsync(stop.Reason);
        return missing > 0 ? ack with { GapsRecorded = 1, MissingFrames = missing } : ack;
    }

    private async Task<CallAck> StopCoreAsync(string reason)
    {
        if (!_head.Stopped)
        {
            _head = _head with { Stopped = true };
            var at = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            Enqueue(new StopEntry(reason, _head.Frames, _head.Gaps, _head.Missing, at, _head.CallSid), _lastIndex);
            LogStopped(_streamId, reason, _head.Frames);
        }

        _orphanTimer?.Dispose();
        _orphanTimer = null;
        using (StartRedisSpan("stop"))
        {
            await FlushAsync(force: true);
        }

        if (_pending.Count == 0 && _presented && !_writer.CopyDue)
        {
            // Nothing left to write: free the memory now rather than at the idle collection.
            DeactivateOnIdle();
        }

        return Ack(Status());
    }

    /// <summary>
    /// Frames of the owner that reach a stream already stopped (its gateway was cut off past the orphan timeout): they
    /// cannot be published after the stop, so they leave one gap entry (reason after_stop) that says so.
    /// </summary>
    private async Task RecordAfterStopAsync(ImmutableArray<CallItem> items)
    {
        long from = long.MaxValue, to = long.MinValue, count = 0;
        foreach (var item in items.IsDefault ? [] : items)
        {
            if (item.Index <= _lastIndex)
            {
                continue;
            }

            _lastIndex = item.Index;
            if (item.Kind is CallItemKind.Media or CallItemKind.Malformed or CallItemKind.Overflow)
            {
                count += item.Kind == CallItemKind.Overflow ? item.Count : 1;
                from = Math.Min(from, item.Seq);
                to = Math.Max(to, item.Kind == CallItemKind.Overflow ? item.ToSeq : item.Seq);
            }
        }

        if (count == 0)
        {
            return;
        }

        LogAfterStop(_streamId, count, from, to);
        _metrics.Gaps.Add(AddToGap("after_stop", from, to, count, _lastIndex));
        _metrics.MissingFrames.Add(count);
        await FlushAsync(force: true);
    }

    private TimeSpan OrphanCheckInterval => TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(250).Ticks, _options.OrphanTimeout.Ticks / 4));

    private void EnsureOrphanTimer() =>
        _orphanTimer ??= this.RegisterGrainTimer(
            static (grain, _) => grain.OnOrphanCheckAsync(),
            this,
            new GrainTimerCreationOptions(OrphanCheckInterval, OrphanCheckInterval) { KeepAlive = true });

    /// <summary>
    /// A call whose gateway died mid-call gets no stop from anyone; after <see cref="IngestOptions.OrphanTimeout"/>
    /// without a word from its connection the grain ends it itself, so consumers see the call close.
    /// </summary>
    private async Task OnOrphanCheckAsync()
    {
        if (_head.Stopped || !_head.Started || DateTime.UtcNow - _ownerSeenUtc < _options.OrphanTimeout)
        {
            return;
        }

        LogOrphaned(_streamId, _options.OrphanTimeout.TotalSeconds);
        await StopCoreAsync("gateway_lost");
    }

    private async Task HeartbeatAsync()
    {
        if (_pending.Count > 0 || _cursorDirty)
        {
            await FlushAsync(force: false);
            return;
        }

        // A quiet call writes nothing, but its keys must not expire while it is live.
        if (DateTime.UtcNow - _lastExpiryUtc >= QuietExpiryRefreshInterval)
        {
            try
            {
                await _writer.RefreshExpiryAsync(_options.StreamTtl).WaitAsync(_options.WriteTimeout);
                _lastExpiryUtc = DateTime.UtcNow;
            }
            catch (Exception ex) when (ex is StoreUnavailableException or TimeoutException)
            {
                _metrics.RedisFailures.Add(1);
            }
        }

        await CopyLifecycleAsync(force: false);
    }

    private async Task EnsureLoadedAsync()
    {
        if (_loaded)
        {
            return;
        }

        // Redis is the source of truth for what was already published and who owns the stream; a load failure
        // surfaces to the gateway, which keeps the frames and retries.
        var (cursor, lifecycleFloor) = await _writer.LoadAsync().WaitAsync(_options.WriteTimeout);
        _written = cursor;
        _head = cursor with { Lifecycle = lifecycleFloor };
        _cursorDirty = lifecycleFloor > cursor.Lifecycle;
        _tracker.Restore(cursor.Sequence);
        _lastIndex = cursor.Index;
        _presented = false;
        _audioExpirySet = false;

        // The owner is as good as seen now: it gets the lease to present its call again after a failover.
        _ownerSeenUtc = DateTime.UtcNow;
        _loaded = true;
        if (cursor.Started && !cursor.Stopped)
        {
            LogResumed(_streamId, cursor.Sequence.MediaSeq ?? 0, cursor.Frames);
            EnsureOrphanTimer();
        }

        if (_writer.CopyDue)
        {
            // A former activation wrote lifecycle entries it did not live to copy to ingest:calls.
            LogCopyResumed(_streamId);
            await CopyLifecycleAsync(force: true);
        }
    }

    private CallAckStatus Status() =>
        !_presented && _head.Started && !_head.Stopped ? CallAckStatus.NotStarted
        : _redisDown ? CallAckStatus.Buffering
        : CallAckStatus.Ok;

    private CallAck Ack(CallAckStatus status)
    {
        var published = _publishedSinceAck;
        _publishedSinceAck = 0;
        return new(
            SettledIndex: _pending.Count == 0 ? _lastIndex : _pending[0].Index - 1,
            Published: published,
            Duplicates: 0,
            GapsRecorded: 0,
            MissingFrames: 0,
            Overflowed: 0,
            Buffered: _pending.Count,
            Status: status);
    }

    private bool BufferFull(int extraBytes) =>
        _pending.Count >= _options.BufferLimit
        || (extraBytes > 0 || _pendingBytes > 0) && _pendingBytes + extraBytes > _options.BufferBytes
        || SiloBuffers.Bytes + extraBytes > _options.SiloBufferBytes;

    /// <summary>A gap entry for numbers no item took, written together with the item that revealed them. Returns gaps added.</summary>
    private int RecordMissing(SequenceDecision decision, long settledIndex, ref long missing)
    {
        if (decision.Missing <= 0)
        {
            return 0;
        }

        missing += decision.Missing;
        _head = _head with { Gaps = _head.Gaps + 1, Missing = _head.Missing + decision.Missing };
        LogGap(_streamId, decision.MissingFrom, decision.MissingTo, decision.Missing);
        Enqueue(new GapEntry(decision.MissingFrom, decision.MissingTo, decision.Missing, "missing"), settledIndex, joinNext: true);
        return 1;
    }

    /// <summary>Adds frames to a gap of one reason, growing the last pending gap when it is contiguous. Returns gaps added.</summary>
    private int AddToGap(string reason, long from, long to, long count, long index)
    {
        _head = _head with { Missing = _head.Missing + count };
        if (_openGap is { Gap: { } open } && open.Reason == reason && open.ToSeq + 1 == from && _pending.Count > 0 && ReferenceEquals(_pending[^1], _openGap))
        {
            open.ToSeq = to;
            open.Count += count;
            _head = Snapshot(index);
            _openGap.Entry = new GapEntry(open.FromSeq, open.ToSeq, open.Count, reason);
            _openGap.CursorAfter = _head;
            _openGap.Index = index;
            return 0;
        }

        if (reason == "buffer_overflow")
        {
            LogOverflowStarted(_streamId, _options.BufferLimit, from);
        }

        var gap = new OpenGap { Reason = reason, FromSeq = from, ToSeq = to, Count = count };
        _head = Snapshot(index) with { Gaps = _head.Gaps + 1, Lifecycle = _head.Lifecycle + 1 };
        _openGap = new PendingEntry(new GapEntry(from, to, count, reason), _head, index) { Gap = gap };
        _pending.Add(_openGap);
        _metrics.Buffered.Add(1);
        return 1;
    }

    private CallCursor Snapshot(long index) => _head with { Sequence = _tracker.Position, Index = index };

    /// <summary>Adds an entry to write; a lifecycle entry takes the call's next lifecycle number (for the copy to ingest:calls).</summary>
    private void Enqueue(CallEntry entry, long index, int bytes = 0, bool joinNext = false)
    {
        _head = Snapshot(index);
        if (!entry.IsAudio)
        {
            _head = _head with { Lifecycle = _head.Lifecycle + 1 };
        }

        _pending.Add(new PendingEntry(entry, _head, index, bytes) { JoinNext = joinNext });
        _pendingBytes += bytes;
        SiloBuffers.Add(bytes);
        _metrics.Buffered.Add(1);
    }

    private void RemovePending(int count)
    {
        long bytes = 0;
        for (var i = 0; i < count; i++)
        {
            bytes += _pending[i].Bytes;
            if (ReferenceEquals(_pending[i], _openGap))
            {
                _openGap = null;
            }
        }

        _pending.RemoveRange(0, count);
        _pendingBytes -= bytes;
        SiloBuffers.Add(-bytes);
        _metrics.Buffered.Add(-count);
    }

    private void ReleasePending() => RemovePending(_pending.Count);

    /// <summary>
    /// How often a live call's writes push its keys' expiry forward: a tenth of the retention time, 1 to 30 s. Each push
    /// goes through the batch script, every other one-frame batch is a bare XADD (docs/PERFORMANCE.md), so this sets how
    /// many scripts a live call costs Redis.
    /// </summary>
    private TimeSpan ExpiryRefreshInterval =>
        TimeSpan.FromSeconds(Math.Clamp(Math.Floor(_options.StreamTtl.TotalSeconds / 10), 1, 30));

    /// <summary>
    /// The expiry (seconds) this batch sets on the call's keys, or 0 to leave it. At the stop: the retention time
    /// (CONTRACT §8). While live: the retention time plus <see cref="ExpiryRefreshInterval"/>, so keys of a call that
    /// never stops outlive its last write by at least the retention time.
    /// </summary>
    private long ExpiryFor(int count, DateTime now)
    {
        var stops = false;
        var due = _written.Version == 0 || now - _lastExpiryUtc >= ExpiryRefreshInterval;
        for (var i = 0; i < count; i++)
        {
            due |= _pending[i].Audio && !_audioExpirySet;
            stops |= _pending[i].CursorAfter.Stopped && !_written.Stopped;
        }

        var ttl = (long)_options.StreamTtl.TotalSeconds;
        return stops ? ttl : due ? ttl + (long)ExpiryRefreshInterval.TotalSeconds : 0;
    }

    private async Task FlushAsync(bool force)
    {
        if (_pending.Count == 0 && !_cursorDirty)
        {
            return;
        }

        if (_redisDown && !force && DateTime.UtcNow < _nextRetryUtc)
        {
            return;
        }

        if (_uncertain && !await SettleUncertainWriteAsync())
        {
            return;
        }

        do
        {
            var count = Math.Min(_pending.Count, _options.MaxBatch);
            while (count < _pending.Count && _pending[count - 1].JoinNext)
            {
                // A gap entry goes with the frame that revealed it: a cursor between them would claim the frame.
                count++;
            }

            var cursorAfter = count > 0 ? _pending[count - 1].CursorAfter : _head;
            var now = DateTime.UtcNow;
            var ttl = ExpiryFor(count, now);
            WriteOutcome outcome;
            var started = Stopwatch.GetTimestamp();
            try
            {
                if (_written.Version == 0)
                {
                    // The call's first write: it enters the open-lifecycle set before anything of it is in Redis, so a
                    // sweeper finds it even if this silo and its gateway die before the start is copied.
                    await _writer.CopyLifecycleAsync(stopped: false, 0).WaitAsync(_options.WriteTimeout);
                }

                outcome = await _writer.WriteAsync(_written, _pending, count, cursorAfter, ttl).WaitAsync(_options.WriteTimeout);
            }
            catch (Exception ex) when (ex is StoreUnavailableException or TimeoutException)
            {
                HoldUncertain(count, ex);
                return;
            }

            if (outcome == WriteOutcome.NotReplicated)
            {
                // On the master, not confirmed by its replicas in time (INGEST_REDIS_WAIT_REPLICAS): kept, and settled
                // only once a read of the cursor is confirmed by the replicas.
                _metrics.NotReplicated.Add(1);
                HoldUncertain(count, null);
                return;
            }

            _metrics.WriteLatency.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
            if (outcome == WriteOutcome.Conflict)
            {
                if (await ReconcileAsync(known: null))
                {
                    continue;
                }

                // Another activation of this stream wrote (a split brain during a silo failure).
                StartOverFromRedis();
                return;
            }

            var audio = 0;
            var debug = logger.IsEnabled(LogLevel.Debug);
            for (var i = 0; i < count; i++)
            {
                if (_pending[i].Audio)
                {
                    audio++;
                    if (debug)
                    {
                        LogPublishedFrame(_streamId, _pending[i].CursorAfter.Sequence.MediaSeq ?? 0);
                    }
                }
            }

            if (ttl > 0)
            {
                _lastExpiryUtc = now;
                _audioExpirySet |= audio > 0;
            }

            // An appended frame leaves the cursor hash (and its version) as it was; the script moves it one version on.
            _written = cursorAfter with { Version = _written.Version + (outcome == WriteOutcome.Appended ? 0 : 1) };
            _cursorDirty = false;
            RemovePending(count);
            _metrics.FramesPublished.Add(audio);
            _publishedSinceAck += audio;
            if (_redisDown)
            {
                _redisDown = false;
                LogRedisRecovered(_streamId, _pending.Count);
            }
        }
        while (_pending.Count > 0);

        // Keep the head's version in step so the next write is fenced against what we just wrote.
        _head = _head with { Version = _written.Version };
        await CopyLifecycleAsync(force: false);
    }

    /// <summary>
    /// A write that may have been sent did not come back (or was not confirmed by the replicas): the attempted entries
    /// may still land (a frozen Redis runs what it was sent when it wakes). They are frozen, so what may already be in
    /// Redis is exactly what is pending and can be reconciled, and Redis counts as away until a read settles it.
    /// </summary>
    private void HoldUncertain(int count, Exception? ex)
    {
        _metrics.RedisFailures.Add(1);
        if (!_redisDown)
        {
            LogRedisUnavailable(_streamId, _pending.Count, ex?.Message ?? "the replicas did not confirm the write in time");
        }

        if (_openGap is not null && _pending.IndexOf(_openGap) is var open && open >= 0 && open < count)
        {
            _openGap = null;
        }

        _uncertain = true;
        _redisDown = true;
        _nextRetryUtc = DateTime.UtcNow + _options.RetryInterval;
        EnsureRetryTimer();
    }

    /// <summary>
    /// Step two of a write: the lifecycle entries Redis holds in the call's slot are copied to ingest:calls (fenced: each
    /// once, in order), and the call's place in the open-lifecycle set is refreshed every <see cref="LifecycleTouchInterval"/>.
    /// Never fails the call path: audio is already safe in Redis; a failed copy is retried by the timer and, if this
    /// silo dies first, by the next activation or <see cref="LifecycleSweeper"/>.
    /// </summary>
    private async Task CopyLifecycleAsync(bool force)
    {
        var now = DateTime.UtcNow;
        if (!_writer.CopyDue && (!_written.Started || now - _lastCopyUtc < LifecycleTouchInterval))
        {
            return;
        }

        if (!force && now < _nextCopyUtc)
        {
            return;
        }

        try
        {
            var done = await _writer.CopyLifecycleAsync(_written.Stopped, _written.Lifecycle).WaitAsync(_options.WriteTimeout);
            _lastCopyUtc = now;
            if (done)
            {
                return;
            }
        }
        catch (Exception ex) when (ex is StoreUnavailableException or TimeoutException)
        {
            _metrics.RedisFailures.Add(1);
            LogCopyFailed(_streamId, ex.Message);
        }

        _nextCopyUtc = now + _options.RetryInterval;
        EnsureRetryTimer();
    }

    /// <summary>
    /// Another activation wrote: drop what this one holds and reload from Redis on the next call. The gateway still has
    /// every unsettled item; told NotStarted, it presents the call again and resends.
    /// </summary>
    private void StartOverFromRedis()
    {
        LogCursorMoved(_streamId);
        ReleasePending();
        _loaded = false;
        _presented = false;
        _cursorDirty = false;
    }

    /// <summary>
    /// After a write that may have been sent failed: reads the cursor (bounded) before anything is written again. False
    /// while Redis still does not answer (nothing is written, so the pending entries may go on growing); true once what
    /// landed is settled, or after a reset when another activation wrote (then nothing is left to write here).
    /// </summary>
    private async Task<bool> SettleUncertainWriteAsync()
    {
        CallCursor current;
        try
        {
            current = await _writer.ReadCursorAsync(confirmReplicated: true).WaitAsync(_options.WriteTimeout);
        }
        catch (Exception ex) when (ex is StoreUnavailableException or TimeoutException)
        {
            _metrics.RedisFailures.Add(1);
            _redisDown = true;
            _nextRetryUtc = DateTime.UtcNow + _options.RetryInterval;
            EnsureRetryTimer();
            return false;
        }

        _uncertain = false;
        if (current.Version == _written.Version || await ReconcileAsync(current))
        {
            return true;
        }

        StartOverFromRedis();
        return false;
    }

    /// <summary>
    /// The fence refused a write. When the cursor in Redis is one this activation itself produced (an earlier attempt that
    /// timed out here but landed later, e.g. a Redis that was frozen), the entries up to it are in Redis: they are
    /// settled and the rest is written on. True when reconciled that way (whatever is left); false when another activation
    /// wrote, or Redis could not be read.
    /// </summary>
    private async Task<bool> ReconcileAsync(CallCursor? known)
    {
        CallCursor current;
        try
        {
            current = known ?? await _writer.ReadCursorAsync(confirmReplicated: true).WaitAsync(_options.WriteTimeout);
        }
        catch (Exception ex) when (ex is StoreUnavailableException or TimeoutException)
        {
            return false;
        }

        var found = -1;
        for (var i = 0; i < _pending.Count && found < 0; i++)
        {
            if (_pending[i].CursorAfter.SameContent(current))
            {
                found = i;
            }
        }

        if (found < 0)
        {
            if (_cursorDirty && _head.SameContent(current))
            {
                _written = current;
                _cursorDirty = false;
                return true;
            }

            return false;
        }

        var settled = found + 1;
        var audio = 0;
        for (var i = 0; i < settled; i++)
        {
            audio += _pending[i].Audio ? 1 : 0;
        }

        LogReconciled(_streamId, settled);
        _written = current;
        RemovePending(settled);
        _metrics.FramesPublished.Add(audio);
        _publishedSinceAck += audio;
        _head = _head with { Version = _written.Version };
        return true;
    }

    private void EnsureRetryTimer()
    {
        _retryTimer ??= this.RegisterGrainTimer(
            static (grain, _) => grain.OnRetryTimerAsync(),
            this,
            new GrainTimerCreationOptions(_options.RetryInterval, _options.RetryInterval) { KeepAlive = true });
    }

    private async Task OnRetryTimerAsync()
    {
        if (_pending.Count > 0 || _cursorDirty)
        {
            await FlushAsync(force: true);
        }
        else if (_writer.CopyDue)
        {
            await CopyLifecycleAsync(force: true);
        }

        if (_pending.Count == 0 && !_writer.CopyDue)
        {
            _retryTimer?.Dispose();
            _retryTimer = null;
            if (_head.Stopped)
            {
                DeactivateOnIdle();
            }
        }
    }

    private static string ProtocolName(CallProtocol protocol) => protocol == CallProtocol.Exotel ? "exotel" : "native";

    private static CallEntry EventEntry(CallItem item) => item.Kind == CallItemKind.Dtmf
        ? new DtmfEntry(item.Seq, item.TimestampMs, item.Digit ?? string.Empty, item.DurationMs)
        : new MarkEntry(item.Seq, item.TimestampMs, item.MarkName ?? string.Empty);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Published audio frame: {{ stream_sid: {StreamSid}, seq: {Seq} }}")]
    private partial void LogPublishedFrame(string streamSid, long seq);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stream {StreamId}: nothing from its connection for {Seconds} s (gateway lost?); ending the call with reason gateway_lost")]
    private partial void LogOrphaned(string streamId, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stream {StreamId} is live on another connection; refused a second one")]
    private partial void LogStreamConflict(string streamId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Gap in stream {StreamId}: sequence {From}..{To}, {Missing} frame(s) missing")]
    private partial void LogGap(string streamId, long from, long to, long missing);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Dropped {Count} duplicate item(s) on stream {StreamId}")]
    private partial void LogDuplicates(string streamId, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stream {StreamId} stopped: {Reason}, {Frames} frame(s)")]
    private partial void LogStopped(string streamId, string reason, long frames);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stream {StreamId} resumed from Redis at sequence {MediaSeq} ({Frames} frame(s) already published)")]
    private partial void LogResumed(string streamId, long mediaSeq, long frames);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis unavailable for stream {StreamId} ({Why}); holding {Pending} entr(ies) and retrying")]
    private partial void LogRedisUnavailable(string streamId, int pending, string why);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stream {StreamId}: copying its lifecycle entries to ingest:calls failed ({Why}); retrying (nothing is lost: they wait in the call's own keys)")]
    private partial void LogCopyFailed(string streamId, string why);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stream {StreamId}: lifecycle entries a former activation wrote are not yet in ingest:calls; copying them")]
    private partial void LogCopyResumed(string streamId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stream {StreamId}: an earlier write that timed out had landed; {Settled} entr(ies) settled, writing on")]
    private partial void LogReconciled(string streamId, int settled);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stream {StreamId}: sequence number {Seq} is more than 100000 beyond the stream's highest ({Highest}); dropped as malformed, the stream's position is unchanged")]
    private partial void LogSequenceJump(string streamId, long seq, long highest);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stream {StreamId}: its owner has been silent for more than {Seconds} s; a new connection takes it over")]
    private partial void LogOwnerReplaced(string streamId, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stream {StreamId}: {Count} frame(s) ({From}..{To}) arrived after the stream stopped; recorded as an after_stop gap")]
    private partial void LogAfterStop(string streamId, long count, long from, long to);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis back for stream {StreamId}; buffer flushed ({Pending} left)")]
    private partial void LogRedisRecovered(string streamId, int pending);

    [LoggerMessage(Level = LogLevel.Error, Message = "Buffer of stream {StreamId} full ({Limit} entries or its byte budget) while Redis is away; dropping frames from sequence {Seq}, counted and recorded as a buffer_overflow gap")]
    private partial void LogOverflowStarted(string streamId, int limit, long seq);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cursor of stream {StreamId} moved under this activation; reloading it, the gateway presents the call again and resends")]
    private partial void LogCursorMoved(string streamId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Stream {StreamId} deactivated ({Reason}) with {Pending} entr(ies) unwritten; the gateway holds them for resend")]
    private partial void LogDeactivatedWithPending(string streamId, int pending, string reason);
}
