using System.Collections.Immutable;
using System.Diagnostics;
using Ingest.Grains.Interfaces;

namespace Ingest.Gateway.Ingest;

/// <summary>
/// Carries one call's items from its socket to its grain, in order, with at most one grain call in flight.
/// Every item stays here until the grain says it is settled (in Redis, or dropped for a counted reason). When a grain
/// call fails (silo lost, timeout) the forwarder presents the call again and resends what is unsettled, in order; the
/// grain recognises what Redis already has, so nothing is written twice. While one call is in flight the next items
/// queue up and go as one batch.
/// </summary>
public sealed partial class CallForwarder : IAsyncDisposable
{
    private const int MaxBatch = 128;
    /// <summary>How often a call with nothing to send calls its grain anyway; well below the grains' INGEST_ORPHAN_SECONDS.</summary>
    internal static readonly TimeSpan HeartbeatInterval = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan InitialBackoff = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long one grain call may take before the forwarder gives up on it and presents the call again. The Orleans
    /// client fails a request to a silo that died (kill -9, power loss) only at its 30 s response timeout; a call
    /// normally answers in milliseconds, so waiting that long would stall the call for half a minute. An abandoned
    /// request that still arrives later is harmless: the grain drops items at or below the index it already has.
    /// </summary>
    internal static readonly TimeSpan GrainCallTimeout = TimeSpan.FromSeconds(3);

    private readonly ICallStreamGrain _grain;
    private readonly CallStart _start;
    private readonly GatewayLimits _limits;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly List<Queued> _unsent = [];
    private readonly List<Queued> _unsettled = [];
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource<CallAckStatus> _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private TaskCompletionSource? _space;
    private CallStop? _stopRequest;
    private long _nextIndex;
    private Task? _pump;
    private bool _released;
    private int _failures;
    private TimeSpan _backoff = InitialBackoff;

    public CallForwarder(ICallStreamGrain grain, CallStart start, GatewayLimits limits, ILogger logger)
    {
        _grain = grain;
        _start = start;
        _limits = limits;
        _logger = logger;
    }

    private readonly record struct Queued(CallItem Item, long ReceivedTicks);

