using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Ingest.Grains.Interfaces;
using Ingest.Grains.Publishing;
using Ingest.Grains.Sequencing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Ingest.Grains;

/// <summary>
/// One activation per live stream. Items arrive in the order the gateway received them; the grain drops resends,
/// records gaps, and writes to Redis in batches fenced by the call's cursor (see <see cref="RedisStreamPublisher"/>).
/// While Redis is unreachable it holds up to <see cref="IngestOptions.BufferLimit"/> entries and retries on a timer;
/// frames beyond that are counted and become one gap entry when Redis returns.
/// </summary>
public sealed partial class CallStreamGrain(
    RedisStreamPublisher publisher,
    IOptions<IngestOptions> options,
    ILogger<CallStreamGrain> logger) : Grain, ICallStreamGrain
{
    private readonly IngestOptions _options = options.Value;
    private readonly SequenceTracker _tracker = new();
    private readonly List<PendingEntry> _pending = [];

    private string _streamId = string.Empty;
    private bool _loaded;

    // What Redis holds (written) and what it will hold once everything pending is written.
    private CallCursor _written = CallCursor.Empty;
    private CallCursor _head = CallCursor.Empty;

    private long _lastIndex;
    private string? _owner;
    private DateTime _ownerSeenUtc;
    private string? _callSid;
    private bool _redisDown;
    private DateTime _nextRetryUtc;
    private IGrainTimer? _retryTimer;
    private IGrainTimer? _orphanTimer;
    private PendingEntry? _openOverflow;
    private int _publishedSinceAck;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _streamId = this.GetPrimaryKeyString();
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
                GrainMetrics.Buffered.Add(-_pending.Count);
            }
        }
    }

    public async ValueTask<CallAck> Start(CallStart start)
    {
        await EnsureLoadedAsync();
        if (_head.Stopped)
        {
            return Ack(CallAckStatus.Ended);
        }

        var now = DateTime.UtcNow;
        if (_owner is not null && _owner != start.ConnectionId && now - _ownerSeenUtc < _options.OwnerLease)
        {
            LogStreamConflict(_streamId);
            return Ack(CallAckStatus.Conflict);
        }

        _owner = start.ConnectionId;
        _ownerSeenUtc = now;
        _callSid = start.CallSid;

        // For GetStatus (CallStreamGrain.Status.cs).
        _statusProtocol = start.Protocol;
        _statusStartedUtc = _statusStartedUtc == default ? now : _statusStartedUtc;

        if (!_head.Started)
        {
            _tracker.SetBaseline(start.StartSequence);
            _head = _head with { Started = true, Baseline = start.StartSequence };
            Enqueue(audio: false, StartFields(start), _lastIndex);
        }

        _orphanTimer ??= this.RegisterGrainTimer(
            static (grain, _) => grain.OnOrphanCheckAsync(),
            this,
            new GrainTimerCreationOptions(OrphanCheckInterval, OrphanCheckInterval) { KeepAlive = true });

        await FlushAsync(force: true);
        return Ack(_redisDown ? CallAckStatus.Buffering : CallAckStatus.Ok);
    }

    public async ValueTask<CallAck> Append(ImmutableArray<CallItem> items)
    {
        await EnsureLoadedAsync();
        if (!_head.Started || _owner is null)
        {
            // A fresh activation after a failover: the gateway must re-present the call before resending.
            return Ack(CallAckStatus.NotStarted);
        }

        if (_head.Stopped)
        {
            return Ack(CallAckStatus.Ended);
        }

        _ownerSeenUtc = DateTime.UtcNow;
        if (_pending.Count >= _options.BufferLimit && publisher.IsConnected)
        {
            // Redis is there but slow (overload, not an outage): take nothing more. The gateway keeps these items and
            // sends them again after a pause, so nothing is dropped and the pressure reaches the sockets.
            await FlushAsync(force: true);
            if (_pending.Count >= _options.BufferLimit)
            {
                GrainMetrics.Pushback.Add(1);
                throw new TimeoutException($"Redis is slow: stream {_streamId} already holds {_pending.Count} unwritten entries");
            }
        }

        int duplicates = 0, gaps = 0, overflowed = 0;
        long missing = 0;

        foreach (var item in items)
        {
            if (item.Index <= _lastIndex)
            {
                continue;
            }

            _lastIndex = item.Index;
            if (item.Kind == CallItemKind.Media)
            {
                var decision = _tracker.OnMedia(item.Seq, item.Chunk);
                if (!decision.Accept)
                {
                    duplicates++;
                    continue;
                }

                if (decision.Missing > 0)
                {
                    gaps++;
                    missing += decision.Missing;
                    _head = _head with { Gaps = _head.Gaps + 1, Missing = _head.Missing + decision.Missing };
                    LogGap(_streamId, decision.MissingFrom, decision.MissingTo, decision.Missing);
                    Enqueue(audio: false, GapFields(decision.MissingFrom, decision.MissingTo, decision.Missing, "missing"), item.Index);
                }

                // Only a real outage (no connection) drops frames; a slow Redis pushes back instead (see above).
                if (_redisDown && !publisher.IsConnected && _pending.Count >= _options.BufferLimit)
                {
                    overflowed++;
                    Overflow(item);
                    continue;
                }

                _openOverflow = null;
                _head = _head with { Frames = _head.Frames + 1 };
                Enqueue(audio: true, AudioFields(item), item.Index);
            }
            else
            {
                var decision = _tracker.OnEvent(item.Seq);
                if (!decision.Accept)
                {
                    duplicates++;
                    continue;
                }

                Enqueue(audio: false, EventFields(item), item.Index);
            }
        }

        if (duplicates > 0)
        {
            GrainMetrics.Duplicates.Add(duplicates);
            LogDuplicates(_streamId, duplicates);
        }

        if (gaps > 0)
        {
            GrainMetrics.Gaps.Add(gaps);
            GrainMetrics.MissingFrames.Add(missing);
        }

        await FlushAsync(force: false);
        var ack = Ack(_redisDown ? CallAckStatus.Buffering : CallAckStatus.Ok);
        return ack with { Duplicates = duplicates, GapsRecorded = gaps, MissingFrames = missing, Overflowed = overflowed };
    }

    public async ValueTask<CallAck> Stop(CallStop stop)
    {
        await EnsureLoadedAsync();
        if (!_head.Stopped && !_head.Started)
        {
            return Ack(CallAckStatus.NotStarted);
        }

        return await StopCoreAsync(stop.Reason);
    }

    private async Task<CallAck> StopCoreAsync(string reason)
    {
        if (!_head.Stopped)
        {
            _head = _head with { Stopped = true };
            Enqueue(audio: false, StopFields(reason), _lastIndex);
            LogStopped(_streamId, reason, _head.Frames);
        }

        _orphanTimer?.Dispose();
        _orphanTimer = null;
        await FlushAsync(force: true);
        if (_pending.Count == 0)
        {
            // Nothing left to write: free the memory now rather than at the idle collection.
            DeactivateOnIdle();
            return Ack(CallAckStatus.Ok);
        }

        return Ack(CallAckStatus.Buffering);
    }

    private TimeSpan OrphanCheckInterval => TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(250).Ticks, _options.OrphanTimeout.Ticks / 4));

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

    private async Task EnsureLoadedAsync()
    {
        if (_loaded)
        {
            return;
        }

        // Redis is the source of truth for what was already published; a load failure surfaces to the gateway,
        // which keeps the frames and retries.
        var cursor = await publisher.LoadCursorAsync(_streamId);
        _written = cursor;
        _head = cursor;
        _tracker.Restore(cursor.Baseline, cursor.MediaSeq, cursor.Chunk, cursor.EventSeq, cursor.ParseEventsAfterMedia());
        _loaded = true;
        if (cursor.Started)
        {
            LogResumed(_streamId, cursor.MediaSeq, cursor.Frames);
        }
    }

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

    private void Enqueue(bool audio, NameValueEntry[] fields, long index)
    {
        _head = _head with
        {
            MediaSeq = _tracker.LastMediaSeq,
            Chunk = _tracker.LastChunk,
            EventSeq = _tracker.LastEventSeq,
            EventsAfterMedia = _tracker.EventsAfterLastMedia.Count == 0
                ? string.Empty
                : string.Join(',', _tracker.EventsAfterLastMedia),
        };
        _pending.Add(new PendingEntry(audio, fields, _head, index));
        GrainMetrics.Buffered.Add(1);
    }

    private void Overflow(CallItem item)
    {
        GrainMetrics.Overflowed.Add(1);
        _head = _head with
        {
            MediaSeq = _tracker.LastMediaSeq,
            Chunk = _tracker.LastChunk,
        };

        if (_openOverflow?.Overflow is { } open)
        {
            open.ToSeq = item.Seq;
            open.Count++;
            _head = _head with { Missing = _head.Missing + 1 };
            _openOverflow.Fields = GapFields(open.FromSeq, open.ToSeq, open.Count, "buffer_overflow");
            _openOverflow.CursorAfter = _head;
            return;
        }

        var gap = new OverflowGap { FromSeq = item.Seq, ToSeq = item.Seq, Count = 1 };
        _head = _head with { Gaps = _head.Gaps + 1, Missing = _head.Missing + 1 };
        _openOverflow = new PendingEntry(false, GapFields(gap.FromSeq, gap.ToSeq, gap.Count, "buffer_overflow"), _head, item.Index) { Overflow = gap };
        _pending.Add(_openOverflow);
        GrainMetrics.Buffered.Add(1);
        GrainMetrics.Gaps.Add(1);
        LogOverflowStarted(_streamId, _options.BufferLimit, item.Seq);
    }

    private async Task FlushAsync(bool force)
    {
        if (_pending.Count == 0)
        {
            return;
        }

        if (_redisDown && !force && DateTime.UtcNow < _nextRetryUtc)
        {
            return;
        }

        while (_pending.Count > 0)
        {
            var count = Math.Min(_pending.Count, _options.MaxBatch);
            WriteOutcome outcome;
            var started = Stopwatch.GetTimestamp();
            try
            {
                outcome = await publisher.WriteAsync(_streamId, _written, _pending, count, _options);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
            {
                GrainMetrics.RedisFailures.Add(1);
                if (!_redisDown)
                {
                    LogRedisUnavailable(_streamId, _pending.Count, ex.Message);
                }

                _redisDown = true;
                _nextRetryUtc = DateTime.UtcNow + _options.RetryInterval;
                EnsureRetryTimer();
                return;
            }

            GrainMetrics.WriteLatency.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            if (outcome == WriteOutcome.Conflict)
            {
                // Another activation of this stream wrote first (a split brain during a silo failure). Start over from
                // what Redis holds: the gateway still has every unsettled item and will resend it.
                LogCursorMoved(_streamId);
                GrainMetrics.Buffered.Add(-_pending.Count);
                _pending.Clear();
                DeactivateOnIdle();
                throw new InvalidOperationException($"The cursor of stream {_streamId} moved; resend unsettled items.");
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
                        LogPublishedFrame(_streamId, _pending[i].CursorAfter.MediaSeq);
                    }
                }

                if (ReferenceEquals(_pending[i], _openOverflow))
                {
                    _openOverflow = null;
                }
            }

            _written = _pending[count - 1].CursorAfter with { Version = _written.Version + 1 };
            _pending.RemoveRange(0, count);
            GrainMetrics.Buffered.Add(-count);
            GrainMetrics.FramesPublished.Add(audio);
            _publishedSinceAck += audio;
            if (_redisDown)
            {
                _redisDown = false;
                LogRedisRecovered(_streamId, _pending.Count);
            }
        }

        // Keep the head's version in step so the next write is fenced against what we just wrote.
        _head = _head with { Version = _written.Version };
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
        if (_pending.Count > 0)
        {
            await FlushAsync(force: true);
        }

        if (_pending.Count == 0)
        {
            _retryTimer?.Dispose();
            _retryTimer = null;
            if (_head.Stopped)
            {
                DeactivateOnIdle();
            }
        }
    }

    private NameValueEntry[] StartFields(CallStart start)
    {
        var fields = new List<NameValueEntry>(12)
        {
            new("event", "start"),
            new("stream_id", start.StreamId),
            new("protocol", start.Protocol == CallProtocol.Exotel ? "exotel" : "native"),
            new("encoding", start.Encoding),
            new("sample_rate", start.SampleRate),
            new("at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()),
        };
        if (start.CallSid is { } callSid)
        {
            fields.Add(new("call_sid", callSid));
        }

        if (start.AccountSid is { } account)
        {
            fields.Add(new("account_sid", account));
        }

        if (start.From is { } from)
        {
            fields.Add(new("from", from));
        }

        if (start.To is { } to)
        {
            fields.Add(new("to", to));
        }

        if (start.Parameters.Count > 0)
        {
            fields.Add(new("parameters", JsonSerializer.Serialize(start.Parameters)));
        }

        return [.. fields];
    }

    private NameValueEntry[] AudioFields(CallItem item) =>
    [
        new("seq", item.Seq),
        new("ts", item.TimestampMs),
        new("audio", item.Audio ?? []),
    ];

    private NameValueEntry[] EventFields(CallItem item)
    {
        if (item.Kind == CallItemKind.Dtmf)
        {
            return
            [
                new("event", "dtmf"),
                new("stream_id", _streamId),
                new("seq", item.Seq),
                new("ts", item.TimestampMs),
                new("digit", item.Digit ?? string.Empty),
                new("duration_ms", item.DurationMs?.ToString(CultureInfo.InvariantCulture) ?? string.Empty),
            ];
        }

        return
        [
            new("event", "mark"),
            new("stream_id", _streamId),
            new("seq", item.Seq),
            new("ts", item.TimestampMs),
            new("name", item.MarkName ?? string.Empty),
        ];
    }

    private NameValueEntry[] GapFields(long from, long to, long missing, string reason) =>
    [
        new("event", "gap"),
        new("stream_id", _streamId),
        new("from_seq", from),
        new("to_seq", to),
        new("missing", missing),
        new("reason", reason),
    ];

    private NameValueEntry[] StopFields(string reason)
    {
        var fields = new List<NameValueEntry>(8)
        {
            new("event", "stop"),
            new("stream_id", _streamId),
            new("reason", reason),
            new("frames", _head.Frames),
            new("gaps", _head.Gaps),
            new("missing", _head.Missing),
            new("at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()),
        };
        if (_callSid is { } callSid)
        {
            fields.Add(new("call_sid", callSid));
        }

        return [.. fields];
    }

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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis unavailable for stream {StreamId}; holding {Pending} entr(ies) and retrying: {Error}")]
    private partial void LogRedisUnavailable(string streamId, int pending, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis back for stream {StreamId}; buffer flushed ({Pending} left)")]
    private partial void LogRedisRecovered(string streamId, int pending);

    [LoggerMessage(Level = LogLevel.Error, Message = "Buffer of stream {StreamId} full ({Limit} entries) while Redis is away; dropping frames from sequence {Seq}, counted and recorded as a gap")]
    private partial void LogOverflowStarted(string streamId, int limit, long seq);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cursor of stream {StreamId} moved under this activation; deactivating so the gateway resends")]
    private partial void LogCursorMoved(string streamId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Stream {StreamId} deactivated ({Reason}) with {Pending} entr(ies) unwritten; the gateway holds them for resend")]
    private partial void LogDeactivatedWithPending(string streamId, int pending, string reason);
}
