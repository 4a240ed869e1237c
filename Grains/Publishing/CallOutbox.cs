using Microsoft.Extensions.Logging;

namespace Ingest.Grains.Publishing;

/// <summary>Why a flush stopped: all written, Redis away (entries held), or another activation wrote.</summary>
public enum FlushOutcome
{
    Done,
    Held,
    Conflict,
}

/// <summary>
/// Everything between "the grain accepted this entry" and "Redis has it, and <c>ingest:calls</c> has its lifecycle
/// copy": the pending entries and their budgets (every entry counts, in number and in bytes, against the call's and the
/// silo's), open-gap coalescing, the expiry of the call's keys, the settling of a write that may have landed, and the
/// copy with its retry (<see cref="LifecycleCopy"/>). A plain class: the grain drives it from its calls and timers.
/// </summary>
public sealed partial class CallOutbox
{
    // How often a live call tells the open-lifecycle set it is still looked after (LifecycleSweeper takes the rest).
    internal static readonly TimeSpan LifecycleTouchInterval = TimeSpan.FromSeconds(30);

    private readonly CallStreamWriter _writer;
    private readonly IngestOptions _options;
    private readonly SiloBuffers _silo;
    private readonly GrainMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly LifecycleCopy _copy;
    private readonly List<PendingEntry> _pending = [];

    private CallCursor _written = CallCursor.Empty;

    // A cursor to write although no entry leads to it (a new activation's lifecycle floor).
    private CallCursor? _dirty;
    private PendingEntry? _openGap;
    private long _pendingBytes;

    // A write failed after it may have been sent (a timeout): before writing again the cursor is read and what landed settled.
    private bool _uncertain;
    private bool _redisDown;
    private long _nextRetry;
    private long _lastExpiry = -1;
    private bool _audioExpirySet;
    private bool _loadedStopped;
    private int _published;

    internal CallOutbox(CallStreamWriter writer, SiloBuffers silo, GrainMetrics metrics, ILogger logger)
    {
        _writer = writer;
        _options = writer.Options;
        _silo = silo;
        _metrics = metrics;
        _logger = logger;
        _time = writer.Time;
        _copy = new LifecycleCopy(writer, metrics, logger);
    }

    /// <summary>What Redis holds of the call.</summary>
    public CallCursor Written => _written;

    public int Count => _pending.Count;

    /// <summary>Redis did not take the last write: entries wait and are retried on the timer.</summary>
    public bool RedisDown => _redisDown;

    public bool IsConnected => _writer.IsConnected;

    public bool CopyDue => _copy.Due;

    /// <summary>Nothing to write and nothing to copy: the retry timer may go.</summary>
    public bool Idle => _pending.Count == 0 && _dirty is null && !_copy.Due;

    /// <summary>
    /// A stopped call whose copy has been failing this long, and which the lifecycle sweeper can find, may be parked
    /// (<see cref="ParkAsync"/>) and deactivate; one the sweeper could not find keeps retrying.
    /// </summary>
    public bool MayPark(TimeSpan patience) => _written.Stopped && _pending.Count == 0 && _copy.Due && _copy.Registered && _copy.FailingFor >= patience;

    /// <summary>The gateway index up to which everything is settled, given the last index the grain took.</summary>
    public long SettledIndex(long lastIndex) => _pending.Count == 0 ? lastIndex : _pending[0].Index - 1;

    /// <summary>Frames written since the last call; the grain reports them in its ack.</summary>
    public int TakePublished()
    {
        var published = _published;
        _published = 0;
        return published;
    }

    /// <summary>
    /// For a new activation: what Redis holds, and the number above which the call's next lifecycle entries go (the
    /// largest of the cursor's, the copied number and the copy floor: a failover of the call's slot can lose a write
    /// whose entries were already copied, and numbering on from the cursor would then skip new ones as copied).
    /// </summary>
    public async Task<(CallCursor Cursor, long LifecycleFloor)> LoadAsync()
    {
        Release();
        var loaded = await _writer.LoadAsync().WaitAsync(_options.WriteTimeout, _time);
        _copy.Restore(loaded);
        _written = loaded.Cursor;
        _uncertain = false;
        _redisDown = false;
        _audioExpirySet = false;
        _loadedStopped = loaded.Cursor.Stopped;
        _lastExpiry = -1;
        return (loaded.Cursor, Math.Max(loaded.Cursor.Lifecycle, Math.Max(loaded.Copied ?? 0, loaded.Floor.Number)));
    }

