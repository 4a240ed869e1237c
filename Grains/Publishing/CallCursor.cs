using Ingest.Grains.Sequencing;

namespace Ingest.Grains.Publishing;

/// <summary>
/// What of one stream is durably in Redis, and who owns it. <see cref="CallStreamWriter"/> writes it in the same atomic
/// script as the entries it describes, so a grain that reactivates on another silo resumes exactly where Redis is,
/// never writes twice, and still knows which connection owns the stream (CONTRACT §7: one connection owns a live
/// stream id across failover). The sequencing position is the tracker's own (<see cref="SequenceTracker.Position"/>).
/// </summary>
public sealed record CallCursor
{
    public long Version { get; init; }

    /// <summary>The gateway connection that owns the stream; empty before the start is written.</summary>
    public string Owner { get; init; } = string.Empty;

    /// <summary>The owner's gateway index of the last item settled: a resend at or below it is recognised exactly.</summary>
    public long Index { get; init; }

    public bool Started { get; init; }

    public bool Stopped { get; init; }

    /// <summary>The inbound track's position (the only track of a classic call).</summary>
    public SequenceState Sequence { get; init; }

    /// <summary>The outbound track's position (its media number and chunk only).</summary>
    public SequenceState Outbound { get; init; }

    /// <summary>What the call has shown of tracks (CONTRACT §5): media with a <c>track</c> field, an outbound track.</summary>
    public CallTracks Tracks { get; init; }

    /// <summary>Lifecycle entries of the stream so far: the number of the last one (each is numbered 1, 2, ... for the copy to <c>ingest:calls</c>).</summary>
    public long Lifecycle { get; init; }

    /// <summary>Audio frames of the inbound (or only) track in Redis: the frame number of the stream's last entry.</summary>
    public long Frames { get; init; }

    /// <summary>Audio frames of the outbound track in Redis.</summary>
    public long FramesOutbound { get; init; }

    public long Gaps { get; init; }

    public long Missing { get; init; }

    /// <summary>dtmf and mark entries written (bounded by <see cref="IngestOptions.MaxEventsPerCall"/>).</summary>
    public long Events { get; init; }

    /// <summary>dtmf and mark events dropped past that bound (the stop's <c>events_dropped</c>).</summary>
    public long EventsDropped { get; init; }

    public string CallSid { get; init; } = string.Empty;

    public string Protocol { get; init; } = string.Empty;

    /// <summary>Unix milliseconds of the start.</summary>
    public long StartedAt { get; init; }

    public static readonly CallCursor Empty = new();

    /// <summary>Equal in everything Redis holds but the version (an attempt of ours that landed has the same content).</summary>
    public bool SameContent(CallCursor other) => this with { Version = 0 } == other with { Version = 0 };
}

/// <summary>What a call has shown of Exotel's tracks.</summary>
[Flags]
public enum CallTracks
{
    None = 0,

    /// <summary>Media carried a <c>track</c> field: tracks are sequenced by chunk, and the stop's number tells nothing of one track.</summary>
    Tracked = 1,

    /// <summary>The call has an outbound track (its stop says <c>frames_outbound</c>).</summary>
    Outbound = 2,
}
