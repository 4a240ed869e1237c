using System.Collections.Immutable;

namespace Ingest.Grains.Interfaces;

/// <summary>Which wire protocol a call arrived on; decides the lifecycle fields written for it.</summary>
[GenerateSerializer]
public enum CallProtocol
{
    Exotel = 0,
    Native = 1,
}

/// <summary>Everything known about a call when its stream starts.</summary>
[GenerateSerializer, Immutable]
public sealed record CallStart(
    [property: Id(0)] CallProtocol Protocol,
    [property: Id(1)] string StreamId,
    [property: Id(2)] string? CallSid,
    [property: Id(3)] string? AccountSid,
    [property: Id(4)] string? From,
    [property: Id(5)] string? To,
    [property: Id(6)] string Encoding,
    [property: Id(7)] int SampleRate,
    [property: Id(8)] long? StartSequence,
    [property: Id(9)] ImmutableDictionary<string, string> Parameters,
    [property: Id(10)] string ConnectionId,
    [property: Id(11)] string? SourceEncoding = null);

[GenerateSerializer]
public enum CallItemKind
{
    Media = 0,
    Dtmf = 1,
    Mark = 2,

    /// <summary>A media message that was received but could not be used (bad base64): it holds its number, no audio.</summary>
    Malformed = 3,

    /// <summary>
    /// Media frames the gateway could not keep (its byte budget was full while the cluster was away): one item stands for
    /// <see cref="CallItem.Count"/> frames numbered <see cref="CallItem.Seq"/>..<see cref="CallItem.ToSeq"/>.
    /// </summary>
    Overflow = 4,
}

/// <summary>
/// Which audio track a media item belongs to (CONTRACT §5). Untracked is the classic single-track call (no <c>track</c>
/// field); Inbound and Outbound are the two tracks of Exotel's track selection, each its own audio stream, sequenced on
/// its own by <c>chunk</c>.
/// </summary>
[GenerateSerializer]
public enum CallTrack
{
    Untracked = 0,
    Inbound = 1,
    Outbound = 2,
}

/// <summary>
/// One sequenced message of a call, in the order the gateway received it.
/// <see cref="Index"/> is the gateway's own position counter (1, 2, ...) used to acknowledge and resend;
/// <see cref="Seq"/> is the protocol's sequence number that lands in Redis. An overflow item of a track that numbers its
/// chunks covers chunks <see cref="Chunk"/>..<see cref="ToChunk"/>.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record CallItem(
    [property: Id(0)] long Index,
    [property: Id(1)] CallItemKind Kind,
    [property: Id(2)] long Seq,
    [property: Id(3)] long? Chunk,
    [property: Id(4)] long TimestampMs,
    [property: Id(5)] byte[]? Audio,
    [property: Id(6)] string? Digit,
    [property: Id(7)] long? DurationMs,
    [property: Id(8)] string? MarkName,
    [property: Id(9)] long ToSeq = 0,
    [property: Id(10)] long Count = 0,
    [property: Id(11)] CallTrack Track = CallTrack.Untracked,
    [property: Id(12)] long? ToChunk = null)
{
    /// <summary>Bytes of audio this item holds, for the byte budgets.</summary>
    public int Bytes => Audio?.Length ?? 0;

    // The items a session makes; the forwarder gives each its index when it queues it.
    public static CallItem Media(long seq, long? chunk, long timestampMs, byte[] audio, CallTrack track = CallTrack.Untracked) =>
        new(0, CallItemKind.Media, seq, chunk, timestampMs, audio, null, null, null, Track: track);

    public static CallItem MalformedMedia(long seq, long? chunk, long timestampMs, CallTrack track = CallTrack.Untracked) =>
        new(0, CallItemKind.Malformed, seq, chunk, timestampMs, null, null, null, null, Track: track);

    public static CallItem Dtmf(long seq, long timestampMs, string? digit, long? durationMs) =>
        new(0, CallItemKind.Dtmf, seq, null, timestampMs, null, digit, durationMs, null);

    public static CallItem Mark(long seq, long timestampMs, string? name) =>
        new(0, CallItemKind.Mark, seq, null, timestampMs, null, null, null, name);
}

/// <summary>How a call ended.</summary>
[GenerateSerializer, Immutable]
public sealed record CallStop(
    [property: Id(0)] string Reason,
    [property: Id(1)] long? Seq,
    [property: Id(2)] string ConnectionId);

/// <summary>
/// The grain's answer to every call. Items with an index at or below <see cref="SettledIndex"/> are settled
/// (published, or dropped for a reason that was counted), so the gateway may forget them.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record CallAck(
    [property: Id(0)] long SettledIndex,
    [property: Id(1)] int Published,
    [property: Id(2)] int Duplicates,
    [property: Id(3)] int GapsRecorded,
    [property: Id(4)] long MissingFrames,
    [property: Id(5)] int Overflowed,
    [property: Id(6)] int Buffered,
    [property: Id(7)] CallAckStatus Status,
    [property: Id(8)] int Malformed = 0);

[GenerateSerializer]
public enum CallAckStatus
{
    Ok = 0,
    /// <summary>Redis is unreachable; items wait in the grain's bounded buffer.</summary>
    Buffering = 1,
    /// <summary>The call was never started (e.g. the grain moved and lost its activation); send Start again.</summary>
    NotStarted = 2,
    /// <summary>The call already ended; nothing more is accepted.</summary>
    Ended = 3,
    /// <summary>Another live connection owns this stream id.</summary>
    Conflict = 4,

    /// <summary>
    /// Redis is connected but not keeping up: the grain took nothing of this batch. Keep the items, pause, send again;
    /// the call stays presented (this is pushback, not a lost silo).
    /// </summary>
    Busy = 5,
}

/// <summary>
/// The cluster-wide feature flags and where their last change came from. <see cref="Epoch"/> names the stored record
/// (Unix ms of its creation): a record lost and created again starts its <see cref="Version"/> at 1 under a new epoch,
/// so a change is newer when its (epoch, version) is, never by the version alone. Epoch 0: no record written yet.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record IngestFlags(
    [property: Id(0)] bool SupportExotel,
    [property: Id(1)] long Version,
    [property: Id(2)] string Source,
    [property: Id(3)] DateTimeOffset ChangedAt,
    [property: Id(4)] long Epoch = 0)
{
    /// <summary>Whether this is a later state of the flags than <paramref name="other"/>.</summary>
    public bool IsNewerThan(IngestFlags other) => Epoch != other.Epoch ? Epoch > other.Epoch : Version > other.Version;
}