    /// <summary>Room for an entry holding <paramref name="bytes"/>: the call's count and bytes, and the silo's bytes.</summary>
    public bool Fits(int bytes) =>
        _pending.Count < _options.BufferLimit
        && (_pendingBytes == 0 || _pendingBytes + bytes <= _options.BufferBytes)
        && _silo.Bytes + bytes <= _options.SiloBufferBytes;

    /// <summary>Adds an entry to write; <paramref name="after"/> is the cursor once it is in Redis.</summary>
    public void Add(CallEntry entry, CallCursor after, long index, bool joinNext = false, bool openGap = false)
    {
        var bytes = EntryFields.HeldBytes(entry);
        var pending = new PendingEntry(entry, after, index, bytes) { JoinNext = joinNext };
        _pending.Add(pending);
        _openGap = openGap ? pending : _openGap;
        _pendingBytes += bytes;
        _silo.Add(bytes);
        _metrics.Buffered.Add(1);
        _dirty = null;
    }

    /// <summary>Grows the last pending entry, an open gap <paramref name="next"/> continues (only the last: cursors stay in order).</summary>
    public bool TryExtendGap(GapEntry next, CallCursor after, long index)
    {
        if (_openGap is not { Entry: GapEntry open } gap || !open.ContinuedBy(next)
            || _pending.Count == 0 || !ReferenceEquals(_pending[^1], gap))
        {
            return false;
        }

        gap.Entry = open.Join(next);
        gap.CursorAfter = after;
        gap.Index = index;
        return true;
    }

    /// <summary>A cursor to write with no entry (see <see cref="_dirty"/>).</summary>
    public void SetCursor(CallCursor head) => _dirty = _pending.Count == 0 && !head.SameContent(_written) ? head : null;

    /// <summary>
    /// Writes what is pending, in batches, then copies lifecycle entries. While Redis is away, waits for the retry
    /// interval unless <paramref name="force"/>.
    /// </summary>
    public async Task<FlushOutcome> FlushAsync(bool force)
    {
        if (_pending.Count == 0 && _dirty is null)
        {
            await CopyAsync(force: false);
            return FlushOutcome.Done;
        }

        if (_redisDown && !force && _time.GetTimestamp() < _nextRetry)
        {
            return FlushOutcome.Held;
        }

        if (_uncertain && await SettleUncertainWriteAsync() is var settled and not FlushOutcome.Done)
        {
            return settled;
        }

        while (_pending.Count > 0 || _dirty is not null)
        {
            var count = Math.Min(_pending.Count, _options.MaxBatch);
            while (count < _pending.Count && _pending[count - 1].JoinNext)
            {
                // A gap entry goes with the frame that revealed it: a cursor between them would claim the frame.
                count++;
            }

            var after = count > 0 ? _pending[count - 1].CursorAfter : _dirty!;
            var ttl = ExpiryFor(count);
            WriteResult result;
            var started = _time.GetTimestamp();
            try
            {
                if (_written.Version == 0)
                {
                    // The call's first write: it enters the open-lifecycle set before anything of it is in Redis, so a
                    // sweeper finds it even if this silo and its gateway die before the start is copied.
                    await _copy.RunAsync(stopped: false, force: true, LifecycleTouchInterval);
                }

                result = await _writer.WriteAsync(_written, _pending, count, after, ttl).WaitAsync(_options.WriteTimeout, _time);
            }
            catch (Exception ex) when (ex is StoreUnavailableException or TimeoutException)
            {
                HoldUncertain(count, ex);
                return FlushOutcome.Held;
            }

            if (result.Outcome == WriteOutcome.NotReplicated)
            {
                // On the master, not confirmed by its replicas in time: kept, settled once a read is confirmed.
                _metrics.NotReplicated.Add(1);
                HoldUncertain(count, null);
                return FlushOutcome.Held;
            }

            _metrics.WriteLatency.Record(_time.GetElapsedTime(started).TotalSeconds);
            if (result.Outcome == WriteOutcome.Conflict)
            {
                if (await ReconcileAsync(known: null))
                {
                    continue;
                }

                LogCursorMoved(_writer.StreamId);
                Release();
                return FlushOutcome.Conflict;
            }

            if (ttl > 0)
            {
                _lastExpiry = started;
                _audioExpirySet |= HasAudio(count);
            }

            // An appended frame leaves the cursor hash (and its version) as it was; the script moves it one version on.
            _written = after with { Version = _written.Version + (result.Outcome == WriteOutcome.Appended ? 0 : 1) };
            _copy.Written(result.Lifecycle, _written.Lifecycle);
            _dirty = null;
            Settled(count, reconciled: false);
            if (_redisDown)
            {
                _redisDown = false;
                LogRedisRecovered(_writer.StreamId, _pending.Count);
            }
        }

        await CopyAsync(force: false);
        return FlushOutcome.Done;
    }

