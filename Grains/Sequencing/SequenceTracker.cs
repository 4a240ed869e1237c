using Ingest.Grains.Interfaces;

namespace Ingest.Grains.Sequencing;

public enum SequenceVerdict
{
    /// <summary>New: publish it (after a gap entry when <see cref="SequenceDecision.Missing"/> &gt; 0).</summary>
    Accept,

    /// <summary>Its number was already published: drop and count.</summary>
    Duplicate,

    /// <summary>Its number is absurdly far ahead (CONTRACT §5): drop and count, the stream's position does not move.</summary>
    Malformed,
}

/// <summary>What to do with one sequenced item.</summary>
public readonly record struct SequenceDecision(SequenceVerdict Verdict, long Missing, long MissingFrom, long MissingTo)
{
    public static readonly SequenceDecision Duplicate = new(SequenceVerdict.Duplicate, 0, 0, 0);

    public static readonly SequenceDecision Malformed = new(SequenceVerdict.Malformed, 0, 0, 0);

    public static readonly SequenceDecision New = new(SequenceVerdict.Accept, 0, 0, 0);

    public bool Accept => Verdict == SequenceVerdict.Accept;
}

/// <summary>
/// Decides, for each media frame and each dtmf/mark event of one stream, whether it is new, a resend, or malformed, and
/// how many numbers went missing before it. Exotel numbers every message (start is 1, media from 2, and dtmf/mark take
/// numbers too), so the dtmf/mark numbers seen between two frames are not counted as lost frames.
/// Every operation is O(1) (amortised): events above the last frame are counted, and their exact numbers are kept only
/// up to a small bound, which only matters when events and frames arrive out of order with each other.
/// </summary>
/// <summary>
/// A stream's sequencing position: the start's number, the last media frame's number (null when none yet: a frame
/// numbered 0 is a frame) and chunk, and the dtmf/mark events above that frame (how many, and the highest number).
/// </summary>
public readonly record struct SequenceState(long? Baseline, long? MediaSeq, long? Chunk, long EventsAbove, long EventMax);

public sealed class SequenceTracker
{
    private const int RecentEventCapacity = 64;
    private const int ExactEventCapacity = 256;

    // The last event numbers accepted (a ring), to recognise a sender's resend of a dtmf/mark without keeping them all.
    private readonly long[] _recentEvents = new long[RecentEventCapacity];
    private int _recentCount;
    private int _recentNext;

    // Exact numbers of the events above the last frame while there are few; EventsAbove counts them all.
    private readonly List<long> _eventsAbove = [];

    public bool HasMedia { get; private set; }

    /// <summary>Sequence number of the last media frame accepted (meaningful when <see cref="HasMedia"/>).</summary>
    public long LastMediaSeq { get; private set; }

    public long? LastChunk { get; private set; }

    /// <summary>The sequence number the stream started from (Exotel's start message), when known.</summary>
    public long? Baseline { get; private set; }

    /// <summary>dtmf/mark events accepted with a number above the last frame.</summary>
    public long EventsAbove { get; private set; }

    /// <summary>The highest of those events' numbers (0 when none).</summary>
    public long MaxEventAbove { get; private set; }

    private bool Positioned => HasMedia || Baseline.HasValue || EventsAbove > 0;

    /// <summary>The highest number this stream has used.</summary>
    public long Highest => Math.Max(Math.Max(HasMedia ? LastMediaSeq : 0, Baseline ?? 0), MaxEventAbove);

    private bool ExactEvents => _eventsAbove.Count == EventsAbove;

    /// <summary>What the tracker must remember across a reactivation; the call's cursor in Redis holds exactly this.</summary>
    public SequenceState Position => new(Baseline, HasMedia ? LastMediaSeq : null, LastChunk, EventsAbove, MaxEventAbove);

    public void Restore(SequenceState position)
    {
        Baseline = position.Baseline;
        HasMedia = position.MediaSeq.HasValue;
        LastMediaSeq = position.MediaSeq ?? 0;
        LastChunk = position.Chunk;
        EventsAbove = position.EventsAbove;
        MaxEventAbove = position.EventMax;
        _eventsAbove.Clear();
        _recentCount = 0;
        _recentNext = 0;
    }

    public void SetBaseline(long? baseline)
    {
        if (!HasMedia)
        {
            Baseline = baseline;
        }
    }

