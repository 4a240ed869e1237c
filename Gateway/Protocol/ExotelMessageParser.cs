using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using System.Text.Json;

namespace Ingest.Gateway.Protocol;

/// <summary>
/// Parses Exotel AgentStream text frames leniently (CONTRACT §5): snake_case or camelCase keys,
/// numbers as JSON numbers or numeric strings with "Hz"/"kbps" suffixes, unknown events and fields
/// ignored and counted. Never throws; every rejection is a <see cref="ProtocolError"/>.
/// Top-level fields (stream_sid, sequence_number) are checked for every event; an event's own
/// object (start, media, ...) is read only for that event and otherwise counted as unknown. The message's size has
/// one limit, MAX_MESSAGE_BYTES, enforced before the parser sees it (WebSocketMessageReader: close 1009); the parser
/// bounds only what a message holds (field lengths, map entries).
/// </summary>
public static class ExotelMessageParser
{
    public const int MaxStreamIdLength = 128;

    // Parallel arrays: the canonical spelling is reused as EventName so the common case allocates nothing.
    private static readonly string[] KnownEvents = ["connected", "start", "media", "dtmf", "mark", "stop"];

    private static readonly ExotelEventKind[] KnownKinds =
    [
        ExotelEventKind.Connected, ExotelEventKind.Start, ExotelEventKind.Media,
        ExotelEventKind.Dtmf, ExotelEventKind.Mark, ExotelEventKind.Stop,
    ];

    public static bool TryParse(ReadOnlySpan<byte> utf8Json, [NotNullWhen(true)] out ExotelMessage? message, out ProtocolError error) =>
        TryParse(utf8Json, out message, out error, out _);

    /// <summary>
    /// As <see cref="TryParse(ReadOnlySpan{byte}, out ExotelMessage?, out ProtocolError)"/>; <paramref name="kind"/> is the
    /// event the frame names even when it fails (a start that cannot be used is refused at once, CONTRACT §5).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> utf8Json, [NotNullWhen(true)] out ExotelMessage? message, out ProtocolError error, out ExotelEventKind kind)
    {
        message = null;
        kind = ExotelEventKind.Unknown;
        var json = ProtocolJson.SkipBom(utf8Json);
        try
        {
            // The event decides which fields matter, and senders may put it after the objects it
            // governs, so find it first. In practice it is the first key and this costs one token.
            if (!ProtocolJson.TryFindEvent(json, KnownEvents, out var eventName, out error))
            {
                return false;
            }

            kind = Classify(eventName);
            return TryParseBody(json, kind, eventName, out message, out error);
        }
        catch (JsonException)
        {
            error = ProtocolJson.InvalidJson;
            return false;
        }
        catch (InvalidOperationException)
        {
            // Utf8JsonReader reports invalid UTF-8 inside strings this way.
            error = ProtocolJson.InvalidJson;
            return false;
        }
    }

    public static bool TryParseSampleRateQuery(string? value, out int? sampleRate, out ProtocolError error)
    {
        sampleRate = null;
        error = default;
        if (string.IsNullOrWhiteSpace(value))
        {
            return true;
        }

        if (value.Length > 32 || !Ascii.IsValid(value))
        {
            error = new(ProtocolErrorKind.InvalidNumber, "sample-rate query is not a number");
            return false;
        }

        Span<byte> bytes = stackalloc byte[32];
        var length = Encoding.ASCII.GetBytes(value, bytes);
        var status = ProtocolJson.ParseInteger(bytes[..length], NumberUnit.Hertz, out var hz);
        return ProtocolJson.TryMapSampleRate(status, hz, "sample-rate query", out sampleRate, out error);
    }

