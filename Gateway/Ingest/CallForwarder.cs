using System.Collections.Immutable;
using System.Diagnostics;
using Ingest.Grains.Interfaces;
using Ingest.ServiceDefaults;

namespace Ingest.Gateway.Ingest;

/// <summary>
/// Carries one call's items from its socket to its grain, in order, with at most one grain call in flight.
/// The call is presented to its grain by the forwarder's own loop, so a call whose start arrives while Redis or the
/// silos are unreachable is kept: its items queue here (within the byte budgets) and go, in order, once the grain
/// accepts the call. Every item stays here until the grain says it is settled (in Redis, or dropped for a counted
/// reason). When a grain call fails (silo lost, timeout) the forwarder presents the call again and resends what is
/// unsettled, in order; the grain recognises what Redis already has, so nothing is written twice.
/// Every wait is bounded: grain calls by <see cref="CallGrainTimeout"/>, a full buffer by <see cref="BackpressureLimit"/>
/// (after which frames become a counted buffer_overflow gap), the end of the call by the caller's timeout.
/// </summary>
public sealed partial class CallForwarder : IAsyncDisposable
{
    private const int MaxBatch = 128;

    /// <summary>How often a call with nothing to send calls its grain anyway; well below the grains' INGEST_ORPHAN_SECONDS.</summary>
    internal static readonly TimeSpan HeartbeatInterval = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long one grain call may take before the forwarder gives up on it and presents the call again. The Orleans
    /// client fails a request to a silo that died (kill -9, power loss) only at its response timeout; a call
    /// normally answers in milliseconds, so waiting that long would stall the call. An abandoned request that still
    /// arrives later is harmless: the grain drops items at or below the index it already has.
    /// </summary>

    /// <summary>How long a socket waits for room when its call's buffer is full before frames are counted as overflow.</summary>
    internal static readonly TimeSpan BackpressureLimit = TimeSpan.FromSeconds(2);

    private static readonly TimeSpan InitialBackoff = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(1);

    private readonly ICallStreamGrain _grain;
    private readonly CallStart _start;
    private readonly GatewayLimits _limits;
    private readonly ILogger _logger;
    private readonly GatewayMetrics _metrics;
    private readonly Lock _gate = new();
    private readonly List<Queued> _unsent = [];
    private readonly List<Queued> _unsettled = [];
    private readonly SemaphoreSlim _wake = new(0);

    // One timer per call wakes a quiet pump for its heartbeat; the per-frame wait itself has no timeout (a timeout on
    // it armed a timer for every frame).
    private readonly Timer _heartbeatTimer;
    private long _lastGrainCallMs = Environment.TickCount64;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource<CallAckStatus> _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private TaskCompletionSource? _space;
    private CallStop? _stopRequest;
    private long _nextIndex;
    private long _bytes;
    private bool _overflowing;
    private Task? _pump;
    private bool _presented;
    private bool _released;
    private int _failures;
    private TimeSpan _backoff = InitialBackoff;

    private readonly ActivityContext _trace;
    private long _published;

    public CallForwarder(ICallStreamGrain grain, CallStart start, GatewayLimits limits, ILogger logger, ActivityContext? trace = null, GatewayMetrics? metrics = null)
    {
        _trace = trace ?? default;
        _grain = grain;
        _start = start;
        _limits = limits;
        _logger = logger;
        _metrics = metrics ?? GatewayMetrics.Live;
        var half = HeartbeatInterval / 2;
        _heartbeatTimer = new Timer(static state => ((CallForwarder)state!).Wake(), this, half, half);
    }

    private readonly record struct Queued(CallItem Item, long ReceivedTicks);

    /// <summary>True once the grain has accepted the call at least once.</summary>
    public bool WasAccepted { get; private set; }

    /// <summary>Completes when the call is over for the cluster: stopped, or refused (Ended, Conflict).</summary>
    public Task<CallAckStatus> Completion => _completed.Task;

    /// <summary>Frames the grain confirmed written to Redis for this call.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>Audio bytes this call holds (unsent and the copy kept for resend).</summary>
    public long HeldBytes => Interlocked.Read(ref _bytes);