    /// <summary>The retry timer: writes what waits, or copies; true when nothing is left (the timer may go).</summary>
    public async Task<FlushOutcome> RetryAsync()
    {
        var outcome = _pending.Count > 0 || _dirty is not null ? await FlushAsync(force: true) : FlushOutcome.Done;
        if (outcome == FlushOutcome.Done && _copy.Due && !_copy.Waiting)
        {
            await CopyAsync(force: true);
        }

        return outcome;
    }

    /// <summary>A heartbeat of a quiet live call: its keys must not expire while it is live, quiet stretches included.</summary>
    public async Task HeartbeatAsync()
    {
        if (_pending.Count > 0 || _dirty is not null)
        {
            await FlushAsync(force: false);
            return;
        }

        if (_written.Version > 0 && !_written.Stopped && (_lastExpiry < 0 || _time.GetElapsedTime(_lastExpiry) >= _options.ExpiryRefreshInterval)
            && await TryAsync(_writer.RefreshExpiryAsync(_options.LiveExpiry)))
        {
            _lastExpiry = _time.GetTimestamp();
        }

        await CopyAsync(force: false);
    }

    /// <summary>Copies lifecycle entries that wait (and touches a live call in the open set). True when none is left.</summary>
    public async Task<bool> CopyAsync(bool force)
    {
        if (_written.Version == 0)
        {
            return !_copy.Due;
        }

        var done = await _copy.RunAsync(_written.Stopped, force, LifecycleTouchInterval);
        if (done && _written.Stopped && _loadedStopped)
        {
            // A call finished by a later activation (the sweeper's): its keys were kept while the copy waited.
            _loadedStopped = false;
            await TryAsync(_writer.RefreshExpiryAsync(_options.StreamTtl));
        }

        return done;
    }

    /// <summary>A stopped call whose copy waits is about to deactivate: its keys are kept for the sweeper to finish it.</summary>
    public async Task ParkAsync()
    {
        if (await TryAsync(_writer.ParkAsync(_options.ParkedRetention)))
        {
            LogParked(_writer.StreamId, _options.ParkedRetention.TotalHours);
        }
    }

    /// <summary>Drops every pending entry (the gateway still holds them unsettled and resends).</summary>
    public void Release()
    {
        RemovePending(_pending.Count);
        _dirty = null;
    }

    /// <summary>Nothing of the call is in Redis any more: takes it off the open set.</summary>
    public Task ForgetAsync() => TryAsync(_writer.ForgetAsync());

    /// <summary>A command besides the write path, bounded by the write timeout; a failure is counted, not thrown.</summary>
    private async Task<bool> TryAsync(Task command)
    {
        try
        {
            await command.WaitAsync(_options.WriteTimeout, _time);
            return true;
        }
        catch (Exception ex) when (ex is StoreUnavailableException or TimeoutException)
        {
            _metrics.RedisFailures.Add(1);
            return false;
        }
    }

    /// <summary>
    /// The expiry (seconds) this batch sets on the call's keys, or 0 to leave it: at the stop the retention time; while
    /// live the retention plus the refresh interval, pushed at most once per interval, so a live call never expires.
    /// </summary>
    private long ExpiryFor(int count)
    {
        var stops = false;
        var due = _written.Version == 0 || _lastExpiry < 0 || _time.GetElapsedTime(_lastExpiry) >= _options.ExpiryRefreshInterval;
        for (var i = 0; i < count; i++)
        {
            due |= _pending[i].Audio && !_audioExpirySet;
            stops |= _pending[i].CursorAfter.Stopped && !_written.Stopped;
        }

        return stops ? (long)_options.StreamTtl.TotalSeconds : due ? (long)_options.LiveExpiry.TotalSeconds : 0;
    }

    /// <summary>
    /// A write that may have been sent did not come back (or was not confirmed by the replicas): its entries may still
    /// land. They are frozen (an open gap stops growing), and Redis counts as away until a read settles it.
    /// </summary>
    private void HoldUncertain(int count, Exception? ex)
    {
        _metrics.RedisFailures.Add(1);
        if (!_redisDown)
        {
            LogRedisUnavailable(_writer.StreamId, _pending.Count, ex);
        }

        if (_openGap is not null && _pending.IndexOf(_openGap) is var open && open >= 0 && open < count)
        {
            _openGap = null;
        }

        _uncertain = true;
        _redisDown = true;
        _nextRetry = _time.GetTimestamp() + (long)(_options.RetryInterval.TotalSeconds * _time.TimestampFrequency);
    }

