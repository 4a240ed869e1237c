using System.Collections.ObjectModel;
using System.Text.Json;

namespace Ingest.Gateway.Protocol;

/// <summary>The native client's opening frame (CONTRACT §6), with defaults applied.</summary>
public sealed record NativeStart(string StreamId, int SampleRate, string Encoding, int Channels, IReadOnlyDictionary<string, string> Metadata);

public enum NativeControlKind { Start, Stop, Unknown }

/// <summary>
/// Parses the native protocol's text frames: <c>{"event":"start","stream_id":…}</c> and
/// <c>{"event":"stop"}</c>. Audio travels in binary frames and never passes through here.
/// </summary>
public static class NativeProtocol
{
    public const int DefaultSampleRate = 8000;

    public const string Pcm16LittleEndian = "pcm16le";

    /// <summary>Control frames are small; anything larger is rejected unread.</summary>
    public const int MaxControlBytes = 64 * 1024;

    private static readonly string[] KnownEvents = ["start", "stop"];

    /// <summary>
    /// Never throws. Unknown events succeed with <see cref="NativeControlKind.Unknown"/>;
    /// <paramref name="start"/> is set only for a valid start frame.
    /// </summary>
    public static bool TryParseControl(ReadOnlySpan<byte> utf8Json, out NativeControlKind kind, out NativeStart? start, out ProtocolError error)
    {
        kind = NativeControlKind.Unknown;
        start = null;
        if (utf8Json.Length > MaxControlBytes)
        {
            error = new(ProtocolErrorKind.TooLarge, $"control message is larger than {MaxControlBytes} bytes");
            return false;
        }

        var json = ProtocolJson.SkipBom(utf8Json);
        try
        {
            if (!ProtocolJson.TryFindEvent(json, KnownEvents, out var eventName, out error))
            {
                return false;
            }

            var parsedKind =
                string.Equals(eventName, "start", StringComparison.OrdinalIgnoreCase) ? NativeControlKind.Start
                : string.Equals(eventName, "stop", StringComparison.OrdinalIgnoreCase) ? NativeControlKind.Stop
                : NativeControlKind.Unknown;

            if (parsedKind == NativeControlKind.Start)
            {
                if (!TryParseStart(json, out start, out error))
                {
                    return false;
                }
            }
            else
            {
                // Nothing else to read, but a truncated or trailing-garbage frame is still malformed.
                var reader = new Utf8JsonReader(json, ProtocolJson.ReaderOptions);
                while (reader.Read())
                {
                }
            }

            kind = parsedKind;
            return true;
        }
        catch (JsonException)
        {
            error = ProtocolJson.InvalidJson;
            return false;
        }
        catch (InvalidOperationException)
        {
            error = ProtocolJson.InvalidJson;
            return false;
        }
    }

    private static bool TryParseStart(ReadOnlySpan<byte> json, out NativeStart? start, out ProtocolError error)
    {
        start = null;
        error = default;
        string? streamId = null;
        int? sampleRate = null;
        string? encoding = null;
        long? channels = null;
        Dictionary<string, string>? metadata = null;

        var reader = new Utf8JsonReader(json, ProtocolJson.ReaderOptions);
        reader.Read(); // StartObject, checked by TryFindEvent
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
            else if (ProtocolJson.NameIs(ref reader, "stream_id"u8, "streamId"u8))
            {
                reader.Read();
                ok = ProtocolJson.TryReadStreamId(ref reader, "stream_id", out streamId, out error);
            }
            else if (ProtocolJson.NameIs(ref reader, "sample_rate"u8, "sampleRate"u8))
            {
                reader.Read();
                ok = ProtocolJson.TryReadSampleRate(ref reader, "sample_rate", out sampleRate, out error);
            }
            else if (reader.ValueTextEquals("encoding"u8))
            {
                reader.Read();
                ok = ProtocolJson.TryReadText(ref reader, "encoding", out encoding, out error);
            }
            else if (reader.ValueTextEquals("channels"u8))
            {
                reader.Read();
                ok = ProtocolJson.TryReadNonNegative(ref reader, "channels", out channels, out error);
            }
            else if (reader.ValueTextEquals("metadata"u8))
            {
                reader.Read();
                ok = ProtocolJson.TryReadStringMap(json, ref reader, "metadata", out metadata, out error);
            }
            else
            {
                reader.Skip();
                continue;
            }

            if (!ok)
            {
                return false;
            }
        }

        reader.Read(); // throws on trailing garbage

        if (streamId is null)
        {
            error = new(ProtocolErrorKind.MissingField, "stream_id is missing");
            return false;
        }

        if (encoding is not null && !string.Equals(encoding, Pcm16LittleEndian, StringComparison.OrdinalIgnoreCase))
        {
            error = new(ProtocolErrorKind.MissingField, "encoding must be pcm16le");
            return false;
        }

        if (channels is not null and not 1)
        {
            error = new(ProtocolErrorKind.NumberOutOfRange, "channels must be 1 (mono)");
            return false;
        }

        start = new NativeStart(
            streamId,
            sampleRate ?? DefaultSampleRate,
            Pcm16LittleEndian,
            1,
            metadata ?? (IReadOnlyDictionary<string, string>)ReadOnlyDictionary<string, string>.Empty);
        return true;
    }
}
