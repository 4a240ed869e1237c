namespace Ingest.Gateway.Protocol;

public enum ExotelEventKind { Connected, Start, Media, Dtmf, Mark, Stop, Unknown }

/// <summary>
/// One Exotel text frame, with both spellings (snake_case and camelCase) and both number styles
/// (JSON numbers and numeric strings) already folded into one shape. Fields that the event does not
/// carry are null.
/// </summary>
public sealed class ExotelMessage
{
    public required ExotelEventKind Kind { get; init; }

    /// <summary>The event name as sent (e.g. "closed" for an <see cref="ExotelEventKind.Unknown"/> event).</summary>
    public required string EventName { get; init; }

    /// <summary>Top-level <c>stream_sid</c>, else <c>start.stream_sid</c>.</summary>
    public string? StreamSid { get; init; }

    public long? SequenceNumber { get; init; }

    // start (call_sid/account_sid also come from stop, or from the top level)
    public string? CallSid { get; init; }

    public string? AccountSid { get; init; }

    public string? From { get; init; }

    public string? To { get; init; }

    /// <summary>String values as sent; other JSON values as their raw JSON text.</summary>
    public IReadOnlyDictionary<string, string>? CustomParameters { get; init; }

    public string? Encoding { get; init; }

    /// <summary>What <see cref="Encoding"/> declares the payloads to be (PCM16 when absent or unknown).</summary>
    public SourceEncoding SourceEncoding { get; init; }

    /// <summary>8000, 16000 or 24000 when present; anything else is rejected by the parser.</summary>
    public int? SampleRate { get; init; }

    /// <summary>The number as sent with any "kbps"/"bps" suffix removed; informational only.</summary>
    public int? BitRate { get; init; }

    // media
    public long? Chunk { get; init; }

    /// <summary>The media's <c>track</c> (inside <c>media</c> or at the top level), classified; None when absent.</summary>
    public AudioTrack Track { get; init; }

    /// <summary>The <c>track</c> value as sent (for the log line of one that is neither inbound nor outbound).</summary>
    public string? TrackName { get; init; }

    /// <summary>The <c>track</c> names neither inbound nor outbound: taken as inbound, and counted (CONTRACT §5).</summary>
    public bool TrackUnknown { get; init; }

    /// <summary>Milliseconds since the stream started.</summary>
    public long? Timestamp { get; init; }

    /// <summary>The decoded PCM16 LE audio, exactly as long as the base64 says (an odd count is kept byte for byte).</summary>
    public byte[]? Payload { get; init; }

    /// <summary>Set (and <see cref="Payload"/> null) when a media message's payload was present but could not be decoded.</summary>
    public string? PayloadError { get; init; }

    // dtmf
    public string? Digit { get; init; }

    public long? DurationMs { get; init; }

    // mark
    public string? MarkName { get; init; }

    // stop
    public string? StopReason { get; init; }

    /// <summary>Fields ignored at any level the parser reads, for metrics.</summary>
    public int UnknownFieldCount { get; init; }
}
