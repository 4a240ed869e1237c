using Microsoft.Extensions.Logging;

namespace Ingest.Grains.Publishing;

/// <summary>
/// Step two of a call's write: its lifecycle entries, written numbered (1, 2, ...) to the call's own keys, are copied to
/// <c>ingest:calls</c> each exactly once (the fenced <c>Scripts/copy.lua</c>). The call's own entries are kept for its
/// whole retention, so whatever <c>ingest:calls</c>' slot lost (a failover with <c>WAIT</c> 0, a copied number deleted
/// or evicted) is told apart and re-copied from them; what the call's keys no longer hold is skipped, logged and counted,
/// never waited for. A copy that makes no progress backs off, is counted, and logged once a minute.
/// </summary>
internal sealed partial class LifecycleCopy(CallStreamWriter writer, GrainMetrics metrics, ILogger logger)
{
    private static readonly TimeSpan StallLogInterval = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(5);

    private readonly TimeProvider _time = writer.Time;
    private readonly List<LifecycleRecord> _uncopied = [];

    // The call's copied number as last seen (-1 unknown), and the last copy known done (it survives in the call's keys).
    private long _copied = -1;
    private CopyFloor _floor = CopyFloor.None;

    // The last lifecycle number the call's own keys hold: what is to be copied.
    private long _target;
    private long _goneBelow;

    private long _nextAttempt;
    private TimeSpan _backoff;
    private long _failingSince = -1;
    private long _lastStallLog = -1;
    private long _lastTouch = -1;

    /// <summary>Lifecycle entries wait to be copied.</summary>
    public bool Due => _target > Math.Max(0, _copied);

    /// <summary>A failed attempt is waiting for its backoff to pass.</summary>
    public bool Waiting => _nextAttempt > 0 && _time.GetTimestamp() < _nextAttempt;

    /// <summary>
    /// The call is known to be in the open-lifecycle set (a copy of this activation ran, or a former one's did): the
    /// lifecycle sweeper can find it, so a stopped call whose copy waits may deactivate.
    /// </summary>
    public bool Registered { get; private set; }

    /// <summary>How long attempts have been failing (zero while they succeed).</summary>
    public TimeSpan FailingFor => _failingSince < 0 ? TimeSpan.Zero : _time.GetElapsedTime(_failingSince);

    /// <summary>What a new activation found (<see cref="CallStreamWriter.LoadAsync"/>).</summary>
    public void Restore(LoadedCall loaded)
    {
        _uncopied.Clear();
        _copied = loaded.Copied ?? -1;
        _floor = loaded.Floor;
        _target = loaded.Cursor.Lifecycle;
        Registered = loaded.Floor.Number > 0 || loaded.Copied > 0;
    }

    /// <summary>Entries the batch just wrote to the call's keys.</summary>
    public void Written(List<LifecycleRecord>? written, long lifecycle)
    {
        if (written is not null)
        {
            _uncopied.AddRange(written);
        }

        _target = Math.Max(_target, lifecycle);
    }

    /// <summary>
    /// Copies what is due (and, every <paramref name="touchEvery"/>, touches a live call in the open set). Never throws:
    /// a failure is counted and retried after a backoff. True when nothing is left to copy.
    /// </summary>
    public async Task<bool> RunAsync(bool stopped, bool force, TimeSpan touchEvery)
    {
        var touch = _lastTouch < 0 || _time.GetElapsedTime(_lastTouch) >= touchEvery;
        if (!Due && !touch)
        {
            return true;
        }

        if (!force && Waiting)
        {
            return false;
        }

        try
        {
            for (var attempt = 0; attempt < 4; attempt++)
            {
                var result = await writer.CopyAsync(await EntriesAsync(), _floor, _goneBelow, stopped ? Math.Max(1, _target) : 0)
                    .WaitAsync(writer.Options.WriteTimeout, _time);
                _lastTouch = _time.GetTimestamp();
                Registered = true;
                if (!result.Replicated)
                {
                    // On the master only: the entries are kept, and the fence makes the next attempt append nothing twice.
                    Failed(null);
                    return false;
                }

                Settle(result);
                if (result.LastId.Length > 0)
                {
                    _floor = new CopyFloor(result.Copied, result.LastId);
                    await writer.SaveCopyFloorAsync(_floor).WaitAsync(writer.Options.WriteTimeout, _time);
                }

                if (result.Hole == 0 && !Due)
                {
                    Succeeded();
                    return true;
                }
            }
        }
        catch (Exception ex) when (ex is StoreUnavailableException or TimeoutException)
        {
            Failed(ex);
            return false;
        }

        Failed(null);
        return false;
    }

