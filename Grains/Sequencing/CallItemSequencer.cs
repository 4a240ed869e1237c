using System.Collections.Immutable;
using Ingest.Grains.Interfaces;
using Ingest.Grains.Publishing;
using Microsoft.Extensions.Logging;

namespace Ingest.Grains.Sequencing;

/// <summary>What one Append did, for its ack and the silo's counters.</summary>
public struct ItemTally
{
    public int Duplicates;
    public int Gaps;
    public int Overflowed;
    public int Malformed;
    public int EventsDropped;
    public long Missing;

    internal readonly void Report(GrainMetrics metrics)
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

/// <summary>
/// Turns a call's items, in the order its gateway received them, into the entries the outbox writes: resends dropped,
/// gaps recorded (missing, malformed, buffer_overflow, after_stop), CONTRACT §7's per-call bounds applied. It keeps the
/// head cursor (the call once everything accepted is in Redis), and each entry it hands on carries the cursor it leads to.
/// A tracked call (CONTRACT §5) has two positions, one per track: media of each track are judged by their own
/// <c>chunk</c>, land in their own stream, and leave gap entries that name the track.
/// </summary>
internal sealed partial class CallItemSequencer(CallOutbox outbox, IngestOptions options, string streamId, ILogger logger)
{
    // The inbound (or only) track; dtmf/mark are numbered among its messages.
    private readonly SequenceTracker _tracker = new();

    private readonly SequenceTracker _outbound = new();

    /// <summary>The call once everything accepted is in Redis.</summary>
    public CallCursor Head { get; private set; } = CallCursor.Empty;

    /// <summary>The gateway index of the last item taken.</summary>
    public long LastIndex { get; private set; }

    /// <summary>A new activation's state: the cursor Redis holds, numbering lifecycle entries above <paramref name="lifecycleFloor"/>.</summary>
    public void Restore(CallCursor cursor, long lifecycleFloor)
    {
        Head = cursor with { Lifecycle = lifecycleFloor };
        outbox.SetCursor(Head);
        _tracker.Restore(cursor.Sequence);
        _outbound.Restore(cursor.Outbound);
        LastIndex = cursor.Index;
    }

    /// <summary>The first start of the call: its owner, and the start entry.</summary>
    public void Begin(CallStart start, long startedAt)
    {
        _tracker.SetBaseline(start.StartSequence);
        Head = Head with
        {
            Owner = start.ConnectionId,
            Index = 0,
            Started = true,
            CallSid = start.CallSid ?? string.Empty,
            Protocol = start.Protocol == CallProtocol.Exotel ? "exotel" : "native",
            StartedAt = startedAt,
        };
        LastIndex = 0;
        Enqueue(new StartEntry(Head.Protocol, start.Encoding, start.SampleRate, startedAt, start.CallSid, start.AccountSid, start.From, start.To, start.Parameters, start.SourceEncoding), 0);
    }