    /// <summary>After a write that may have been sent failed: reads the cursor (its version and, as bare appends leave the version, its frames).</summary>
    private async Task<FlushOutcome> SettleUncertainWriteAsync()
    {
        CallCursor current;
        try
        {
            current = await _writer.ReadCursorAsync(confirmReplicated: true).WaitAsync(_options.WriteTimeout, _time);
        }
        catch (Exception ex) when (ex is StoreUnavailableException or TimeoutException)
        {
            _metrics.RedisFailures.Add(1);
            _redisDown = true;
            _nextRetry = _time.GetTimestamp() + (long)(_options.RetryInterval.TotalSeconds * _time.TimestampFrequency);
            return FlushOutcome.Held;
        }

        _uncertain = false;
        if ((current.Version == _written.Version && current.Frames == _written.Frames) || await ReconcileAsync(current))
        {
            return FlushOutcome.Done;
        }

        LogCursorMoved(_writer.StreamId);
        Release();
        return FlushOutcome.Conflict;
    }

    /// <summary>
    /// The fence refused a write. When the cursor in Redis is one this outbox itself produced (an earlier attempt that
    /// timed out here but landed later), the entries up to it are in Redis: settled, and the rest is written on. False
    /// when another activation wrote, or Redis could not be read.
    /// </summary>
    private async Task<bool> ReconcileAsync(CallCursor? known)
    {
        CallCursor current;
        try
        {
            current = known ?? await _writer.ReadCursorAsync(confirmReplicated: true).WaitAsync(_options.WriteTimeout, _time);
        }
        catch (Exception ex) when (ex is StoreUnavailableException or TimeoutException)
        {
            return false;
        }

        var found = _pending.FindIndex(p => p.CursorAfter.SameContent(current));
        if (found < 0)
        {
            if (_dirty is not null && _dirty.SameContent(current))
            {
                _written = current;
                _dirty = null;
                return true;
            }

            return false;
        }

        LogReconciled(_writer.StreamId, found + 1);
        _written = current;

        // Their lifecycle entries landed unseen: the copy reads them from the call's keys.
        _copy.Written(null, _written.Lifecycle);
        Settled(found + 1, reconciled: true);
        return true;
    }

    private void Settled(int count, bool reconciled)
    {
        var audio = 0;
        var debug = !reconciled && _logger.IsEnabled(LogLevel.Debug);
        for (var i = 0; i < count; i++)
        {
            if (_pending[i].Audio)
            {
                audio++;
                if (debug)
                {
                    LogPublishedFrame(_writer.StreamId, ((AudioEntry)_pending[i].Entry).Seq);
                }
            }
        }

        RemovePending(count);
        _metrics.FramesPublished.Add(audio);
        _published += audio;
    }

    private bool HasAudio(int count)
    {
        for (var i = 0; i < count; i++)
        {
            if (_pending[i].Audio)
            {
                return true;
            }
        }

        return false;
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
        _silo.Add(-bytes);
        _metrics.Buffered.Add(-count);
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Debug, Message = "Published audio frame: {{ stream_sid: {StreamSid}, seq: {Seq} }}")]
    private partial void LogPublishedFrame(string streamSid, long seq);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Warning, Message = "Redis unavailable for stream {StreamId}; holding {Pending} entr(ies) and retrying")]
    private partial void LogRedisUnavailable(string streamId, int pending, Exception? exception);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Information, Message = "Redis back for stream {StreamId}; buffer flushed ({Pending} left)")]
    private partial void LogRedisRecovered(string streamId, int pending);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Information, Message = "Stream {StreamId}: an earlier write that timed out had landed; {Settled} entr(ies) settled, writing on")]
    private partial void LogReconciled(string streamId, int settled);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Warning, Message = "Cursor of stream {StreamId} moved under this activation; reloading it, the gateway presents the call again and resends")]
    private partial void LogCursorMoved(string streamId);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Warning, Message = "Stream {StreamId} stopped with its lifecycle copy waiting; its keys are kept {Hours:F0} h for the lifecycle sweeper to finish it")]
    private partial void LogParked(string streamId, double hours);
}