    public static bool IsValidStreamId(ReadOnlySpan<char> id)
    {
        if (id.IsEmpty || id.Length > MaxStreamIdLength)
        {
            return false;
        }

        foreach (var c in id)
        {
            if (!ProtocolJson.IsStreamIdChar(c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>True for the only rates Exotel streams: 8000, 16000 and 24000 Hz.</summary>
    public static bool IsSupportedSampleRate(long hz) => hz is 8000 or 16000 or 24000;

    private static ExotelEventKind Classify(string eventName)
    {
        for (var i = 0; i < KnownEvents.Length; i++)
        {
            if (string.Equals(eventName, KnownEvents[i], StringComparison.OrdinalIgnoreCase))
            {
                return KnownKinds[i];
            }
        }

        return ExotelEventKind.Unknown;
    }

    private static bool TryParseBody(
        ReadOnlySpan<byte> json, ExotelEventKind kind, string eventName, out ExotelMessage? message, out ProtocolError error)
    {
        message = null;
        error = default;
        var reader = new Utf8JsonReader(json, ProtocolJson.ReaderOptions);
        reader.Read(); // StartObject, checked by TryFindEvent
        var d = default(Draft);
        var sawEvent = false;

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool ok;
            if (!sawEvent && ProtocolJson.IsEventKey(ref reader))
            {
                sawEvent = true;
                reader.Skip();
                continue;
            }
            else if (ProtocolJson.NameIs(ref reader, "stream_sid"u8, "streamSid"u8))
            {
                reader.Read();
                ok = ProtocolJson.TryReadStreamId(ref reader, "stream_sid", out d.StreamSid, out error);
            }
            else if (ProtocolJson.NameIs(ref reader, "sequence_number"u8, "sequenceNumber"u8))
            {
                reader.Read();
                ok = ProtocolJson.TryReadNonNegative(ref reader, "sequence_number", out d.SequenceNumber, out error);
            }
            else if (ProtocolJson.NameIs(ref reader, "call_sid"u8, "callSid"u8))
            {
                reader.Read();
                ok = ProtocolJson.ReadOptionalText(ref reader, "call_sid", out d.TopCallSid, ref d.UnknownFieldCount);
            }
            else if (ProtocolJson.NameIs(ref reader, "account_sid"u8, "accountSid"u8))
            {
                reader.Read();
                ok = ProtocolJson.ReadOptionalText(ref reader, "account_sid", out d.TopAccountSid, ref d.UnknownFieldCount);
            }
            else if (kind == ExotelEventKind.Media && reader.ValueTextEquals("track"u8))
            {
                reader.Read();
                ok = ProtocolJson.ReadOptionalText(ref reader, "track", out d.TopTrack, ref d.UnknownFieldCount);
            }
            else if (kind == ExotelEventKind.Start && reader.ValueTextEquals("start"u8))
            {
                reader.Read();
                ok = TryReadStart(json, ref reader, ref d, out error);
            }
            else if (kind == ExotelEventKind.Media && reader.ValueTextEquals("media"u8))
            {
                reader.Read();
                ok = TryReadMedia(ref reader, ref d, out error);
            }
            else if (kind == ExotelEventKind.Dtmf && reader.ValueTextEquals("dtmf"u8))
            {
                reader.Read();
                ok = TryReadDtmf(ref reader, ref d, out error);
            }
            else if (kind == ExotelEventKind.Mark && reader.ValueTextEquals("mark"u8))
            {
                reader.Read();
                ok = TryReadMark(ref reader, ref d, out error);
            }
            else if (kind == ExotelEventKind.Stop && reader.ValueTextEquals("stop"u8))
            {
                reader.Read();
                ok = TryReadStop(ref reader, ref d, out error);
            }
            else
            {
                d.UnknownFieldCount++;
                reader.Skip();
                continue;
            }

            if (!ok)
            {
                return false;
            }
        }

        // Past the root's closing brace only whitespace may follow; the reader throws otherwise.
        reader.Read();

        var streamSid = d.StreamSid ?? d.StartStreamSid;
        switch (kind)
        {
            case ExotelEventKind.Start when streamSid is null:
                error = new(ProtocolErrorKind.MissingField, "start.stream_sid is missing");
                return false;
            case ExotelEventKind.Media when d.Payload is null && d.PayloadError is null:
                error = new(ProtocolErrorKind.MissingField, "media.payload is missing");
                return false;
            case ExotelEventKind.Dtmf when d.Digit is null:
                error = new(ProtocolErrorKind.MissingField, "dtmf.digit is missing");
                return false;
        }

        // CONTRACT §5: the declared encoding decides how the payload decodes; a ";rate=N" suffix is a rate too (the
        // media_format's sample_rate, when present, wins), and only 8000, 16000 and 24000 exist.
        var encoding = AudioEncodings.Classify(d.Encoding, out var suffixRate);
        int? encodingRate = null;
        if (kind == ExotelEventKind.Start && d.SampleRate is null && suffixRate is { } hz)
        {
            if (!IsSupportedSampleRate(hz))
            {
                error = new(ProtocolErrorKind.UnsupportedSampleRate, $"start.media_format.encoding rate {hz} Hz is not 8000, 16000 or 24000");
                return false;
            }

            encodingRate = (int)hz;
        }

        var trackName = d.Track ?? d.TopTrack;
        var knownTrack = true;
        var track = kind == ExotelEventKind.Media ? AudioTracks.Classify(trackName, out knownTrack) : AudioTrack.None;

        message = new ExotelMessage
        {
            Kind = kind,
            EventName = eventName,
            StreamSid = streamSid,
            SequenceNumber = d.SequenceNumber,
            CallSid = d.CallSid ?? d.TopCallSid,
            AccountSid = d.AccountSid ?? d.TopAccountSid,
            From = d.From,
            To = d.To,
            CustomParameters = d.CustomParameters,
            Encoding = d.Encoding,
            SourceEncoding = encoding,
            SampleRate = d.SampleRate ?? encodingRate,
            BitRate = d.BitRate,
            Chunk = d.Chunk,
            Track = track,
            TrackName = trackName,
            TrackUnknown = !knownTrack,
            Timestamp = d.Timestamp,
            Payload = d.Payload,
            PayloadError = d.PayloadError,
            Digit = d.Digit,
            DurationMs = d.DurationMs,
            MarkName = d.MarkName,
            StopReason = d.StopReason,
            UnknownFieldCount = d.UnknownFieldCount,
        };
        return true;
    }

    private static bool TryReadStart(ReadOnlySpan<byte> json, ref Utf8JsonReader reader, ref Draft d, out ProtocolError error)
    {
        if (!ProtocolJson.TryEnterObject(ref reader, "start", out var present, out error))
        {
            return false;
        }

        if (!present)
        {
            return true;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool ok;
            if (ProtocolJson.NameIs(ref reader, "stream_sid"u8, "streamSid"u8))
            {
                reader.Read();
                ok = ProtocolJson.TryReadStreamId(ref reader, "start.stream_sid", out d.StartStreamSid, out error);
            }
            else if (ProtocolJson.NameIs(ref reader, "call_sid"u8, "callSid"u8))
            {
                reader.Read();
                ok = ProtocolJson.ReadOptionalText(ref reader, "start.call_sid", out d.CallSid, ref d.UnknownFieldCount);
            }
            else if (ProtocolJson.NameIs(ref reader, "account_sid"u8, "accountSid"u8))
            {
                reader.Read();
                ok = ProtocolJson.ReadOptionalText(ref reader, "start.account_sid", out d.AccountSid, ref d.UnknownFieldCount);
            }
            else if (reader.ValueTextEquals("from"u8))
            {
                reader.Read();
                ok = ProtocolJson.ReadOptionalText(ref reader, "start.from", out d.From, ref d.UnknownFieldCount);
            }
            else if (reader.ValueTextEquals("to"u8))
            {
                reader.Read();
                ok = ProtocolJson.ReadOptionalText(ref reader, "start.to", out d.To, ref d.UnknownFieldCount);
            }
            else if (ProtocolJson.NameIs(ref reader, "custom_parameters"u8, "customParameters"u8))
            {
                reader.Read();
                ok = ProtocolJson.ReadOptionalStringMap(json, ref reader, out d.CustomParameters, ref d.UnknownFieldCount);
            }
            else if (ProtocolJson.NameIs(ref reader, "media_format"u8, "mediaFormat"u8))
            {
                reader.Read();
                ok = TryReadMediaFormat(ref reader, ref d, out error);
            }
            else
            {
                d.UnknownFieldCount++;
                reader.Skip();
                continue;
            }

            if (!ok)
            {
                return false;
            }
        }

        return true;
    }

    private static bool TryReadMediaFormat(ref Utf8JsonReader reader, ref Draft d, out ProtocolError error)
    {
        if (!ProtocolJson.TryEnterObject(ref reader, "start.media_format", out var present, out error))
        {
            return false;
        }

        if (!present)
        {
            return true;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool ok;
            if (reader.ValueTextEquals("encoding"u8))
            {
                reader.Read();
                ok = ProtocolJson.ReadOptionalText(ref reader, "start.media_format.encoding", out d.Encoding, ref d.UnknownFieldCount);
            }
            else if (ProtocolJson.NameIs(ref reader, "sample_rate"u8, "sampleRate"u8))
            {
                reader.Read();
                ok = ProtocolJson.TryReadSampleRate(ref reader, "start.media_format.sample_rate", out d.SampleRate, out error);
            }
            else if (ProtocolJson.NameIs(ref reader, "bit_rate"u8, "bitRate"u8))
            {
                reader.Read();

                // Informational only ("16" is really a bit depth), so an odd value is dropped, not fatal.
                var status = ProtocolJson.ReadInteger(ref reader, NumberUnit.BitRate, out var bitRate);
                d.BitRate = status == NumberStatus.Ok && bitRate <= int.MaxValue ? (int)bitRate : null;
                ok = true;
            }
            else
            {
                d.UnknownFieldCount++;
                reader.Skip();
                continue;
            }

            if (!ok)
            {
                return false;
            }
        }

        return true;
    }

    private static bool TryReadMedia(ref Utf8JsonReader reader, ref Draft d, out ProtocolError error)
    {
        if (!ProtocolJson.TryEnterObject(ref reader, "media", out var present, out error))
        {
            return false;
        }

        if (!present)
        {
            return true;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool ok;
            if (reader.ValueTextEquals("chunk"u8))
            {
                reader.Read();
                ok = ProtocolJson.TryReadNonNegative(ref reader, "media.chunk", out d.Chunk, out error);
            }
            else if (reader.ValueTextEquals("track"u8))
            {
                reader.Read();
                ok = ProtocolJson.ReadOptionalText(ref reader, "media.track", out d.Track, ref d.UnknownFieldCount);
            }
            else if (reader.ValueTextEquals("timestamp"u8))
            {
                reader.Read();
                ok = ProtocolJson.TryReadNonNegative(ref reader, "media.timestamp", out d.Timestamp, out error);
            }
            else if (ProtocolJson.NameIs(ref reader, "payload"u8, "Payload"u8))
            {
                reader.Read();
                // A payload that cannot be decoded still leaves a media message with its number: the frame was received and
                // is recorded as a malformed gap (CONTRACT §7), not mistaken for loss on the way. An odd byte count is
                // published byte for byte (Exotel's own simulator sends such payloads) and only counted.
                // The last payload field wins, whether usable or not.
                d.PayloadError = null;
                if (!ProtocolJson.TryReadPayload(ref reader, "media.payload", out d.Payload, out var payloadError))
                {
                    d.Payload = null;
                    d.PayloadError = payloadError.Detail;
                    if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                    {
                        reader.Skip();
                    }
                }

                ok = true;
            }
            else
            {
                d.UnknownFieldCount++;
                reader.Skip();
                continue;
            }

            if (!ok)
            {
                return false;
            }
        }

        return true;
    }

    private static bool TryReadDtmf(ref Utf8JsonReader reader, ref Draft d, out ProtocolError error)
    {
        if (!ProtocolJson.TryEnterObject(ref reader, "dtmf", out var present, out error))
        {
            return false;
        }

        if (!present)
        {
            return true;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool ok;
            if (reader.ValueTextEquals("digit"u8))
            {
                reader.Read();
                ok = ProtocolJson.TryReadDigit(ref reader, "dtmf.digit", out d.Digit, out error);
            }
            else if (reader.ValueTextEquals("duration"u8))
            {
                reader.Read();
                ok = ProtocolJson.TryReadNonNegative(ref reader, "dtmf.duration", out d.DurationMs, out error);
            }
            else
            {
                d.UnknownFieldCount++;
                reader.Skip();
                continue;
            }

            if (!ok)
            {
                return false;
            }
        }

        return true;
    }

    private static bool TryReadMark(ref Utf8JsonReader reader, ref Draft d, out ProtocolError error)
    {
        if (!ProtocolJson.TryEnterObject(ref reader, "mark", out var present, out error))
        {
            return false;
        }

        if (!present)
        {
            return true;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("name"u8))
            {
                reader.Read();
                if (!ProtocolJson.TryReadText(ref reader, "mark.name", out d.MarkName, out error))
                {
                    return false;
                }
            }
            else
            {
                d.UnknownFieldCount++;
                reader.Skip();
            }
        }

        return true;
    }

    private static bool TryReadStop(ref Utf8JsonReader reader, ref Draft d, out ProtocolError error)
    {
        if (!ProtocolJson.TryEnterObject(ref reader, "stop", out var present, out error))
        {
            return false;
        }

        if (!present)
        {
            return true;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool ok;
            if (ProtocolJson.NameIs(ref reader, "call_sid"u8, "callSid"u8))
            {
                reader.Read();
                ok = ProtocolJson.ReadOptionalText(ref reader, "stop.call_sid", out d.CallSid, ref d.UnknownFieldCount);
            }
            else if (ProtocolJson.NameIs(ref reader, "account_sid"u8, "accountSid"u8))
            {
                reader.Read();
                ok = ProtocolJson.ReadOptionalText(ref reader, "stop.account_sid", out d.AccountSid, ref d.UnknownFieldCount);
            }
            else if (reader.ValueTextEquals("reason"u8))
            {
                reader.Read();
                ok = ProtocolJson.ReadOptionalText(ref reader, "stop.reason", out d.StopReason, ref d.UnknownFieldCount);
            }
            else
            {
                d.UnknownFieldCount++;
                reader.Skip();
                continue;
            }

            if (!ok)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Everything read so far; turned into an <see cref="ExotelMessage"/> once the frame is known good.</summary>
    private struct Draft
    {
        public string? StreamSid;
        public string? StartStreamSid;
        public long? SequenceNumber;
        public string? TopCallSid;
        public string? TopAccountSid;
        public string? CallSid;
        public string? AccountSid;
        public string? From;
        public string? To;
        public Dictionary<string, string>? CustomParameters;
        public string? Encoding;
        public int? SampleRate;
        public int? BitRate;
        public long? Chunk;
        public string? Track;
        public string? TopTrack;
        public long? Timestamp;
        public byte[]? Payload;
        public string? PayloadError;
        public string? Digit;
        public long? DurationMs;
        public string? MarkName;
        public string? StopReason;
        public int UnknownFieldCount;
    }
}

internal enum NumberStatus { Ok, Absent, Invalid, Negative, Overflow }

internal enum NumberUnit { None, Hertz, BitRate }

/// <summary>Field readers shared by the Exotel and native parsers. All work on a positioned <see cref="Utf8JsonReader"/>.</summary>
internal static class ProtocolJson
{
    /// <summary>Longest text value (sid, number, custom parameter) we turn into a string.</summary>
    internal const int MaxTextFieldBytes = 1024;

    internal const int MaxMapEntries = 64;

    internal const int MaxEventNameBytes = 64;

    internal static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 32 };

    internal static readonly ProtocolError InvalidJson = new(ProtocolErrorKind.InvalidJson, "message is not valid JSON");

    internal static ReadOnlySpan<byte> SkipBom(ReadOnlySpan<byte> json) =>
        json.StartsWith("\uFEFF"u8) ? json[3..] : json;

    internal static bool IsStreamIdChar(int c) =>
        c is (>= 'A' and <= 'Z') or (>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '_' or ':' or '-';

    internal static bool NameIs(ref Utf8JsonReader reader, ReadOnlySpan<byte> snake, ReadOnlySpan<byte> camel) =>
        reader.ValueTextEquals(snake) || reader.ValueTextEquals(camel);

    internal static bool IsEventKey(ref Utf8JsonReader reader) => NameIs(ref reader, "event"u8, "Event"u8);

    /// <summary>
    /// Reads the root far enough to find the first <c>event</c>/<c>Event</c> key. Canonical names come
    /// back as the given literals so the common case allocates nothing.
    /// </summary>
    internal static bool TryFindEvent(ReadOnlySpan<byte> json, string[] knownNames, [NotNullWhen(true)] out string? eventName, out ProtocolError error)
    {
        eventName = null;
        error = default;
        var reader = new Utf8JsonReader(json, ReaderOptions);
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            error = new(ProtocolErrorKind.NotAnObject, "message is not a JSON object");
            return false;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (!IsEventKey(ref reader))
            {
                reader.Skip();
                continue;
            }

            reader.Read();
            if (reader.TokenType != JsonTokenType.String)
            {
                error = new(ProtocolErrorKind.MissingEvent, "event is not a string");
                return false;
            }

            if (reader.ValueSpan.Length > MaxEventNameBytes)
            {
                error = new(ProtocolErrorKind.TooLarge, $"event is longer than {MaxEventNameBytes} bytes");
                return false;
            }

            if (!reader.ValueIsEscaped)
            {
                foreach (var known in knownNames)
                {
                    if (Ascii.Equals(reader.ValueSpan, known))
                    {
                        eventName = known;
                        return true;
                    }
                }
            }

            eventName = reader.GetString()!;
            if (eventName.Length == 0)
            {
                error = new(ProtocolErrorKind.MissingEvent, "event is empty");
                return false;
            }

            return true;
        }

        reader.Read(); // throws on trailing garbage, so a broken frame reports InvalidJson first
        error = new(ProtocolErrorKind.MissingEvent, "event is missing");
        return false;
    }

    /// <summary>
    /// Checks that the reader is on an object (true, present) or null (true, absent); anything else
    /// fails with <see cref="ProtocolErrorKind.InvalidFieldType"/>. On success <paramref name="error"/> is default.
    /// </summary>
    internal static bool TryEnterObject(ref Utf8JsonReader reader, string field, out bool present, out ProtocolError error)
    {
        error = default;
        present = reader.TokenType == JsonTokenType.StartObject;
        if (present || reader.TokenType == JsonTokenType.Null)
        {
            return true;
        }

        error = new(ProtocolErrorKind.InvalidFieldType, $"{field} is not an object");
        return false;
    }

    internal static bool TryReadStreamId(ref Utf8JsonReader reader, string field, out string? id, out ProtocolError error)
    {
        id = null;
        error = default;
        if (reader.TokenType == JsonTokenType.Null)
        {
            return true;
        }

        if (reader.TokenType == JsonTokenType.String)
        {
            if (!reader.ValueIsEscaped)
            {
                if (IsValidStreamIdUtf8(reader.ValueSpan))
                {
                    id = Encoding.ASCII.GetString(reader.ValueSpan);
                    return true;
                }
            }
            else if (reader.ValueSpan.Length <= ExotelMessageParser.MaxStreamIdLength * 6)
            {
                // An escape (\u0041) can stand for a legal character; at most 6 bytes per character.
                var text = reader.GetString()!;
                if (ExotelMessageParser.IsValidStreamId(text))
                {
                    id = text;
                    return true;
                }
            }
        }

        error = new(ProtocolErrorKind.InvalidStreamId, $"{field} must be 1-{ExotelMessageParser.MaxStreamIdLength} characters of A-Z a-z 0-9 . _ : -");
        return false;
    }

    private static bool IsValidStreamIdUtf8(ReadOnlySpan<byte> id)
    {
        if (id.IsEmpty || id.Length > ExotelMessageParser.MaxStreamIdLength)
        {
            return false;
        }

        foreach (var b in id)
        {
            if (!IsStreamIdChar(b))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A string, or a number kept as its JSON text; null means absent.</summary>
    internal static bool TryReadText(ref Utf8JsonReader reader, string field, out string? text, out ProtocolError error)
    {
        text = null;
        error = default;
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return true;
            case JsonTokenType.String or JsonTokenType.Number when reader.ValueSpan.Length > MaxTextFieldBytes:
                error = new(ProtocolErrorKind.TooLarge, $"{field} is longer than {MaxTextFieldBytes} bytes");
                return false;
            case JsonTokenType.String:
                text = reader.GetString();
                return true;
            case JsonTokenType.Number:
                text = Encoding.ASCII.GetString(reader.ValueSpan);
                return true;
            default:
                error = new(ProtocolErrorKind.InvalidFieldType, $"{field} is not a string");
                return false;
        }
    }

    /// <summary>
    /// An optional text field: a value that cannot be used (an object, an over-long string) is left out and counted in
    /// <paramref name="ignored"/>, never fatal (CONTRACT §5: such a start still starts the call).
    /// </summary>
    internal static bool ReadOptionalText(ref Utf8JsonReader reader, string field, out string? text, ref int ignored)
    {
        if (!TryReadText(ref reader, field, out text, out _))
        {
            text = null;
            ignored++;
            if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
            {
                reader.Skip();
            }
        }

        return true;
    }

    /// <summary>
    /// An optional map of text values (custom parameters): at most <see cref="MaxMapEntries"/> entries are kept; entries
    /// beyond it, over-long keys or values, and a map that is not an object are left out and counted, never fatal.
    /// </summary>
    internal static bool ReadOptionalStringMap(ReadOnlySpan<byte> json, ref Utf8JsonReader reader, out Dictionary<string, string>? map, ref int ignored)
    {
        map = null;
        if (reader.TokenType == JsonTokenType.Null)
        {
            return true;
        }

        if (reader.TokenType != JsonTokenType.StartObject)
        {
            ignored++;
            if (reader.TokenType == JsonTokenType.StartArray)
            {
                reader.Skip();
            }

            return true;
        }

        map = new Dictionary<string, string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var keyUsable = reader.ValueSpan.Length <= MaxTextFieldBytes;
            var key = keyUsable ? reader.GetString()! : null;
            reader.Read();
            var raw = RawValue(json, ref reader);

            if (key is null || raw.Length > MaxTextFieldBytes || map.Count >= MaxMapEntries)
            {
                ignored++;
                continue;
            }

            map[key] = reader.TokenType == JsonTokenType.String ? reader.GetString()! : Encoding.UTF8.GetString(raw);
        }

        return true;
    }

    /// <summary>An object of string values; other values become their raw JSON text. Null means absent.</summary>
    internal static bool TryReadStringMap(
        ReadOnlySpan<byte> json, ref Utf8JsonReader reader, string field, out Dictionary<string, string>? map, out ProtocolError error)
    {
        map = null;
        if (!TryEnterObject(ref reader, field, out var present, out error))
        {
            return false;
        }

        if (!present)
        {
            return true;
        }

        map = new Dictionary<string, string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (map.Count >= MaxMapEntries)
            {
                error = new(ProtocolErrorKind.TooLarge, $"{field} has more than {MaxMapEntries} entries");
                return false;
            }

            if (reader.ValueSpan.Length > MaxTextFieldBytes)
            {
                error = new(ProtocolErrorKind.TooLarge, $"a {field} key is longer than {MaxTextFieldBytes} bytes");
                return false;
            }

            var key = reader.GetString()!;
            reader.Read();
            var raw = RawValue(json, ref reader);

            if (raw.Length > MaxTextFieldBytes)
            {
                error = new(ProtocolErrorKind.TooLarge, $"a {field} value is longer than {MaxTextFieldBytes} bytes");
                return false;
            }

            map[key] = reader.TokenType == JsonTokenType.String ? reader.GetString()! : Encoding.UTF8.GetString(raw);
        }

        return true;
    }

    /// <summary>The value under the reader as JSON text (an object or array whole; the reader ends on its last token).</summary>
    private static ReadOnlySpan<byte> RawValue(ReadOnlySpan<byte> json, ref Utf8JsonReader reader)
    {
        if (reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.StartArray))
        {
            return reader.ValueSpan;
        }

        var start = checked((int)reader.TokenStartIndex);
        reader.Skip();
        return json[start..(checked((int)reader.TokenStartIndex) + 1)];
    }

    /// <summary>A whole number &gt;= 0, from a JSON number or a numeric string. Null or "" means absent.</summary>
    internal static bool TryReadNonNegative(ref Utf8JsonReader reader, string field, out long? value, out ProtocolError error)
    {
        value = null;
        error = default;
        switch (ReadInteger(ref reader, NumberUnit.None, out var parsed))
        {
            case NumberStatus.Ok:
                value = parsed;
                return true;
            case NumberStatus.Absent:
                return true;
            case NumberStatus.Negative:
                error = new(ProtocolErrorKind.NumberOutOfRange, $"{field} is negative");
                return false;
            case NumberStatus.Overflow:
                error = new(ProtocolErrorKind.NumberOutOfRange, $"{field} is larger than {long.MaxValue}");
                return false;
            default:
                error = new(ProtocolErrorKind.InvalidNumber, $"{field} is not a whole number");
                return false;
        }
    }

    internal static bool TryReadSampleRate(ref Utf8JsonReader reader, string field, out int? sampleRate, out ProtocolError error)
    {
        var status = ReadInteger(ref reader, NumberUnit.Hertz, out var hz);
        return TryMapSampleRate(status, hz, field, out sampleRate, out error);
    }

    internal static bool TryMapSampleRate(NumberStatus status, long hz, string field, out int? sampleRate, out ProtocolError error)
    {
        sampleRate = null;
        error = default;
        switch (status)
        {
            case NumberStatus.Absent:
                return true;
            case NumberStatus.Ok when ExotelMessageParser.IsSupportedSampleRate(hz):
                sampleRate = (int)hz;
                return true;
            case NumberStatus.Ok:
                error = new(ProtocolErrorKind.UnsupportedSampleRate, $"{field} {hz} Hz is not 8000, 16000 or 24000");
                return false;
            case NumberStatus.Negative or NumberStatus.Overflow:
                error = new(ProtocolErrorKind.UnsupportedSampleRate, $"{field} is not 8000, 16000 or 24000");
                return false;
            default:
                error = new(ProtocolErrorKind.InvalidNumber, $"{field} is not a number of Hz");
                return false;
        }
    }

    internal static NumberStatus ReadInteger(ref Utf8JsonReader reader, NumberUnit unit, out long value)
    {
        value = 0;
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return NumberStatus.Absent;
            case JsonTokenType.Number:
                return ParseInteger(reader.ValueSpan, NumberUnit.None, out value);
            case JsonTokenType.String when !reader.ValueIsEscaped:
                return ParseInteger(reader.ValueSpan, unit, out value);
            case JsonTokenType.String when reader.ValueSpan.Length <= 64:
                Span<byte> unescaped = stackalloc byte[64];
                var length = reader.CopyString(unescaped);
                return ParseInteger(unescaped[..length], unit, out value);
            default:
                return NumberStatus.Invalid;
        }
    }

