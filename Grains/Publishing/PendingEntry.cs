namespace Ingest.Grains.Publishing;

/// <summary>
/// One entry waiting to be written, with the cursor as it will be once the entry is in Redis and the gateway index
/// that is settled with it.
/// </summary>
public sealed class PendingEntry(CallEntry entry, CallCursor cursorAfter, long index, int bytes)
{
    /// <summary>The entry; a gap entry may still grow (consecutive overflowed or malformed frames) while it is the last.</summary>
    public CallEntry Entry { get; set; } = entry;

    public bool Audio => Entry.IsAudio;

    public CallCursor CursorAfter { get; set; } = cursorAfter;

    public long Index { get; set; } = index;

    /// <summary>Bytes this entry holds while it waits (for the byte budgets: every entry counts).</summary>
    public int Bytes { get; } = bytes;

    /// <summary>A gap entry that must be written in the same batch as the entry after it (the frame that revealed it).</summary>
    public bool JoinNext { get; init; }
}