    /// <summary>Starts presenting the call and forwarding; items may be queued before and after.</summary>
    public void Begin()
    {
        if (_pump is not null)
        {
            return;
        }

        _pump = Task.Run(PumpAsync, CancellationToken.None);
    }

    /// <summary>A client span for one lifecycle grain call; null without a call span or a listener.</summary>
    private Activity? StartLifecycleSpan(string name, string method)
    {
        if (_trace == default)
        {
            return null;
        }

        var activity = IngestTelemetry.Source.StartActivity(name, ActivityKind.Client, _trace);
        activity?.SetTag("rpc.system", "orleans");
        activity?.SetTag("rpc.service", nameof(ICallStreamGrain));
        activity?.SetTag("rpc.method", method);
        activity?.SetTag("stream_id", _start.StreamId);
        return activity;
    }

    private async Task<CallAck?> LifecycleCallAsync(string name, string method, Func<ValueTask<CallAck>> call, CancellationToken token)
    {
        using var activity = StartLifecycleSpan(name, method);
        var ack = await CallAsync(call, token);
        activity?.SetTag("ack", ack?.Status.ToString() ?? "failed");
        if (ack is null)
        {
            activity?.SetStatus(ActivityStatusCode.Error);
        }

        return ack;
    }

    /// <summary>
    /// Queues one item. Completes at once while there is room; a full buffer holds the caller (backpressure) for at
    /// most <see cref="BackpressureLimit"/>, after which media frames that do not fit become one counted
    /// buffer_overflow gap until room returns. dtmf/mark events are small and always kept.
    /// </summary>
    public async ValueTask EnqueueAsync(CallItem item)
    {
        var kind = item.Kind;
        var bytes = item.Bytes;
        if (kind == CallItemKind.Media && !_overflowing && !HasRoom(bytes))
        {
            await WaitForRoomAsync(bytes);
        }
        else if (kind != CallItemKind.Media)
        {
            // dtmf/mark are never dropped: a flood of them is held back at the socket instead (backpressure).
            while (!_stop.IsCancellationRequested && !HasRoomForEvent())
            {
                await WaitForRoomAsync(-1);
            }
        }

        lock (_gate)
        {
            if (kind == CallItemKind.Media && !HasRoom(bytes))
            {
                if (!_overflowing)
                {
                    _overflowing = true;
                    LogOverflowStarted(_start.StreamId, item.Seq, _limits.MaxCallBufferBytes);
                }

                _metrics.Overflowed.Add(1);
                AddOverflow(item.Seq, item.Chunk, item.Track);
                Wake();
                return;
            }

            if (_overflowing && _bytes <= _limits.MaxCallBufferBytes / 2)
            {
                _overflowing = false;
            }

            _unsent.Add(new Queued(item with { Index = ++_nextIndex }, Stopwatch.GetTimestamp()));
            AddBytes(bytes);
        }

        Wake();
    }

    /// <summary>
    /// While this call is already overflowing and <paramref name="bytes"/> more would not fit, counts the frame into the
    /// open buffer_overflow gap at once and returns true, so the caller need not copy audio that is dropped anyway.
    /// </summary>
    public bool TryOverflow(long seq, int bytes)
    {
        // Read without the lock first: the common case (not overflowing) must cost nothing per frame.
        if (!Volatile.Read(ref _overflowing))
        {
            return false;
        }

        lock (_gate)
        {
            if (!_overflowing || HasRoom(bytes))
            {
                return false;
            }

            _metrics.Overflowed.Add(1);
            AddOverflow(seq, null, CallTrack.Untracked);
        }

        Wake();
        return true;
    }

    /// <summary>
    /// Requests the end of the call: everything queued goes first, then the stop. <see cref="Completion"/> completes
    /// when the grain has accepted the stop (written, or buffered while Redis is away).
    /// </summary>
    public void Complete(string reason, long? seq, string connectionId)
    {
        lock (_gate)
        {
            _stopRequest ??= new CallStop(reason, seq, connectionId);
        }

        Wake();
    }