    /// <summary>Presents the call to its grain (retrying through failures) and starts forwarding.</summary>
    public async Task<CallAckStatus> StartAsync(CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stop.Token);
        while (true)
        {
            try
            {
                var ack = await WithTimeout(_grain.Start(_start), linked.Token);
                ResetBackoff();
                if (ack.Status is CallAckStatus.Ok or CallAckStatus.Buffering)
                {
                    _pump = Task.Run(PumpAsync, CancellationToken.None);
                }

                return ack.Status;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !linked.IsCancellationRequested)
            {
                await BackOffAsync(ex, linked.Token);
            }
        }
    }

    /// <summary>Completes when the call is over for the cluster: stopped, or refused mid-call (Ended, Conflict).</summary>
    public Task<CallAckStatus> Completion => _completed.Task;

    /// <summary>Queues one item. Completes at once unless this call already holds too much unsent (then: backpressure).</summary>
    public ValueTask EnqueueAsync(CallItemKind kind, long seq, long? chunk, long timestampMs, byte[]? audio, string? digit = null, long? durationMs = null, string? markName = null)
    {
        Task? wait = null;
        lock (_gate)
        {
            var item = new CallItem(++_nextIndex, kind, seq, chunk, timestampMs, audio, digit, durationMs, markName);
            _unsent.Add(new Queued(item, Stopwatch.GetTimestamp()));
            if (_unsent.Count >= _limits.MaxUnsentItems)
            {
                _space ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _space.Task;
            }
        }

        Wake();
        return wait is null ? ValueTask.CompletedTask : new ValueTask(wait.WaitAsync(_stop.Token));
    }

    /// <summary>
    /// Ends the call: everything queued goes first, then the stop. Completes when the grain has accepted the stop
    /// (written, or buffered while Redis is away), or when <paramref name="timeout"/> runs out.
    /// </summary>
    public async Task<CallAckStatus> CompleteAsync(string reason, long? seq, string connectionId, TimeSpan timeout)
    {
        lock (_gate)
        {
            _stopRequest ??= new CallStop(reason, seq, connectionId);
        }

        Wake();
        if (_pump is null)
        {
            return CallAckStatus.NotStarted;
        }

        try
        {
            return await _completed.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            int held;
            lock (_gate)
            {
                held = _unsent.Count + _unsettled.Count;
            }

            LogCompleteTimedOut(_start.StreamId, held, timeout.TotalSeconds);
            return CallAckStatus.Buffering;
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

        _stop.Dispose();
        _wake.Dispose();
    }

    private void Wake()
    {
        if (_wake.CurrentCount == 0)
        {
            _wake.Release();
        }
    }

    private async Task PumpAsync()
    {
        var token = _stop.Token;
        while (!token.IsCancellationRequested)
        {
            if (!await _wake.WaitAsync(HeartbeatInterval, token))
            {
                // A quiet call still tells its grain it is alive (and learns what Redis now holds), so the grain can
                // tell a quiet call from one whose gateway died.
                if (await TryCallAsync(() => _grain.Append([]), token) is { } heartbeat && !Settle(heartbeat))
                {
                    return;
                }

                continue;
            }

            while (TakeBatch() is { IsDefaultOrEmpty: false } batch)
            {
                // null: the grain call failed and the unsettled items are back in the queue; take them again.
                if (await TryCallAsync(() => _grain.Append(batch), token) is { } ack && !Settle(ack))
                {
                    return;
                }
            }

            CallStop? stop;
            lock (_gate)
            {
                stop = _unsent.Count == 0 ? _stopRequest : null;
            }

            if (stop is not null)
            {
                if (await TryCallAsync(() => _grain.Stop(stop), token) is { } ack)
                {
                    Settle(ack);
                    _completed.TrySetResult(ack.Status);
                    return;
                }

                Wake();
            }
        }
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
            if (_space is not null && _unsent.Count < _limits.MaxUnsentItems / 2)
            {
                _space.TrySetResult();
                _space = null;
            }

            return builder.MoveToImmutable();
        }
    }

    /// <summary>Applies an ack; false when the call cannot go on (ended, or taken by another connection).</summary>
    private bool Settle(CallAck ack)
    {
        if (ack.Published > 0)
        {
            GatewayMetrics.FramesPublished.Add(ack.Published);
        }

        if (ack.Duplicates > 0)
        {
            GatewayMetrics.Duplicates.Add(ack.Duplicates);
        }

        if (ack.GapsRecorded > 0)
        {
            GatewayMetrics.Gaps.Add(ack.GapsRecorded);
            GatewayMetrics.MissingFrames.Add(ack.MissingFrames);
        }

        if (ack.Overflowed > 0)
        {
            GatewayMetrics.Overflowed.Add(ack.Overflowed);
        }

        var now = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            var settled = 0;
            while (settled < _unsettled.Count && _unsettled[settled].Item.Index <= ack.SettledIndex)
            {
                if (_unsettled[settled].Item.Kind == CallItemKind.Media)
                {
                    GatewayMetrics.PublishLatency.Record(Stopwatch.GetElapsedTime(_unsettled[settled].ReceivedTicks, now).TotalMilliseconds);
                }

                settled++;
            }

            _unsettled.RemoveRange(0, settled);

            // While Redis is away the grain holds what it accepted; keep a bounded copy for resend after a silo loss.
            var excess = _unsettled.Count - _limits.MaxQueuedItems;
            if (excess > 0)
            {
                _unsettled.RemoveRange(0, excess);
                if (!_released)
                {
                    _released = true;
                    LogReleasedUnsettled(_start.StreamId, _limits.MaxQueuedItems);
                }
            }
        }

        switch (ack.Status)
        {
            case CallAckStatus.Ended:
            case CallAckStatus.Conflict:
                LogCallRefused(_start.StreamId, ack.Status);
                _completed.TrySetResult(ack.Status);
                return false;
            default:
                return true;
        }
    }

    /// <summary>
    /// One grain call. When it fails (silo lost, timeout) or a fresh activation answers NotStarted, the call is
    /// presented again and everything unsettled goes back in front of the queue, so order is kept and the caller
    /// gets null to rebuild its request. Returns a terminal ack when the grain refuses the call.
    /// </summary>
    private async Task<CallAck?> TryCallAsync(Func<ValueTask<CallAck>> call, CancellationToken token)
    {
        try
        {
            var ack = await WithTimeout(call(), token);
            if (ack.Status != CallAckStatus.NotStarted)
            {
                ResetBackoff();
                return ack;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !token.IsCancellationRequested)
        {
            await BackOffAsync(ex, token);
        }

        try
        {
            var restart = await WithTimeout(_grain.Start(_start), token);
            if (restart.Status is CallAckStatus.Ended or CallAckStatus.Conflict)
            {
                return restart;
            }

            RequeueUnsettled();
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !token.IsCancellationRequested)
        {
            await BackOffAsync(ex, token);
            RequeueUnsettled();
        }

        return null;
    }

    private static Task<CallAck> WithTimeout(ValueTask<CallAck> call, CancellationToken token) =>
        call.IsCompletedSuccessfully ? Task.FromResult(call.Result) : call.AsTask().WaitAsync(GrainCallTimeout, token);

    private async Task BackOffAsync(Exception ex, CancellationToken token)
    {
        _failures++;
        GatewayMetrics.Resends.Add(1);
        if (_failures == 1 || _failures % 20 == 0)
        {
            LogGrainCallFailed(_start.StreamId, _failures, ex.GetType().Name, ex.Message);
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Grain call for stream {StreamId} failed (attempt {Attempt}, {ErrorType}: {Error}); presenting the call again and resending unsettled frames")]
    private partial void LogGrainCallFailed(string streamId, int attempt, string errorType, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stream {StreamId} refused by its grain: {Status}")]
    private partial void LogCallRefused(string streamId, CallAckStatus status);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stream {StreamId}: more than {Limit} items await Redis; the oldest are now held only by the grain")]
    private partial void LogReleasedUnsettled(string streamId, int limit);

    [LoggerMessage(Level = LogLevel.Error, Message = "Stream {StreamId}: stop not confirmed after {Seconds} s; {Held} item(s) still held")]
    private partial void LogCompleteTimedOut(string streamId, int held, double seconds);
}
