using System.Collections.Immutable;
using Ingest.Grains.Interfaces;
using Ingest.Grains.Publishing;
using Ingest.Grains.Sequencing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Ingest.Grains;

/// <summary>
/// One activation per live stream: ownership, sequencing and acks. Items arrive in the order the gateway received them;
/// the grain drops resends, records gaps (missing, malformed, buffer_overflow, after_stop) and hands whole entries with
/// the cursor they lead to to its <see cref="CallOutbox"/>, which owns everything until Redis and <c>ingest:calls</c>
/// have them. The cursor in Redis holds the owning connection and the last gateway index settled, so ownership and
/// exactly-once survive a reactivation on another silo.
/// </summary>
public sealed partial class CallStreamGrain(
    CallStreamStore store,
    SiloBuffers buffers,
    TimeProvider time,
    IOptions<IngestOptions> options,
    ILogger<CallStreamGrain> logger) : Grain, ICallStreamGrain
{
    // A stopped call whose lifecycle copy fails this long deactivates; the lifecycle sweeper finishes it later.
    private static readonly TimeSpan CopyPatience = TimeSpan.FromSeconds(30);

    private IngestOptions _options = options.Value;
    private GrainMetrics _metrics = GrainMetrics.Live;
    private bool _warmup;
    private readonly SequenceTracker _tracker = new();
    private string _streamId = string.Empty;
    private CallOutbox _outbox = null!;
    private bool _loaded;

    // The cursor once everything accepted is in Redis.
    private CallCursor _head = CallCursor.Empty;
    private long _lastIndex;

    // The owner presented its call to this activation (a fresh activation answers NotStarted until it does).
    private bool _presented;
    private long _ownerSeen;
    private IGrainTimer? _retryTimer;
    private IGrainTimer? _orphanTimer;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _streamId = this.GetPrimaryKeyString();
        var writer = store.ForStream(_streamId);

        // A warm-up call (WarmupCalls) runs the same code with its own keys and retention (the writer's options),
        // unexported instruments, no spans and no log lines.
        _options = writer.Options;
        _warmup = WarmupCalls.Is(_streamId);
        if (_warmup)
        {
            _metrics = GrainMetrics.Warmup;
            logger = Microsoft.Extensions.Logging.Abstractions.NullLogger<CallStreamGrain>.Instance;
        }

        _outbox = new CallOutbox(writer, buffers, _metrics, logger);
        return Task.CompletedTask;
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (!_loaded)
        {
            return;
        }

        if (_outbox.Count > 0)
        {
            await _outbox.FlushAsync(force: true);
            if (_outbox.Count > 0)
            {
                LogDeactivatedWithPending(_streamId, _outbox.Count, reason.Description);
                _outbox.Release();
            }
        }

        if (_outbox.CopyDue && !await _outbox.CopyAsync(force: true) && _head.Stopped)
        {
            await _outbox.ParkAsync();
        }
    }

    public async ValueTask<CallAck> Start(CallStart start)
    {
        using var span = CallSpans.StartLifecycle("ingest.grain.start", _streamId, _warmup);
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

        // One connection owns a live stream; a silent owner's call is ended by the orphan timer, never handed over.
        if (_head.Owner.Length > 0 && _head.Owner != start.ConnectionId)
        {
            LogStreamConflict(_streamId);
            return Ack(CallAckStatus.Conflict);
        }

        _presented = true;
        _ownerSeen = time.GetTimestamp();
        if (!_head.Started)
        {
            _tracker.SetBaseline(start.StartSequence);
            _head = _head with
            {
                Owner = start.ConnectionId,
                Index = 0,
                Started = true,
                CallSid = start.CallSid ?? string.Empty,
                Protocol = start.Protocol == CallProtocol.Exotel ? "exotel" : "native",
                StartedAt = time.GetUtcNow().ToUnixTimeMilliseconds(),
            };
            _lastIndex = 0;
            Enqueue(new StartEntry(_head.Protocol, start.Encoding, start.SampleRate, _head.StartedAt, start.CallSid, start.AccountSid, start.From, start.To, start.Parameters), _lastIndex);
        }

        EnsureOrphanTimer();

        // While Redis is away the retry timer writes; a re-presented call must not wait on it again.
        using (CallSpans.StartRedis("start"))
        {
            await FlushAsync(force: !_outbox.RedisDown);
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

        _ownerSeen = time.GetTimestamp();
        if (items.IsDefaultOrEmpty)
        {
            await _outbox.HeartbeatAsync();
            AfterFlush(FlushOutcome.Done);
            return Ack(Status());
        }

        if (!_outbox.Fits(0) && _outbox.IsConnected)
        {
            // Redis is there but slow (overload, not an outage): take nothing more. The gateway keeps these items and
            // sends them again after a pause, so nothing is dropped and the pressure reaches the sockets.
            await FlushAsync(force: true);
            if (!_presented)
            {
                return Ack(CallAckStatus.NotStarted);
            }

            if (!_outbox.Fits(0))
            {
                _metrics.Pushback.Add(1);
                return Ack(CallAckStatus.Busy);
            }
        }

        var tally = new Tally();
        var busy = false;
        foreach (var item in items)
        {
            if (item.Index <= _lastIndex)
            {
                continue;
            }

            if (!Accept(item, ref tally))
            {
                // No room (Redis slow, or an event while Redis is away): this item and the rest come again.
                busy = true;
                break;
            }
        }

        tally.Report(_metrics);
        if (tally.Duplicates > 0)
        {
            LogDuplicates(_streamId, tally.Duplicates);
        }

        if (tally.EventsDropped > 0)
        {
            // Nothing else may be written for them; the cursor keeps the count for the stop.
            _outbox.SetCursor(_head);
        }

        await FlushAsync(force: busy && !_outbox.RedisDown);
        var status = Status();
        if (busy && status != CallAckStatus.NotStarted)
        {
            _metrics.Pushback.Add(1);
            status = CallAckStatus.Busy;
        }

        return Ack(status) with
        {
            Duplicates = tally.Duplicates,
            GapsRecorded = tally.Gaps,
            MissingFrames = tally.Missing,
            Overflowed = tally.Overflowed,
            Malformed = tally.Malformed,
        };
    }

    /// <summary>Sequences one item and hands what it becomes to the outbox; false when there is no room for it.</summary>
    private bool Accept(CallItem item, ref Tally tally)
    {
        var isEvent = item.Kind is CallItemKind.Dtmf or CallItemKind.Mark;
        var fits = _outbox.Fits(isEvent ? EntryFields.HeldBytes(EventEntry(item)) : item.Bytes);
        if (!fits && (isEvent || (item.Kind == CallItemKind.Media && _outbox.IsConnected)))
        {
            return false;
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
            tally.Duplicates++;
            return true;
        }

        if (decision.Verdict == SequenceVerdict.Malformed)
        {
            tally.Malformed++;
            LogSequenceJump(_streamId, item.Seq, _tracker.Highest);
            return true;
        }

        switch (item.Kind)
        {
            case CallItemKind.Media:
                tally.Gaps += RecordMissing(decision, item.Index - 1, ref tally.Missing);
                if (!fits)
                {
                    // Only a real outage (no connection) drops frames; a slow Redis pushes back instead (see above).
                    tally.Overflowed++;
                    tally.Gaps += AddToGap("buffer_overflow", item.Seq, item.Seq, 1, item.Index);
                    break;
                }

                _head = _head with { Frames = _head.Frames + 1 };
                Enqueue(new AudioEntry(item.Seq, item.TimestampMs, item.Audio ?? []), item.Index);
                break;
            case CallItemKind.Malformed:
                tally.Gaps += RecordMissing(decision, item.Index - 1, ref tally.Missing);
                tally.Gaps += AddToGap("malformed", item.Seq, item.Seq, 1, item.Index);
                break;
            case CallItemKind.Overflow:
                // The gateway could not keep these frames; they take their numbers as one buffer_overflow gap. The
                // range may hold dtmf/mark numbers too; the item counts the frames themselves.
                tally.Gaps += RecordMissing(gapBefore, item.Index - 1, ref tally.Missing);
                var frames = item.Count > 0 ? Math.Min(item.Count, decision.Missing) : decision.Missing;
                tally.Overflowed += (int)Math.Min(int.MaxValue, frames);
                tally.Gaps += AddToGap("buffer_overflow", decision.MissingFrom, decision.MissingTo, frames, item.Index);
                break;
            default:
                if (_head.Events >= _options.MaxEventsPerCall)
                {
                    // CONTRACT §7: one call cannot crowd the others out of ingest:calls. Its number is not a gap.
                    _head = _head with { EventsDropped = _head.EventsDropped + 1 };
                    tally.EventsDropped++;
                    break;
                }

                _head = _head with { Events = _head.Events + 1 };
                Enqueue(EventEntry(item), item.Index);
                break;
        }

        return true;
    }

    public async ValueTask<CallAck> Stop(CallStop stop)
    {
        using var span = CallSpans.StartLifecycle("ingest.grain.stop", _streamId, _warmup);
        span?.SetTag("reason", stop.Reason);
        var ack = await StopLifecycleAsync(stop);
        span?.SetTag("ack", ack.Status.ToString());
        span?.SetTag("frames", _head.Frames);
        return ack;
    }

    public async ValueTask Sweep()
    {
        await EnsureLoadedAsync();
        if (!_head.Started && _outbox.Count == 0)
        {
            // Nothing of the call is in Redis (its keys expired, or its start never landed): nothing to copy or end.
            await _outbox.ForgetAsync();
            DeactivateOnIdle();
            return;
        }

        // Refreshes the call in the open set, or takes it out once stopped and copied; a live call without an owner is
        // ended by the orphan timer that loading it started.
        await _outbox.CopyAsync(force: true);
        if (_head.Stopped && _outbox.Idle)
        {
            DeactivateOnIdle();
        }
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
            var at = time.GetUtcNow().ToUnixTimeMilliseconds();
            Enqueue(new StopEntry(reason, _head.Frames, _head.Gaps, _head.Missing, _head.EventsDropped, at, _head.CallSid), _lastIndex);
            LogStopped(_streamId, reason, _head.Frames);
        }

        _orphanTimer?.Dispose();
        _orphanTimer = null;
        using (CallSpans.StartRedis("stop"))
        {
            await FlushAsync(force: true);
        }

        if (_presented && _outbox.Idle)
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
        if (_head.Stopped || !_head.Started || time.GetElapsedTime(_ownerSeen) < _options.OrphanTimeout)
        {
            return;
        }

        LogOrphaned(_streamId, _options.OrphanTimeout.TotalSeconds);
        await StopCoreAsync("gateway_lost");
    }

    private async Task FlushAsync(bool force) => AfterFlush(await _outbox.FlushAsync(force));

    private void AfterFlush(FlushOutcome outcome)
    {
        if (outcome == FlushOutcome.Conflict)
        {
            // Another activation wrote: reload from Redis on the next call. The gateway still has every unsettled item;
            // told NotStarted, it presents the call again and resends.
            _loaded = false;
            _presented = false;
        }

        if (!_outbox.Idle)
        {
            _retryTimer ??= this.RegisterGrainTimer(
                static (grain, _) => grain.OnRetryTimerAsync(),
                this,
                new GrainTimerCreationOptions(_options.RetryInterval, _options.RetryInterval) { KeepAlive = true });
        }
    }

    private async Task OnRetryTimerAsync()
    {
        var outcome = await _outbox.RetryAsync();
        AfterFlush(outcome);
        var parked = _outbox.MayPark(CopyPatience);
        if (parked)
        {
            await _outbox.ParkAsync();
        }

        if (_outbox.Idle || parked)
        {
            _retryTimer?.Dispose();
            _retryTimer = null;
            if (_head.Stopped)
            {
                DeactivateOnIdle();
            }
        }
    }

    private async Task EnsureLoadedAsync()
    {
        if (_loaded)
        {
            return;
        }

        // Redis is the source of truth for what was already published and who owns the stream; a load failure
        // surfaces to the gateway, which keeps the frames and retries.
        var (cursor, lifecycleFloor) = await _outbox.LoadAsync();
        _head = cursor with { Lifecycle = lifecycleFloor };
        _outbox.SetCursor(_head);
        _tracker.Restore(cursor.Sequence);
        _lastIndex = cursor.Index;
        _presented = false;

        // The owner is as good as seen now: it gets the orphan timeout to present its call again after a failover.
        _ownerSeen = time.GetTimestamp();
        _loaded = true;
        if (cursor.Started && !cursor.Stopped)
        {
            LogResumed(_streamId, cursor.Sequence.MediaSeq ?? 0, cursor.Frames);
            EnsureOrphanTimer();
        }

        if (_outbox.CopyDue)
        {
            // A former activation wrote lifecycle entries it did not live to copy to ingest:calls.
            LogCopyResumed(_streamId);
            await _outbox.CopyAsync(force: true);
            AfterFlush(FlushOutcome.Done);
        }
    }

    private CallAckStatus Status() =>
        !_presented && _head.Started && !_head.Stopped ? CallAckStatus.NotStarted
        : _outbox.RedisDown ? CallAckStatus.Buffering
        : CallAckStatus.Ok;

    private CallAck Ack(CallAckStatus status) => new(
        SettledIndex: _outbox.SettledIndex(_lastIndex),
        Published: _outbox.TakePublished(),
        Duplicates: 0,
        GapsRecorded: 0,
        MissingFrames: 0,
        Overflowed: 0,
        Buffered: _outbox.Count,
        Status: status);

    /// <summary>A gap entry for numbers no item took, written together with the item that revealed them. Returns gaps added.</summary>
    private int RecordMissing(SequenceDecision decision, long settledIndex, ref long missing)
    {
        if (decision.Missing <= 0)
        {
            return 0;
        }

        missing += decision.Missing;
        LogGap(_streamId, decision.MissingFrom, decision.MissingTo, decision.Missing);
        if (_head.Gaps >= _options.MaxEventsPerCall)
        {
            // Past the bound only the stop's missing says it (CONTRACT §7).
            _head = _head with { Missing = _head.Missing + decision.Missing };
            return 0;
        }

        _head = _head with { Gaps = _head.Gaps + 1, Missing = _head.Missing + decision.Missing };
        Enqueue(new GapEntry(decision.MissingFrom, decision.MissingTo, decision.Missing, "missing"), settledIndex, joinNext: true);
        return 1;
    }

    /// <summary>Adds frames to a gap of one reason, growing the last pending gap when it is contiguous. Returns gaps added.</summary>
    private int AddToGap(string reason, long from, long to, long count, long index)
    {
        _head = _head with { Missing = _head.Missing + count };
        if (_outbox.TryExtendGap(reason, from, to, count, Snapshot(index), index))
        {
            _head = Snapshot(index);
            return 0;
        }

        if (_head.Gaps >= _options.MaxEventsPerCall)
        {
            return 0;
        }

        if (reason == "buffer_overflow")
        {
            LogOverflowStarted(_streamId, _options.BufferLimit, from);
        }

        _head = Snapshot(index) with { Gaps = _head.Gaps + 1, Lifecycle = _head.Lifecycle + 1 };
        _outbox.Add(new GapEntry(from, to, count, reason), _head, index, openGap: true);
        return 1;
    }

    private CallCursor Snapshot(long index) => _head with { Sequence = _tracker.Position, Index = index };

    /// <summary>Adds an entry to write; a lifecycle entry takes the call's next lifecycle number (for the copy to ingest:calls).</summary>
    private void Enqueue(CallEntry entry, long index, bool joinNext = false)
    {
        _head = Snapshot(index);
        if (!entry.IsAudio)
        {
            _head = _head with { Lifecycle = _head.Lifecycle + 1 };
        }

        _outbox.Add(entry, _head, index, joinNext);
    }

    private static CallEntry EventEntry(CallItem item) => item.Kind == CallItemKind.Dtmf
        ? new DtmfEntry(item.Seq, item.TimestampMs, item.Digit ?? string.Empty, item.DurationMs)
        : new MarkEntry(item.Seq, item.TimestampMs, item.MarkName ?? string.Empty);

    /// <summary>What one Append did, for its ack and the silo's counters.</summary>
    private struct Tally
    {
        public int Duplicates;
        public int Gaps;
        public int Overflowed;
        public int Malformed;
        public int EventsDropped;
        public long Missing;

        public readonly void Report(GrainMetrics metrics)
        {
            if (Duplicates > 0)
            {
                metrics.Duplicates.Add(Duplicates);
            }

            if (Gaps > 0)
            {
                metrics.Gaps.Add(Gaps);
                metrics.MissingFrames.Add(Missing);
            }

            if (Overflowed > 0)
            {
                metrics.Overflowed.Add(Overflowed);
            }

            if (Malformed > 0)
            {
                metrics.Malformed.Add(Malformed);
            }

            if (EventsDropped > 0)
            {
                metrics.EventsDropped.Add(EventsDropped);
            }
        }
    }

    [LoggerMessage(EventId = 1001, Level = LogLevel.Warning, Message = "Stream {StreamId}: nothing from its connection for {Seconds} s (gateway lost?); ending the call with reason gateway_lost")]
    private partial void LogOrphaned(string streamId, double seconds);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Warning, Message = "Stream {StreamId} is live on another connection; refused a second one")]
    private partial void LogStreamConflict(string streamId);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Information, Message = "Gap in stream {StreamId}: sequence {From}..{To}, {Missing} frame(s) missing")]
    private partial void LogGap(string streamId, long from, long to, long missing);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Debug, Message = "Dropped {Count} duplicate item(s) on stream {StreamId}")]
    private partial void LogDuplicates(string streamId, int count);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Information, Message = "Stream {StreamId} stopped: {Reason}, {Frames} frame(s)")]
    private partial void LogStopped(string streamId, string reason, long frames);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Information, Message = "Stream {StreamId} resumed from Redis at sequence {MediaSeq} ({Frames} frame(s) already published)")]
    private partial void LogResumed(string streamId, long mediaSeq, long frames);

    [LoggerMessage(EventId = 1007, Level = LogLevel.Information, Message = "Stream {StreamId}: lifecycle entries a former activation wrote are not yet in ingest:calls; copying them")]
    private partial void LogCopyResumed(string streamId);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Warning, Message = "Stream {StreamId}: sequence number {Seq} is more than 100000 beyond the stream's highest ({Highest}); dropped as malformed, the stream's position is unchanged")]
    private partial void LogSequenceJump(string streamId, long seq, long highest);

    [LoggerMessage(EventId = 1009, Level = LogLevel.Warning, Message = "Stream {StreamId}: {Count} frame(s) ({From}..{To}) arrived after the stream stopped; recorded as an after_stop gap")]
    private partial void LogAfterStop(string streamId, long count, long from, long to);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Error, Message = "Buffer of stream {StreamId} full ({Limit} entries or its byte budget) while Redis is away; dropping frames from sequence {Seq}, counted and recorded as a buffer_overflow gap")]
    private partial void LogOverflowStarted(string streamId, int limit, long seq);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Error, Message = "Stream {StreamId} deactivated ({Reason}) with {Pending} entr(ies) unwritten; the gateway holds them for resend")]
    private partial void LogDeactivatedWithPending(string streamId, int pending, string reason);
}