    /// <summary>
    /// Parses optional whitespace, an optional '-', ASCII digits and the unit's optional suffix
    /// ("Hz" for rates, "kbps"/"bps" for bit rates, any case). No fractions or exponents.
    /// </summary>
    internal static NumberStatus ParseInteger(ReadOnlySpan<byte> text, NumberUnit unit, out long value)
    {
        value = 0;
        text = text[Ascii.Trim(text)];
        if (text.IsEmpty)
        {
            return NumberStatus.Absent;
        }

        text = unit switch
        {
            NumberUnit.Hertz => StripSuffix(text, "hz"u8),
            NumberUnit.BitRate => StripSuffix(StripSuffix(text, "kbps"u8), "bps"u8),
            _ => text,
        };

        var negative = !text.IsEmpty && text[0] == (byte)'-';
        if (negative)
        {
            text = text[1..];
        }

        if (text.IsEmpty)
        {
            return NumberStatus.Invalid;
        }

        // "8000.0" and "2.0" are those integers (CONTRACT §5); "2.5" is not a whole number.
        var point = text.IndexOf((byte)'.');
        if (point >= 0)
        {
            if (point == 0 || text[(point + 1)..].IndexOfAnyExcept((byte)'0') >= 0)
            {
                return NumberStatus.Invalid;
            }

            text = text[..point];
        }

        const ulong MaxInt64 = long.MaxValue;
        ulong accumulated = 0;
        var overflow = false;
        foreach (var b in text)
        {
            var digit = (uint)(b - '0');
            if (digit > 9)
            {
                return NumberStatus.Invalid;
            }

            if (!overflow)
            {
                overflow = accumulated > (MaxInt64 - digit) / 10;
                accumulated = overflow ? accumulated : (accumulated * 10) + digit;
            }
        }

        if (negative && (overflow || accumulated != 0))
        {
            return NumberStatus.Negative;
        }

        if (overflow)
        {
            return NumberStatus.Overflow;
        }

        value = (long)accumulated;
        return NumberStatus.Ok;
    }