    /// <summary>Sequences one item and hands what it becomes to the outbox; false when there is no room for it.</summary>
    public bool Accept(CallItem item, ref ItemTally tally)
    {
        var isEvent = item.Kind is CallItemKind.Dtmf or CallItemKind.Mark;
        var fits = outbox.Fits(isEvent ? EntryFields.HeldBytes(EventEntry(item)) : item.Bytes);
        if (!fits && (isEvent || (item.Kind == CallItemKind.Media && outbox.IsConnected)))
        {
            // Redis slow (pushback), or an event while Redis is away: events are never dropped for room.
            return false;
        }

        LastIndex = item.Index;
        var gapBefore = SequenceDecision.New;
        var tracked = item.Track != CallTrack.Untracked && !isEvent;
        var outbound = tracked && item.Track == CallTrack.Outbound;
        var tracker = outbound ? _outbound : _tracker;
        var decision = item.Kind switch
        {
            CallItemKind.Media or CallItemKind.Malformed when tracked => tracker.OnTrackedMedia(item.Seq, item.Chunk),
            CallItemKind.Media or CallItemKind.Malformed => _tracker.OnMedia(item.Seq, item.Chunk),
            CallItemKind.Overflow when tracked => tracker.OnTrackedRange(item.ToSeq, item.Chunk, item.ToChunk, item.Count, out gapBefore),
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
            LogSequenceJump(streamId, item.Seq, _tracker.Highest);
            return true;
        }

        if (tracked)
        {
            Head = Head with { Tracks = Head.Tracks | CallTracks.Tracked | (outbound ? CallTracks.Outbound : CallTracks.None) };
        }

        switch (item.Kind)
        {
            case CallItemKind.Media:
                tally.Gaps += RecordMissing(decision, item, item.Index - 1, ref tally.Missing);
                if (!fits)
                {
                    // Only a real outage (no connection) drops frames; a slow Redis pushes back instead (see above).
                    tally.Overflowed++;
                    tally.Gaps += AddToGap(ItsOwnGap("buffer_overflow", item), item.Index);
                    break;
                }

                Head = outbound ? Head with { FramesOutbound = Head.FramesOutbound + 1 } : Head with { Frames = Head.Frames + 1 };
                Enqueue(new AudioEntry(item.Seq, item.TimestampMs, item.Audio ?? [], outbound), item.Index);
                break;
            case CallItemKind.Malformed:
                tally.Gaps += RecordMissing(decision, item, item.Index - 1, ref tally.Missing);
                tally.Gaps += AddToGap(ItsOwnGap("malformed", item), item.Index);
                break;
            case CallItemKind.Overflow:
                // The gateway could not keep these frames; they take their numbers as one buffer_overflow gap. The
                // range may hold dtmf/mark numbers too; the item counts the frames themselves.
                tally.Gaps += RecordMissing(gapBefore, item, item.Index - 1, ref tally.Missing);
                var frames = item.Count > 0 ? Math.Min(item.Count, decision.Missing) : decision.Missing;
                tally.Overflowed += (int)Math.Min(int.MaxValue, frames);
                tally.Gaps += AddToGap(Gap("buffer_overflow", decision, frames, item), item.Index);
                break;
            default:
                if (Head.Events >= options.MaxEventsPerCall)
                {
                    // CONTRACT §7: one call cannot crowd the others out of ingest:calls. Its number is not a gap.
                    Head = Head with { EventsDropped = Head.EventsDropped + 1 };
                    tally.EventsDropped++;
                    break;
                }

                Head = Head with { Events = Head.Events + 1 };
                Enqueue(EventEntry(item), item.Index);
                break;
        }

        return true;
    }

    /// <summary>After events were dropped: the cursor keeps their count for the stop even if nothing else is written.</summary>
    public void KeepCursorIf(bool eventsDropped)
    {
        if (eventsDropped)
        {
            outbox.SetCursor(Head);
        }
    }

    /// <summary>Numbers missing just before the stop (its own sequence number tells). Returns the frames missing.</summary>
    public long MissingBeforeStop(long? seq)
    {
        // A tracked call numbers both tracks' messages: the stop's number cannot tell which track lost what.
        if (Head.Tracks.HasFlag(CallTracks.Tracked))
        {
            return 0;
        }

        long missing = 0;
        RecordMissing(_tracker.OnStop(seq), null, LastIndex, ref missing);
        return missing;
    }

    /// <summary>The stop entry, with the call's totals.</summary>
    public void Stop(string reason, long at)
    {
        Head = Head with { Stopped = true };
        var framesOutbound = Head.Tracks.HasFlag(CallTracks.Outbound) ? Head.FramesOutbound : (long?)null;
        Enqueue(new StopEntry(reason, Head.Frames, Head.Gaps, Head.Missing, Head.EventsDropped, at, Head.CallSid, framesOutbound), LastIndex);
    }

    /// <summary>
    /// Frames of the owner that reach a stream already stopped: they cannot be published after the stop, so they leave
    /// one gap entry (reason after_stop). Returns the frames, their range and the gap entries added.
    /// </summary>
    public (long Count, long From, long To, int Gaps) AfterStop(ImmutableArray<CallItem> items)
    {
        long from = long.MaxValue, to = long.MinValue, count = 0;
        foreach (var item in items.IsDefault ? [] : items)
        {
            if (item.Index <= LastIndex)
            {
                continue;
            }

            LastIndex = item.Index;
            if (item.Kind is CallItemKind.Media or CallItemKind.Malformed or CallItemKind.Overflow)
            {
                count += item.Kind == CallItemKind.Overflow ? item.Count : 1;
                from = Math.Min(from, item.Seq);
                to = Math.Max(to, item.Kind == CallItemKind.Overflow ? item.ToSeq : item.Seq);
            }
        }

        return (count, from, to, count > 0 ? AddToGap(new GapEntry(from, to, count, "after_stop"), LastIndex) : 0);
    }

    /// <summary>
    /// A gap entry for numbers no item took, written together with <paramref name="item"/>, which revealed them (null:
    /// the stop). Returns gaps added.
    /// </summary>
    private int RecordMissing(SequenceDecision decision, CallItem? item, long settledIndex, ref long missing)
    {
        if (decision.Missing <= 0)
        {
            return 0;
        }

        missing += decision.Missing;
        var gap = Gap("missing", decision, decision.Missing, item);
        if (gap.ByChunk)
        {
            LogTrackGap(streamId, gap.Track!, decision.MissingFrom, decision.MissingTo, decision.Missing);
        }
        else
        {
            LogGap(streamId, decision.MissingFrom, decision.MissingTo, decision.Missing);
        }

        if (Head.Gaps >= options.MaxEventsPerCall)
        {
            // Past the bound only the stop's missing says it (CONTRACT §7).
            Head = Head with { Missing = Head.Missing + decision.Missing };
            return 0;
        }

        Head = Head with { Gaps = Head.Gaps + 1, Missing = Head.Missing + decision.Missing };
        Enqueue(gap, settledIndex, joinNext: true);
        return 1;
    }

