namespace Ingest.Grains.Sequencing;

/// <summary>What to do with one sequenced item.</summary>
public readonly record struct SequenceDecision(bool Accept, long Missing, long MissingFrom, long MissingTo)
{
    public static readonly SequenceDecision Duplicate = new(false, 0, 0, 0);
}

/// <summary>
/// Decides, for each media frame and each dtmf/mark event of one stream, whether it is new or a resend, and how
/// many media frames went missing before it. Exotel numbers every message (start is 1, media from 2, and dtmf/mark
/// take numbers too), so the dtmf/mark numbers seen between two frames are not counted as lost frames.
/// </summary>
public sealed class SequenceTracker
{
    private readonly List<long> _eventsAfterLastMedia = [];

    /// <summary>Sequence number of the last media frame accepted; 0 when none.</summary>
    public long LastMediaSeq { get; private set; }

    public long? LastChunk { get; private set; }

    /// <summary>Sequence number of the last dtmf/mark accepted; 0 when none.</summary>
    public long LastEventSeq { get; private set; }

    /// <summary>The sequence number the stream started from (Exotel's start message), when known.</summary>
    public long? Baseline { get; private set; }

    public bool HasMedia => LastMediaSeq > 0 || LastChunk.HasValue;

    public void Restore(long? baseline, long lastMediaSeq, long? lastChunk, long lastEventSeq, IEnumerable<long> eventsAfterLastMedia)
    {
        Baseline = baseline;
        LastMediaSeq = lastMediaSeq;
        LastChunk = lastChunk;
        LastEventSeq = lastEventSeq;
        _eventsAfterLastMedia.Clear();
        _eventsAfterLastMedia.AddRange(eventsAfterLastMedia.Where(s => s > lastMediaSeq));
    }

    public void SetBaseline(long? baseline)
    {
        if (!HasMedia)
        {
            Baseline = baseline;
        }
    }

    public IReadOnlyList<long> EventsAfterLastMedia => _eventsAfterLastMedia;

    public SequenceDecision OnMedia(long seq, long? chunk)
    {
        long? lower = null;
        if (HasMedia)
        {
            if (seq <= LastMediaSeq)
            {
                return SequenceDecision.Duplicate;
            }

            lower = LastMediaSeq;
        }
        else if (Baseline is { } start && seq > start)
        {
            // A first frame at or below the start's own number is a sender numbering oddity, not a resend: keep it.
            lower = start;
        }

        long missing = 0;
        if (lower is { } below)
        {
            var eventsBetween = 0;
            foreach (var e in _eventsAfterLastMedia)
            {
                if (e > below && e < seq)
                {
                    eventsBetween++;
                }
            }

            missing = seq - below - 1 - eventsBetween;

            // Senders that number chunks give a second opinion; the smaller count wins, so neither a lost dtmf nor a
            // sender that copies sequence numbers into chunk invents a missing frame.
            if (HasMedia && chunk is { } c && LastChunk is { } last && c > last)
            {
                missing = Math.Min(missing, c - last - 1);
            }
        }

        LastMediaSeq = seq;
        if (chunk.HasValue)
        {
            LastChunk = chunk;
        }

        _eventsAfterLastMedia.RemoveAll(e => e <= seq);
        return missing > 0
            ? new SequenceDecision(true, missing, lower!.Value + 1, seq - 1)
            : new SequenceDecision(true, 0, 0, 0);
    }

    public SequenceDecision OnEvent(long seq)
    {
        if (seq <= LastEventSeq)
        {
            return SequenceDecision.Duplicate;
        }

        LastEventSeq = seq;
        if (seq > LastMediaSeq)
        {
            _eventsAfterLastMedia.Add(seq);
        }

        return new SequenceDecision(true, 0, 0, 0);
    }
}