    public SequenceDecision OnMedia(long seq, long? chunk)
    {
        if (HasMedia && seq <= LastMediaSeq)
        {
            return SequenceDecision.Duplicate;
        }

        if (IsJump(seq))
        {
            return SequenceDecision.Malformed;
        }

        var missing = MissingBefore(seq, chunk, out var from);
        MoveTo(seq);
        LastChunk = chunk ?? LastChunk;
        return missing > 0 ? new SequenceDecision(SequenceVerdict.Accept, missing, from, seq - 1) : SequenceDecision.New;
    }

    /// <summary>
    /// Frames <paramref name="from"/>..<paramref name="to"/> that the gateway could not keep: they take their numbers
    /// (so they are not reported again as missing) and the part not already published is returned in the decision's
    /// MissingFrom/MissingTo, with the numbers missing before them in <paramref name="gapBefore"/>.
    /// </summary>
    public SequenceDecision OnMediaRange(long from, long to, out SequenceDecision gapBefore)
    {
        gapBefore = SequenceDecision.New;
        if (HasMedia && to <= LastMediaSeq)
        {
            return SequenceDecision.Duplicate;
        }

        if (HasMedia && from <= LastMediaSeq)
        {
            from = LastMediaSeq + 1;
        }

        // The range is the gateway's own account of frames it could not keep (however many arrived while the cluster
        // took nothing); only where it starts is checked against the stream's position.
        if (IsJump(from))
        {
            return SequenceDecision.Malformed;
        }

        var missing = MissingBefore(from, null, out var gapFrom);
        if (missing > 0)
        {
            gapBefore = new SequenceDecision(SequenceVerdict.Accept, missing, gapFrom, from - 1);
        }

        MoveTo(to);
        LastChunk = null;
        return new SequenceDecision(SequenceVerdict.Accept, to - from + 1, from, to);
    }

    public SequenceDecision OnEvent(long seq)
    {
        for (var i = 0; i < _recentCount; i++)
        {
            if (_recentEvents[i] == seq)
            {
                return SequenceDecision.Duplicate;
            }
        }

        if (IsJump(seq))
        {
            return SequenceDecision.Malformed;
        }

        _recentEvents[_recentNext] = seq;
        _recentNext = (_recentNext + 1) % RecentEventCapacity;
        _recentCount = Math.Min(_recentCount + 1, RecentEventCapacity);

        // An event below the last frame arrived late: it is published, and it changes nothing about gaps.
        if (!HasMedia || seq > LastMediaSeq)
        {
            if (ExactEvents && _eventsAbove.Count < ExactEventCapacity)
            {
                _eventsAbove.Add(seq);
            }

            EventsAbove++;
            MaxEventAbove = Math.Max(MaxEventAbove, seq);
        }

        return SequenceDecision.New;
    }

    /// <summary>
    /// A media frame of one track of a tracked call (CONTRACT §5): <c>sequence_number</c> counts the messages of both
    /// tracks, so only <c>chunk</c> (counted per track) tells duplicates and gaps; the decision's MissingFrom/MissingTo
    /// are chunk numbers. Without a chunk the frame is a duplicate when its number is not above the track's last, and
    /// nothing is ever missing.
    /// </summary>
    public SequenceDecision OnTrackedMedia(long seq, long? chunk)
    {
        if (chunk is not { } c)
        {
            if (HasMedia && seq <= LastMediaSeq)
            {
                return SequenceDecision.Duplicate;
            }

            if (IsJump(seq))
            {
                return SequenceDecision.Malformed;
            }

            MoveTo(seq);
            return SequenceDecision.New;
        }

        var lastChunk = LastChunk ?? 0;
        if (LastChunk.HasValue && c <= lastChunk)
        {
            return SequenceDecision.Duplicate;
        }

        if (IsJump(seq) || (LastChunk.HasValue && c - lastChunk > SequenceRules.MaxJump))
        {
            return SequenceDecision.Malformed;
        }

        MoveAtLeastTo(seq);
        LastChunk = c;

        // A first chunk far from 1 is a sender's own numbering, not a run of lost frames.
        var missing = lastChunk == 0 && c > SequenceRules.MaxJump ? 0 : c - lastChunk - 1;
        return missing > 0 ? new SequenceDecision(SequenceVerdict.Accept, missing, lastChunk + 1, c - 1) : SequenceDecision.New;
    }