    /// <summary>
    /// The gap of <paramref name="count"/> frames a decision found before <paramref name="item"/> or made of it: in
    /// sequence numbers for a classic call, in chunks (or with no range, for a track without chunks) for a tracked one.
    /// </summary>
    private static GapEntry Gap(string reason, SequenceDecision decision, long count, CallItem? item)
    {
        if (item is not { Track: not CallTrack.Untracked } || item.Kind is CallItemKind.Dtmf or CallItemKind.Mark)
        {
            return new GapEntry(decision.MissingFrom, decision.MissingTo, count, reason);
        }

        var track = TrackName(item.Track);
        return decision.MissingFrom > 0 || decision.MissingTo > 0
            ? new GapEntry(0, 0, count, reason, track, decision.MissingFrom, decision.MissingTo)
            : new GapEntry(0, 0, count, reason, track);
    }

    /// <summary>The gap of one frame that was received but not kept (malformed, no room): its own number, and its chunk.</summary>
    private static GapEntry ItsOwnGap(string reason, CallItem item) => item.Track == CallTrack.Untracked
        ? new GapEntry(item.Seq, item.Seq, 1, reason)
        : new GapEntry(item.Seq, item.Seq, 1, reason, TrackName(item.Track), item.Chunk, item.Chunk);

    private static string TrackName(CallTrack track) => track == CallTrack.Outbound ? "outbound" : "inbound";

    /// <summary>Adds frames to a gap of one reason, growing the last pending gap when it is contiguous. Returns gaps added.</summary>
    private int AddToGap(GapEntry gap, long index)
    {
        Head = Head with { Missing = Head.Missing + gap.Missing };
        if (outbox.TryExtendGap(gap, Snapshot(index), index))
        {
            Head = Snapshot(index);
            return 0;
        }

        if (Head.Gaps >= options.MaxEventsPerCall)
        {
            return 0;
        }

        if (gap.Reason == "buffer_overflow")
        {
            LogOverflowStarted(streamId, options.BufferLimit, gap.FromSeq);
        }

        Head = Snapshot(index) with { Gaps = Head.Gaps + 1, Lifecycle = Head.Lifecycle + 1 };
        outbox.Add(gap, Head, index, openGap: true);
        return 1;
    }

    private CallCursor Snapshot(long index) => Head with { Sequence = _tracker.Position, Outbound = _outbound.Position, Index = index };

    /// <summary>Adds an entry to write; a lifecycle entry takes the call's next lifecycle number (for the copy to ingest:calls).</summary>
    private void Enqueue(CallEntry entry, long index, bool joinNext = false)
    {
        Head = Snapshot(index);
        if (!entry.IsAudio)
        {
            Head = Head with { Lifecycle = Head.Lifecycle + 1 };
        }

        outbox.Add(entry, Head, index, joinNext);
    }

    private static CallEntry EventEntry(CallItem item) => item.Kind == CallItemKind.Dtmf
        ? new DtmfEntry(item.Seq, item.TimestampMs, item.Digit ?? string.Empty, item.DurationMs)
        : new MarkEntry(item.Seq, item.TimestampMs, item.MarkName ?? string.Empty);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Information, Message = "Gap in stream {StreamId}: sequence {From}..{To}, {Missing} frame(s) missing")]
    private partial void LogGap(string streamId, long from, long to, long missing);

    [LoggerMessage(EventId = 1012, Level = LogLevel.Information, Message = "Gap in the {Track} track of stream {StreamId}: chunk {From}..{To}, {Missing} frame(s) missing")]
    private partial void LogTrackGap(string streamId, string track, long from, long to, long missing);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Warning, Message = "Stream {StreamId}: sequence number {Seq} is more than 100000 beyond the stream's highest ({Highest}); dropped as malformed, the stream's position is unchanged")]
    private partial void LogSequenceJump(string streamId, long seq, long highest);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Error, Message = "Buffer of stream {StreamId} full ({Limit} entries or its byte budget) while Redis is away; dropping frames from sequence {Seq}, counted and recorded as a buffer_overflow gap")]
    private partial void LogOverflowStarted(string streamId, int limit, long seq);
}
