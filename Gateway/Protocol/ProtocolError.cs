namespace Ingest.Gateway.Protocol;

/// <summary>Why a text frame was rejected. New members are only ever appended.</summary>
public enum ProtocolErrorKind
{
    InvalidJson,
    NotAnObject,
    MissingEvent,
    MissingField,
    InvalidNumber,
    NumberOutOfRange,
    UnsupportedSampleRate,
    InvalidBase64,
    InvalidPayloadLength,
    InvalidStreamId,
    TooLarge,

    /// <summary><c>dtmf.digit</c> is not one of 0-9, *, #, A-D.</summary>
    InvalidDigit,

    /// <summary>A field we understand has the wrong JSON type (e.g. <c>media</c> is a string).</summary>
    InvalidFieldType,
}

/// <summary>
/// A rejected frame. <paramref name="Detail"/> names the field in a few words and never quotes the
/// input beyond a parsed number, so it is safe to log and cheap to build.
/// </summary>
public readonly record struct ProtocolError(ProtocolErrorKind Kind, string Detail);