    private static ReadOnlySpan<byte> StripSuffix(ReadOnlySpan<byte> text, ReadOnlySpan<byte> suffix) =>
        text.Length > suffix.Length && Ascii.EqualsIgnoreCase(text[^suffix.Length..], suffix)
            ? text[..^suffix.Length].TrimEnd((byte)' ')
            : text;

    /// <summary>One DTMF key: 0-9, *, #, A-D (a-d is upper-cased). Returns interned strings.</summary>
    internal static bool TryReadDigit(ref Utf8JsonReader reader, string field, out string? digit, out ProtocolError error)
    {
        digit = null;
        error = default;
        if (reader.TokenType == JsonTokenType.Null)
        {
            return true;
        }

        if (reader.TokenType is JsonTokenType.String or JsonTokenType.Number && reader.ValueSpan.Length <= 16)
        {
            Span<byte> buffer = stackalloc byte[16];
            scoped var text = reader.ValueSpan;
            if (reader.ValueIsEscaped)
            {
                text = buffer[..reader.CopyString(buffer)];
            }

            text = text[Ascii.Trim(text)];
            if (text.IsEmpty)
            {
                return true;
            }

            digit = text.Length == 1 ? DigitText(text[0]) : null;
            if (digit is not null)
            {
                return true;
            }
        }

        error = new(ProtocolErrorKind.InvalidDigit, $"{field} must be one of 0-9, *, #, A-D");
        return false;
    }

