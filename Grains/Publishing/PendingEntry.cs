namespace Ingest.Grains.Publishing;

/// <summary>
/// One entry waiting to be written, with the cursor as it will be once the entry is in Redis and the gateway index
/// that is settled with it.
/// </summary>
public sealed class PendingEntry(CallEntry entry, CallCursor cursorAfter, long index, int bytes = 0)
{
    public CallEntry Entry { get; set; } = entry;

    public bool Audio => Entry.IsAudio;

    public CallCursor CursorAfter { get; set; } = cursorAfter;

    public long Index { get; set; } = index;

    /// <summary>Audio bytes this entry holds (for the byte budgets).</summary>
    public int Bytes { get; } = bytes;

    /// <summary>A gap entry that must be written in the same batch as the entry after it (the frame that revealed it).</summary>
    public bool JoinNext { get; init; }

    /// <summary>Set on a gap entry while it may still grow (consecutive overflowed or malformed frames).</summary>
    public OpenGap? Gap { get; init; }
}

/// <summary>Consecutive frames missing for one reason; becomes one gap entry.</summary>
public sealed class OpenGap
{
    public required string Reason { get; init; }

    public long FromSeq { get; set; }

    public long ToSeq { get; set; }

    public long Count { get; set; }
}