    /// <summary>Waits for the end of the call for at most <paramref name="timeout"/>; null when it did not come in time.</summary>
    public async Task<CallAckStatus?> WaitAsync(TimeSpan timeout)
    {
        try
        {
            return await _completed.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    /// <summary>Items (frames, events) still held: not yet confirmed by the grain.</summary>
    public int HeldItems
    {
        get
        {
            lock (_gate)
            {
                return _unsent.Count + _unsettled.Count;
            }
        }
    }

    /// <summary>Gives up on what is still held (the delivery bound ran out): counted and logged, never silent.</summary>
    public void Abandon(string why)
    {
        long frames;
        lock (_gate)
        {
            frames = CountFrames(_unsent) + CountFrames(_unsettled);
        }

        if (frames > 0)
        {
            _metrics.Dropped.Add(frames, new KeyValuePair<string, object?>("reason", "undeliverable"));
            LogAbandoned(_start.StreamId, frames, why);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_pump is not null)
        {
            try
            {
                await _pump;
            }
            catch (OperationCanceledException)
            {
            }
        }

        lock (_gate)
        {
            _unsent.Clear();
            _unsettled.Clear();
            AddBytes(-_bytes);
        }

        _space?.TrySetResult();
        _heartbeatTimer.Dispose();
        _stop.Dispose();
        _wake.Dispose();
    }

    private bool HasRoomForEvent() => _unsent.Count < _limits.MaxUnsentFrames;

    private bool HasRoom(int bytes) =>
        _unsent.Count < _limits.MaxUnsentFrames
        && _bytes + bytes <= _limits.MaxCallBufferBytes
        && GatewayBuffers.Bytes + bytes <= _limits.MaxGatewayBufferBytes;

    private async Task WaitForRoomAsync(int bytes)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(BackpressureLimit.TotalSeconds * Stopwatch.Frequency);
        while (!_stop.IsCancellationRequested)
        {
            Task wait;
            lock (_gate)
            {
                if (bytes < 0 ? HasRoomForEvent() : HasRoom(bytes))
                {
                    return;
                }

                _space ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _space.Task;
            }

            var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (left <= TimeSpan.Zero)
            {
                return;
            }

            // Room can also come from other calls (the gateway-wide budget), which do not signal this one: poll too.
            await Task.WhenAny(wait, Task.Delay(TimeSpan.FromMilliseconds(Math.Min(100, left.TotalMilliseconds))));
        }
    }

    /// <summary>
    /// One more frame that did not fit: grows this track's overflow item at the end of the queue (the last, or the one
    /// before it when the other track's is last: two interleaved tracks overflow together), or starts one.
    /// </summary>
    private void AddOverflow(long seq, long? chunk, CallTrack track)
    {
        for (var back = 1; back <= Math.Min(2, _unsent.Count); back++)
        {
            if (_unsent[^back].Item is not { Kind: CallItemKind.Overflow } open)
            {
                break;
            }

            if (open.Track != track)
            {
                continue;
            }

            if (seq - open.ToSeq > SequenceRules.MaxJump)
            {
                // An absurd number (CONTRACT §5) must not stretch the gap over numbers that never came: malformed.
                _metrics.Malformed.Add(1);
                return;
            }

            // A track's chunks are kept only while every frame of the range had one.
            var toChunk = open.ToChunk is { } last && chunk is { } c ? Math.Max(last, c) : (long?)null;
            _unsent[^back] = _unsent[^back] with
            {
                Item = open with { ToSeq = Math.Max(open.ToSeq, seq), Count = open.Count + 1, Chunk = toChunk is null ? null : open.Chunk, ToChunk = toChunk },
            };
            return;
        }

        var item = new CallItem(++_nextIndex, CallItemKind.Overflow, seq, chunk, 0, null, null, null, null, ToSeq: seq, Count: 1, Track: track, ToChunk: chunk);
        _unsent.Add(new Queued(item, Stopwatch.GetTimestamp()));
    }

    private void AddBytes(long bytes)
    {
        if (bytes != 0)
        {
            Interlocked.Add(ref _bytes, bytes);
            GatewayBuffers.Add(bytes);
        }
    }

    private static long CountFrames(List<Queued> items)
    {
        long frames = 0;
        foreach (var q in items)
        {
            frames += q.Item.Kind switch
            {
                CallItemKind.Media or CallItemKind.Malformed => 1,
                CallItemKind.Overflow => q.Item.Count,
                _ => 0,
            };
        }

        return frames;
    }

    private void Wake()
    {
        if (_wake.CurrentCount == 0)
        {
            try
            {
                _wake.Release();
            }
            catch (ObjectDisposedException)
            {
                // The call is over.
            }
        }
    }

    private async Task PumpAsync()
    {
        // The loop runs without a current activity, so a per-frame Append carries no trace context. Only the Start and
        // Stop calls run inside a span of their own (child of the call's span), which Orleans' activity propagation
        // carries to the grain.
        Activity.Current = null;
        var token = _stop.Token;
        try
        {
            while (!token.IsCancellationRequested)
            {
                if (!_presented)
                {
                    if (await LifecycleCallAsync("ingest.grain.start", nameof(ICallStreamGrain.Start), () => _grain.Start(_start), token) is not { } started)
                    {
                        continue;
                    }

                    if (started.Status is CallAckStatus.Ended or CallAckStatus.Conflict)
                    {
                        Refused(started.Status);
                        return;
                    }

                    if (started.Status is CallAckStatus.Ok or CallAckStatus.Buffering)
                    {
                        _presented = true;
                        WasAccepted = true;
                        RequeueUnsettled();
                    }
                    else
                    {
                        await BackOffAsync(null, token);
                    }

                    continue;
                }

                if (TakeBatch() is { IsDefaultOrEmpty: false } batch)
                {
                    if (await CallAsync(() => _grain.Append(_start.ConnectionId, batch), token) is { } ack && !await HandleAsync(ack, token))
                    {
                        return;
                    }

                    continue;
                }

                CallStop? stop;
                lock (_gate)
                {
                    stop = _unsent.Count == 0 ? _stopRequest : null;
                }

                if (stop is not null)
                {
                    if (await LifecycleCallAsync("ingest.grain.stop", nameof(ICallStreamGrain.Stop), () => _grain.Stop(stop), token) is not { } stopped)
                    {
                        continue;
                    }

                    if (stopped.Status is CallAckStatus.NotStarted or CallAckStatus.Busy)
                    {
                        await HandleAsync(stopped, token);
                        continue;
                    }

                    Settle(stopped);
                    if (stopped.Status is CallAckStatus.Conflict)
                    {
                        Refused(stopped.Status);
                        return;
                    }

                    _completed.TrySetResult(stopped.Status);
                    return;
                }

                await _wake.WaitAsync(token);
                if (HeartbeatDue())
                {
                    // A quiet call still tells its grain it is alive (and learns what Redis now holds), so the grain can
                    // tell a quiet call from one whose gateway died.
                    if (await CallAsync(() => _grain.Append(_start.ConnectionId, []), token) is { } heartbeat && !await HandleAsync(heartbeat, token))
                    {
                        return;
                    }
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // Disposed: the session is over.
        }
    }

    /// <summary>Applies an ack; false when the call cannot go on (ended, or owned by another connection).</summary>
    private async ValueTask<bool> HandleAsync(CallAck ack, CancellationToken token)
    {
        Settle(ack);
        switch (ack.Status)
        {
            case CallAckStatus.Ended:
            case CallAckStatus.Conflict:
                Refused(ack.Status);
                return false;
            case CallAckStatus.NotStarted:
                // A fresh activation (failover) or a moved cursor: present the call again, then resend.
                _presented = false;
                RequeueUnsettled();
                return true;
            case CallAckStatus.Busy:
                // Pushback from a slow Redis: keep everything, pause, send again. Not a lost silo.
                RequeueUnsettled();
                _metrics.Pushback.Add(1);
                await Task.Delay(_backoff, token);
                _backoff = TimeSpan.FromTicks(Math.Min(_backoff.Ticks * 2, MaxBackoff.Ticks));
                return true;
            default:
                return true;
        }
    }

    private void Refused(CallAckStatus status)
    {
        long frames;
        lock (_gate)
        {
            frames = CountFrames(_unsent) + CountFrames(_unsettled);
        }

        if (frames > 0)
        {
            // Ended: the grain recorded what reached it after the stop as an after_stop gap. Conflict: these frames are
            // not this stream's (another connection owns it), so they are counted here, not written there.
            _metrics.Dropped.Add(frames, new KeyValuePair<string, object?>("reason", status == CallAckStatus.Conflict ? "not_owner" : "call_ended"));
        }

        LogCallRefused(_start.StreamId, status, frames);
        _completed.TrySetResult(status);
    }

    private ImmutableArray<CallItem> TakeBatch()
    {
        lock (_gate)
        {
            if (_unsent.Count == 0)
            {
                return default;
            }

            var count = Math.Min(MaxBatch, _unsent.Count);
            var builder = ImmutableArray.CreateBuilder<CallItem>(count);
            for (var i = 0; i < count; i++)
            {
                builder.Add(_unsent[i].Item);
            }

            _unsettled.AddRange(_unsent.GetRange(0, count));
            _unsent.RemoveRange(0, count);
            SignalRoom();
            return builder.MoveToImmutable();
        }
    }

    private void SignalRoom()
    {
        if (_space is not null && _unsent.Count < _limits.MaxUnsentFrames && _bytes < _limits.MaxCallBufferBytes)
        {
            _space.TrySetResult();
            _space = null;
        }
    }

    /// <summary>Counts what the grain reports and forgets what it settled.</summary>
    private void Settle(CallAck ack)
    {
        if (ack.Published > 0)
        {
            _metrics.FramesPublished.Add(ack.Published);
            Interlocked.Add(ref _published, ack.Published);
        }

        if (ack.Duplicates > 0)
        {
            _metrics.Duplicates.Add(ack.Duplicates);
        }

        if (ack.GapsRecorded > 0)
        {
            _metrics.Gaps.Add(ack.GapsRecorded);
            _metrics.MissingFrames.Add(ack.MissingFrames);
        }

        if (ack.Overflowed > 0)
        {
            _metrics.Overflowed.Add(ack.Overflowed);
        }

        if (ack.Malformed > 0)
        {
            _metrics.Malformed.Add(ack.Malformed);
        }

        if (ack.Status is CallAckStatus.Ok or CallAckStatus.Buffering)
        {
            ResetBackoff();
        }

        var now = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            var settled = 0;
            long bytes = 0;
            while (settled < _unsettled.Count && _unsettled[settled].Item.Index <= ack.SettledIndex)
            {
                var item = _unsettled[settled].Item;
                if (item.Kind == CallItemKind.Media)
                {
                    _metrics.PublishLatency.Record(Stopwatch.GetElapsedTime(_unsettled[settled].ReceivedTicks, now).TotalSeconds);
                }

                bytes += item.Bytes;
                settled++;
            }

            _unsettled.RemoveRange(0, settled);

            // While Redis is away the grain holds what it accepted; the copy kept here for resend after a silo loss is
            // bounded in items and in bytes. Beyond it the oldest are held only by the grain.
            if (ack.Status == CallAckStatus.Buffering)
            {
                var release = 0;
                while (release < _unsettled.Count
                    && (_unsettled.Count - release > _limits.MaxQueuedFrames || _bytes - bytes > _limits.MaxCallBufferBytes / 2))
                {
                    bytes += _unsettled[release].Item.Bytes;
                    release++;
                }

                if (release > 0)
                {
                    _unsettled.RemoveRange(0, release);
                    if (!_released)
                    {
                        _released = true;
                        LogReleasedUnsettled(_start.StreamId, _limits.MaxQueuedFrames);
                    }
                }
            }

            AddBytes(-bytes);
            SignalRoom();
        }
    }

    /// <summary>Nothing was said to the grain for a heartbeat interval and nothing waits to be sent.</summary>
    private bool HeartbeatDue()
    {
        if (Environment.TickCount64 - Volatile.Read(ref _lastGrainCallMs) < (long)HeartbeatInterval.TotalMilliseconds)
        {
            return false;
        }

        lock (_gate)
        {
            return _unsent.Count == 0 && _stopRequest is null;
        }
    }

    /// <summary>
    /// One grain call; null when it failed (after a backoff), and then the call is presented again. Bounded by
    /// <see cref="CallGrainTimeout"/> through Orleans itself (<c>[ResponseTimeout]</c> on <see cref="ICallStreamGrain"/>'s
    /// methods), not a timer of ours per call.
    /// </summary>
    private async Task<CallAck?> CallAsync(Func<ValueTask<CallAck>> call, CancellationToken token)
    {
        Volatile.Write(ref _lastGrainCallMs, Environment.TickCount64);
        try
        {
            var pending = call();
            return pending.IsCompletedSuccessfully ? pending.Result : await pending.AsTask().WaitAsync(token);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !token.IsCancellationRequested)
        {
            _presented = false;
            RequeueUnsettled();
            await BackOffAsync(ex, token);
            return null;
        }
    }

    private async Task BackOffAsync(Exception? ex, CancellationToken token)
    {
        _failures++;
        _metrics.Resends.Add(1);
        // A first failure is routine (a silo left or crashed; the call is presented again and lands on another): one
        // Information line, counted in ingest.forward.retries. A call that keeps failing warns every 20 attempts.
        if (ex is not null && _failures == 1)
        {
            LogGrainCallFailed(_start.StreamId, ex);
        }
        else if (ex is not null && _failures % 20 == 0)
        {
            LogGrainCallStillFailing(_start.StreamId, _failures, ex);
        }

        await Task.Delay(_backoff, token);
        _backoff = TimeSpan.FromTicks(Math.Min(_backoff.Ticks * 2, MaxBackoff.Ticks));
    }

    private void ResetBackoff()
    {
        _failures = 0;
        _backoff = InitialBackoff;
    }

    private void RequeueUnsettled()
    {
        lock (_gate)
        {
            if (_unsettled.Count == 0)
            {
                return;
            }

            _unsent.InsertRange(0, _unsettled);
            _unsettled.Clear();
        }
    }

    [LoggerMessage(EventId = 6201, Level = LogLevel.Information, Message = "Grain call for stream {StreamId} failed; presenting the call again and resending unsettled frames")]
    private partial void LogGrainCallFailed(string streamId, Exception exception);

    [LoggerMessage(EventId = 6209, Level = LogLevel.Warning, Message = "Grain calls for stream {StreamId} still fail after {Attempt} attempts; its frames wait in the gateway")]
    private partial void LogGrainCallStillFailing(string streamId, int attempt, Exception exception);

    [LoggerMessage(EventId = 6202, Level = LogLevel.Warning, Message = "Stream {StreamId} refused by its grain: {Status}; {Frames} frame(s) not delivered")]
    private partial void LogCallRefused(string streamId, CallAckStatus status, long frames);

    [LoggerMessage(EventId = 6203, Level = LogLevel.Warning, Message = "Stream {StreamId}: more than {Limit} items await Redis; the oldest are now held only by the grain")]
    private partial void LogReleasedUnsettled(string streamId, int limit);

    [LoggerMessage(EventId = 6204, Level = LogLevel.Error, Message = "Stream {StreamId}: buffer full ({Limit} bytes) while the cluster does not take frames; from sequence {Seq} frames are dropped, counted and recorded as a buffer_overflow gap")]
    private partial void LogOverflowStarted(string streamId, long seq, long limit);

    [LoggerMessage(EventId = 6205, Level = LogLevel.Error, Message = "Stream {StreamId}: gave up delivering {Frames} frame(s) ({Why}); counted in ingest_frames_dropped_total{{reason=\"undeliverable\"}}")]
    private partial void LogAbandoned(string streamId, long frames, string why);
}

/// <summary>Audio bytes all calls of this gateway hold (the gateway-wide byte budget, CONTRACT §7).</summary>
internal static class GatewayBuffers
{
    private static long _bytes;

    public static long Bytes => Interlocked.Read(ref _bytes);

    public static void Add(long bytes) => Interlocked.Add(ref _bytes, bytes);
}