    private static string? DigitText(byte key) => key switch
    {
        (byte)'0' => "0",
        (byte)'1' => "1",
        (byte)'2' => "2",
        (byte)'3' => "3",
        (byte)'4' => "4",
        (byte)'5' => "5",
        (byte)'6' => "6",
        (byte)'7' => "7",
        (byte)'8' => "8",
        (byte)'9' => "9",
        (byte)'*' => "*",
        (byte)'#' => "#",
        (byte)'A' or (byte)'a' => "A",
        (byte)'B' or (byte)'b' => "B",
        (byte)'C' or (byte)'c' => "C",
        (byte)'D' or (byte)'d' => "D",
        _ => null,
    };

    /// <summary>Decodes a base64 string value into an exactly sized array. Null means absent.</summary>
    internal static bool TryReadPayload(ref Utf8JsonReader reader, string field, out byte[]? payload, out ProtocolError error)
    {
        payload = null;
        error = default;
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return true;
            case JsonTokenType.String when !reader.ValueIsEscaped:
                payload = DecodeBase64(reader.ValueSpan);
                break;
            case JsonTokenType.String:
                // Some encoders write '/' as "\/"; unescape into a pooled buffer first.
                var rented = ArrayPool<byte>.Shared.Rent(reader.ValueSpan.Length);
                try
                {
                    payload = DecodeBase64(rented.AsSpan(0, reader.CopyString(rented)));
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(rented);
                }

                break;
            default:
                error = new(ProtocolErrorKind.InvalidFieldType, $"{field} is not a string");
                return false;
        }

