using StackExchange.Redis;

namespace Ingest.Grains.Publishing;

/// <summary>
/// One entry waiting to be written, with the cursor as it will be once the entry is in Redis and the gateway index
/// that is settled with it.
/// </summary>
public sealed class PendingEntry(bool audio, NameValueEntry[] fields, CallCursor cursorAfter, long index)
{
    public bool Audio { get; } = audio;

    public NameValueEntry[] Fields { get; set; } = fields;

    public CallCursor CursorAfter { get; set; } = cursorAfter;

    public long Index { get; } = index;

    /// <summary>Set on an overflow gap entry while it is still growing.</summary>
    public OverflowGap? Overflow { get; init; }
}

/// <summary>The frames that did not fit the buffer while Redis was away; becomes one gap entry.</summary>
public sealed class OverflowGap
{
    public long FromSeq { get; set; }

    public long ToSeq { get; set; }

    public long Count { get; set; }
}