    private void Settle(CopyResult result)
    {
        if (result.Lost > 0)
        {
            metrics.LifecycleLost.Add(result.Lost);
            LogLifecycleLost(writer.StreamId, result.Lost, result.Copied - result.Lost + 1, result.Copied);
        }

        if (result.Hole > 0 && result.Copied < _copied)
        {
            // The copied number went back (ingest:calls' slot lost its last writes): copy again from there.
            LogLifecycleRecopied(writer.StreamId, result.Copied, _copied);
        }

        _copied = result.Copied;
        _uncopied.RemoveAll(u => u.Number <= _copied);
    }

    /// <summary>The entries from the copied number + 1 on: what this activation wrote, and the rest from the call's keys.</summary>
    private async Task<List<LifecycleRecord>> EntriesAsync()
    {
        var from = Math.Max(0, _copied) + 1;
        var firstHeld = _uncopied.Count > 0 ? _uncopied[0].Number : _target + 1;
        if (from < firstHeld && from <= _target)
        {
            var read = await writer.ReadLifecycleAsync(from, Math.Min(firstHeld - 1, _target)).WaitAsync(writer.Options.WriteTimeout, _time);
            var first = read.Count > 0 ? read[0].Number : firstHeld;
            if (first > from)
            {
                // The call's keys no longer hold these (expired, or that slot failed over): the script skips them, counted.
                _goneBelow = first;
            }

            read.AddRange(_uncopied);
            _uncopied.Clear();
            _uncopied.AddRange(read.DistinctBy(u => u.Number).OrderBy(u => u.Number));
        }

        return _uncopied;
    }

    private void Succeeded()
    {
        _nextAttempt = 0;
        _backoff = TimeSpan.Zero;
        _failingSince = -1;
    }

    private void Failed(Exception? ex)
    {
        metrics.CopyFailures.Add(1);
        var now = _time.GetTimestamp();
        _backoff = _backoff == TimeSpan.Zero ? writer.Options.RetryInterval : TimeSpan.FromTicks(Math.Min(_backoff.Ticks * 2, MaxBackoff.Ticks));
        _nextAttempt = now + (long)(_backoff.TotalSeconds * _time.TimestampFrequency);
        if (_failingSince < 0)
        {
            _failingSince = now;
        }

        if (_lastStallLog < 0 || _time.GetElapsedTime(_lastStallLog) >= StallLogInterval)
        {
            _lastStallLog = now;
            LogCopyStalled(writer.StreamId, Math.Max(0, _copied), _target, _time.GetElapsedTime(_failingSince).TotalSeconds, ex);
        }
    }

    [LoggerMessage(EventId = 2101, Level = LogLevel.Warning, Message = "Stream {StreamId}: its lifecycle entries are not reaching ingest:calls (copied through {Copied} of {Target}, for {Seconds:F0} s); retrying, nothing is lost while the call's keys hold them")]
    private partial void LogCopyStalled(string streamId, long copied, long target, double seconds, Exception? exception);

    [LoggerMessage(EventId = 2102, Level = LogLevel.Error, Message = "Stream {StreamId}: {Count} lifecycle entr(ies) ({From}..{To}) can no longer be copied to ingest:calls (the call's own keys no longer hold them); skipped and counted")]
    private partial void LogLifecycleLost(string streamId, long count, long from, long to);

    [LoggerMessage(EventId = 2103, Level = LogLevel.Warning, Message = "Stream {StreamId}: ingest:calls lost lifecycle entries after {Copied} (a failover?; {Known} had been copied); copying them again from the call's keys")]
    private partial void LogLifecycleRecopied(string streamId, long copied, long known);
}