        if (payload is null)
        {
            error = new(ProtocolErrorKind.InvalidBase64, $"{field} is not valid base64");
            return false;
        }

        return true;
    }

    /// <summary>
    /// Standard alphabet, padding optional, no whitespace (Base64.DecodeFromUtf8 would skip it, so the
    /// alphabet is checked here first). Returns null when the text is not base64.
    /// </summary>
    internal static byte[]? DecodeBase64(ReadOnlySpan<byte> text)
    {
        var padding = text.EndsWith("=="u8) ? 2 : text.EndsWith("="u8) ? 1 : 0;
        if (padding > 0 && text.Length % 4 != 0)
        {
            return null;
        }

        var body = text[..^padding];
        var remainder = body.Length % 4;
        if (remainder == 1)
        {
            return null;
        }

        // Vectorised alphabet check: this runs over every byte of every frame.
        if (body.IndexOfAnyExcept(Base64Alphabet) >= 0)
        {
            return null;
        }

        var whole = body.Length - remainder;
        byte[] decoded = body.Length == 0 ? [] : new byte[(whole / 4 * 3) + (remainder == 0 ? 0 : remainder - 1)];
        if (Base64.DecodeFromUtf8(body[..whole], decoded, out _, out var written) != OperationStatus.Done
            || written != whole / 4 * 3)
        {
            return null;
        }

        if (remainder > 0)
        {
            Span<byte> tail = stackalloc byte[4];
            tail.Fill((byte)'=');
            body[whole..].CopyTo(tail);
            if (Base64.DecodeFromUtf8(tail, decoded.AsSpan(written), out _, out var tailWritten) != OperationStatus.Done
                || tailWritten != remainder - 1)
            {
                return null;
            }
        }

        return decoded;
    }

    private static readonly SearchValues<byte> Base64Alphabet =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"u8);
}
