using System.Collections.Immutable;
using Ingest.Grains.Interfaces;
using Ingest.Grains.Publishing;
using Ingest.Grains.Sequencing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Placement;

namespace Ingest.Grains;

/// <summary>
/// One activation per live stream: ownership, acks, timers, activation. Items arrive in the order the gateway received
/// them; its <see cref="CallItemSequencer"/> turns them into entries (resends dropped, gaps recorded, per-call bounds
/// applied) for its <see cref="CallOutbox"/>, which owns everything until Redis and <c>ingest:calls</c> have them. The
/// cursor in Redis holds the owning connection and the last gateway index settled, so ownership and exactly-once
/// survive a reactivation on another silo.
/// Placed by activation count (the power of two choices over each silo's published count and the placements made
/// since): calls spread evenly over the silos, and a silo that joins takes new calls at once, being the least loaded.
/// Orleans' default (resource-optimised) placement sends every new call to whichever silo looked least busy at the
/// last statistics sample, which under a burst of new calls herds them onto one silo (issue 26: 29 / 217 / 254).
/// </summary>
[ActivationCountBasedPlacement]
public sealed partial class CallStreamGrain(
    CallStreamStore store,
    SiloBuffers buffers,
    LiveCalls live,
    TimeProvider time,
    IOptions<IngestOptions> options,
    ILogger<CallStreamGrain> logger) : Grain, ICallStreamGrain
{
    // A stopped call whose lifecycle copy fails this long deactivates; the lifecycle sweeper finishes it later.
    private static readonly TimeSpan CopyPatience = TimeSpan.FromSeconds(30);

    private IngestOptions _options = options.Value;
    private GrainMetrics _metrics = GrainMetrics.Live;
    private bool _warmup;
    private string _streamId = string.Empty;
    private CallOutbox _outbox = null!;
    private CallItemSequencer _items = null!;
    private bool _loaded;

    // The owner presented its call to this activation (a fresh activation answers NotStarted until it does).
    private bool _presented;
    private long _ownerSeen;
    private IGrainTimer? _retryTimer;
    private IGrainTimer? _orphanTimer;

    private CallCursor Head => _items.Head;

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
        _items = new CallItemSequencer(_outbox, _options, _streamId, logger);
        if (!_warmup)
        {
            live.Add(_streamId, this);
        }

        return Task.CompletedTask;
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        live.Remove(_streamId, this);
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

        if (_outbox.CopyDue && !await _outbox.CopyAsync(force: true) && Head.Stopped)
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
        if (Head.Stopped)
        {
            return Ack(CallAckStatus.Ended);
        }

        // One connection owns a live stream; a silent owner's call is ended by the orphan timer, never handed over.
        if (Head.Owner.Length > 0 && Head.Owner != start.ConnectionId)
        {
            LogStreamConflict(_streamId);
            return Ack(CallAckStatus.Conflict);
        }

        _presented = true;
        _ownerSeen = time.GetTimestamp();
        if (!Head.Started)
        {
            _items.Begin(start, time.GetUtcNow().ToUnixTimeMilliseconds());
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
        if (Head.Stopped)
        {
            if (connectionId == Head.Owner)
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

        if (connectionId != Head.Owner)
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

        var tally = default(ItemTally);
        var busy = false;
        foreach (var item in items)
        {
            if (item.Index > _items.LastIndex && !_items.Accept(item, ref tally))
            {
                // No room: this item and the rest of the batch come again.
                busy = true;
                break;
            }
        }

        tally.Report(_metrics);
        if (tally.Duplicates > 0)
        {
            LogDuplicates(_streamId, tally.Duplicates);
        }

        _items.KeepCursorIf(tally.EventsDropped > 0);

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

    public async ValueTask<CallAck> Stop(CallStop stop)
    {
        using var span = CallSpans.StartLifecycle("ingest.grain.stop", _streamId, _warmup);
        span?.SetTag("reason", stop.Reason);
        var ack = await StopLifecycleAsync(stop);
        span?.SetTag("ack", ack.Status.ToString());
        span?.SetTag("frames", Head.Frames);
        return ack;
    }

    public async ValueTask Sweep()
    {
        await EnsureLoadedAsync();
        if (!Head.Started && _outbox.Count == 0)
        {
            // Nothing of the call is in Redis (its keys expired, or its start never landed): nothing to copy or end.
            await _outbox.ForgetAsync();
            DeactivateOnIdle();
            return;
        }

        // Refreshes the call in the open set, or takes it out once stopped and copied; a live call without an owner is
        // ended by the orphan timer that loading it started.
        await _outbox.CopyAsync(force: true);
        if (Head.Stopped && _outbox.Idle)
        {
            DeactivateOnIdle();
        }
    }

    private async ValueTask<CallAck> StopLifecycleAsync(CallStop stop)
    {
        await EnsureLoadedAsync();
        if (Head.Stopped)
        {
            // A resent stop of the owner is already done; anyone else is told the stream is over.
            return Ack(stop.ConnectionId == Head.Owner ? Status() : CallAckStatus.Ended);
        }

        if (!Head.Started || !_presented)
        {
            return Ack(CallAckStatus.NotStarted);
        }

        if (stop.ConnectionId != Head.Owner)
        {
            LogStreamConflict(_streamId);
            return Ack(CallAckStatus.Conflict);
        }

        var missing = _items.MissingBeforeStop(stop.Seq);
        if (missing > 0)
        {
            _metrics.Gaps.Add(1);
            _metrics.MissingFrames.Add(missing);
        }

        var ack = await StopCoreAsync(stop.Reason);
        return missing > 0 ? ack with { GapsRecorded = 1, MissingFrames = missing } : ack;
    }

    private async Task<CallAck> StopCoreAsync(string reason)
    {
        if (!Head.Stopped)
        {
            _items.Stop(reason, time.GetUtcNow().ToUnixTimeMilliseconds());
            LogStopped(_streamId, reason, Head.Frames);
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

    /// <summary>Frames of the owner after the stream stopped (its gateway was cut off past the orphan timeout).</summary>
    private async Task RecordAfterStopAsync(ImmutableArray<CallItem> items)
    {
        var (count, from, to, gaps) = _items.AfterStop(items);
        if (count == 0)
        {
            return;
        }

        LogAfterStop(_streamId, count, from, to);
        _metrics.Gaps.Add(gaps);
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
        if (Head.Stopped || !Head.Started || time.GetElapsedTime(_ownerSeen) < _options.OrphanTimeout)
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
        AfterFlush(await _outbox.RetryAsync());
        var parked = _outbox.MayPark(CopyPatience);
        if (parked)
        {
            await _outbox.ParkAsync();
        }

        if (_outbox.Idle || parked)
        {
            _retryTimer?.Dispose();
            _retryTimer = null;
            if (Head.Stopped)
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
        _items.Restore(cursor, lifecycleFloor);
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
        !_presented && Head.Started && !Head.Stopped ? CallAckStatus.NotStarted
        : _outbox.RedisDown ? CallAckStatus.Buffering
        : CallAckStatus.Ok;

    private CallAck Ack(CallAckStatus status) => new(
        SettledIndex: _outbox.SettledIndex(_items.LastIndex),
        Published: _outbox.TakePublished(),
        Duplicates: 0,
        GapsRecorded: 0,
        MissingFrames: 0,
        Overflowed: 0,
        Buffered: _outbox.Count,
        Status: status);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Warning, Message = "Stream {StreamId}: nothing from its connection for {Seconds} s (gateway lost?); ending the call with reason gateway_lost")]
    private partial void LogOrphaned(string streamId, double seconds);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Warning, Message = "Stream {StreamId} is live on another connection; refused a second one")]
    private partial void LogStreamConflict(string streamId);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Debug, Message = "Dropped {Count} duplicate item(s) on stream {StreamId}")]
    private partial void LogDuplicates(string streamId, int count);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Information, Message = "Stream {StreamId} stopped: {Reason}, {Frames} frame(s)")]
    private partial void LogStopped(string streamId, string reason, long frames);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Information, Message = "Stream {StreamId} resumed from Redis at sequence {MediaSeq} ({Frames} frame(s) already published)")]
    private partial void LogResumed(string streamId, long mediaSeq, long frames);

    [LoggerMessage(EventId = 1007, Level = LogLevel.Information, Message = "Stream {StreamId}: lifecycle entries a former activation wrote are not yet in ingest:calls; copying them")]
    private partial void LogCopyResumed(string streamId);

    [LoggerMessage(EventId = 1009, Level = LogLevel.Warning, Message = "Stream {StreamId}: {Count} frame(s) ({From}..{To}) arrived after the stream stopped; recorded as an after_stop gap")]
    private partial void LogAfterStop(string streamId, long count, long from, long to);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Error, Message = "Stream {StreamId} deactivated ({Reason}) with {Pending} entr(ies) unwritten; the gateway holds them for resend")]
    private partial void LogDeactivatedWithPending(string streamId, int pending, string reason);
}