    /// <summary>
    /// Frames of one track that the gateway could not keep, chunks <paramref name="fromChunk"/>..<paramref name="toChunk"/>
    /// (numbered) or <paramref name="count"/> frames (unnumbered); like <see cref="OnMediaRange"/>, in chunk numbers.
    /// </summary>
    public SequenceDecision OnTrackedRange(long toSeq, long? fromChunk, long? toChunk, long count, out SequenceDecision gapBefore)
    {
        gapBefore = SequenceDecision.New;
        if (fromChunk is not { } from || toChunk is not { } to)
        {
            MoveAtLeastTo(toSeq);
            return new SequenceDecision(SequenceVerdict.Accept, count, 0, 0);
        }

        var lastChunk = LastChunk ?? 0;
        if (LastChunk.HasValue && to <= lastChunk)
        {
            return SequenceDecision.Duplicate;
        }

        from = Math.Max(from, lastChunk + 1);
        if (from - lastChunk > SequenceRules.MaxJump)
        {
            return SequenceDecision.Malformed;
        }

        if (from - lastChunk - 1 is var missing and > 0)
        {
            gapBefore = new SequenceDecision(SequenceVerdict.Accept, missing, lastChunk + 1, from - 1);
        }

        MoveAtLeastTo(toSeq);
        LastChunk = to;
        return new SequenceDecision(SequenceVerdict.Accept, to - from + 1, from, to);
    }

    /// <summary>The numbers missing between the last item and a stop numbered <paramref name="stopSeq"/>.</summary>
    public SequenceDecision OnStop(long? stopSeq)
    {
        if (stopSeq is not { } seq || IsJump(seq) || (HasMedia && seq <= LastMediaSeq))
        {
            return SequenceDecision.New;
        }

        var missing = MissingBefore(seq, null, out var from);
        return missing > 0 ? new SequenceDecision(SequenceVerdict.Accept, missing, from, seq - 1) : SequenceDecision.New;
    }

    private bool IsJump(long seq) => Positioned && seq - Highest > SequenceRules.MaxJump;

    /// <summary>Numbers below <paramref name="seq"/> (and above the last frame) that no frame or event took.</summary>
    private long MissingBefore(long seq, long? chunk, out long from)
    {
        long lower;
        if (HasMedia)
        {
            lower = LastMediaSeq;
        }
        else if (Baseline is { } start && seq > start)
        {
            // A first frame at or below the start's own number is a sender numbering oddity, not a resend: keep it.
            lower = start;
        }
        else
        {
            from = 0;
            return 0;
        }

        from = lower + 1;
        var span = seq - lower - 1;
        var missing = Math.Max(0, span - EventsBetween(seq, span));

        // Senders that number chunks give a second opinion; the smaller count wins, so neither a lost dtmf nor a
        // sender that copies sequence numbers into chunk invents a missing frame.
        if (HasMedia && chunk is { } c && LastChunk is { } last && c > last)
        {
            missing = Math.Min(missing, c - last - 1);
        }

        return missing;
    }

    private long EventsBetween(long seq, long span)
    {
        if (EventsAbove == 0)
        {
            return 0;
        }

        if (MaxEventAbove < seq)
        {
            return EventsAbove;
        }

        if (ExactEvents)
        {
            var below = 0;
            foreach (var e in _eventsAbove)
            {
                if (e < seq)
                {
                    below++;
                }
            }

            return below;
        }

        // Many events and frames out of order with each other: the exact numbers were not kept; never count more
        // events than the numbers in between.
        return Math.Min(EventsAbove, span);
    }

    /// <summary>A track's frame whose number may be below the track's last (its chunk decides): the position never goes back.</summary>
    private void MoveAtLeastTo(long seq) => MoveTo(HasMedia ? Math.Max(seq, LastMediaSeq) : seq);

    private void MoveTo(long seq)
    {
        if (EventsAbove > 0)
        {
            if (MaxEventAbove <= seq)
            {
                EventsAbove = 0;
                MaxEventAbove = 0;
                _eventsAbove.Clear();
            }
            else if (ExactEvents)
            {
                _eventsAbove.RemoveAll(e => e <= seq);
                EventsAbove = _eventsAbove.Count;
            }
            else
            {
                EventsAbove = Math.Max(1, EventsAbove - Math.Max(0, seq - (HasMedia ? LastMediaSeq : 0)));
            }
        }

        HasMedia = true;
        LastMediaSeq = seq;
    }
}
