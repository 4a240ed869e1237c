namespace Ingest.Gateway.Protocol;

/// <summary>What a sender declares its payloads to be (CONTRACT §5). Every kind lands in Redis as PCM16LE.</summary>
public enum SourceEncoding
{
    /// <summary>PCM16 little-endian: <c>audio/x-raw</c>, <c>raw</c>, <c>raw/slin</c>, <c>audio/L16</c>, <c>linear16</c>, <c>pcm16</c>, absent or unknown.</summary>
    Pcm16 = 0,

    /// <summary>G.711 μ-law: <c>audio/x-mulaw</c>, <c>mulaw</c>, <c>ulaw</c>, <c>pcmu</c>.</summary>
    MuLaw = 1,

    /// <summary>G.711 A-law: <c>audio/x-alaw</c>, <c>alaw</c>, <c>pcma</c>.</summary>
    ALaw = 2,
}

/// <summary>Which party a media message carries (CONTRACT §5): the caller (inbound) or what the caller hears (outbound).</summary>
public enum AudioTrack
{
    /// <summary>No <c>track</c> field: the classic single-track call (the inbound track).</summary>
    None = 0,

    /// <summary><c>inbound</c>, <c>inbound_track</c>, or any value that is not an outbound one (counted).</summary>
    Inbound = 1,

    /// <summary><c>outbound</c>, <c>outbound_track</c>.</summary>
    Outbound = 2,
}

public static class AudioTracks
{
    /// <summary>
    /// The track a media message's <c>track</c> value names (case-insensitive, without allocating: it runs per frame);
    /// <paramref name="known"/> is false for a value that names neither track (taken as inbound, and counted).
    /// </summary>
    public static AudioTrack Classify(string? track, out bool known)
    {
        var value = track.AsSpan().Trim();
        known = true;
        if (value.IsEmpty)
        {
            return AudioTrack.None;
        }

        if (value.Equals("outbound", StringComparison.OrdinalIgnoreCase) || value.Equals("outbound_track", StringComparison.OrdinalIgnoreCase))
        {
            return AudioTrack.Outbound;
        }

        known = value.Equals("inbound", StringComparison.OrdinalIgnoreCase) || value.Equals("inbound_track", StringComparison.OrdinalIgnoreCase);
        return AudioTrack.Inbound;
    }
}

public static class AudioEncodings
{
    /// <summary>
    /// The encoding <paramref name="declared"/> names (case-insensitive, parameters after <c>;</c> ignored but a
    /// <c>rate=N</c>, returned in <paramref name="rate"/>). Absent or unknown names are PCM16, as the classic applet sends.
    /// </summary>
    public static SourceEncoding Classify(string? declared, out long? rate)
    {
        rate = null;
        if (string.IsNullOrWhiteSpace(declared))
        {
            return SourceEncoding.Pcm16;
        }

        var parts = declared.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        foreach (var parameter in parts.Skip(1))
        {
            var equals = parameter.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0 && parameter[..equals].Trim().Equals("rate", StringComparison.OrdinalIgnoreCase)
                && long.TryParse(parameter[(equals + 1)..].Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var hz))
            {
                rate = hz;
            }
        }

        return (parts.Length == 0 ? string.Empty : parts[0]).ToLowerInvariant() switch
        {
            "audio/x-mulaw" or "audio/mulaw" or "mulaw" or "ulaw" or "pcmu" or "audio/pcmu" => SourceEncoding.MuLaw,
            "audio/x-alaw" or "audio/alaw" or "alaw" or "pcma" or "audio/pcma" => SourceEncoding.ALaw,
            _ => SourceEncoding.Pcm16,
        };
    }
}

/// <summary>
/// ITU-T G.711 expansion to 16-bit linear PCM, by table: μ-law (bias 0x84, codes inverted) and A-law (even bits
/// inverted, 0x55), with the values the reference decoders give (μ-law ±32124, A-law ±32256 at full scale).
/// </summary>
public static class G711
{
    private static readonly short[] MuLawTable = BuildMuLaw();
    private static readonly short[] ALawTable = BuildALaw();

    public static short MuLawToLinear(byte code) => MuLawTable[code];

    public static short ALawToLinear(byte code) => ALawTable[code];

    /// <summary>The PCM16LE expansion of <paramref name="payload"/> (two bytes per code).</summary>
    public static byte[] ToPcm16(ReadOnlySpan<byte> payload, SourceEncoding encoding)
    {
        var table = encoding switch
        {
            SourceEncoding.MuLaw => MuLawTable,
            SourceEncoding.ALaw => ALawTable,
            _ => throw new ArgumentOutOfRangeException(nameof(encoding), encoding, "not a G.711 encoding"),
        };
        var pcm = new byte[payload.Length * 2];
        for (var i = 0; i < payload.Length; i++)
        {
            var sample = table[payload[i]];
            pcm[i * 2] = (byte)sample;
            pcm[(i * 2) + 1] = (byte)(sample >> 8);
        }

        return pcm;
    }

    private static short[] BuildMuLaw()
    {
        var table = new short[256];
        for (var code = 0; code < 256; code++)
        {
            var u = ~code & 0xFF;
            var magnitude = (((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07);
            table[code] = (short)((u & 0x80) != 0 ? 0x84 - magnitude : magnitude - 0x84);
        }

        return table;
    }

    private static short[] BuildALaw()
    {
        var table = new short[256];
        for (var code = 0; code < 256; code++)
        {
            var a = code ^ 0x55;
            var magnitude = (a & 0x0F) << 4;
            var segment = (a & 0x70) >> 4;
            magnitude = segment switch
            {
                0 => magnitude + 8,
                1 => magnitude + 0x108,
                _ => (magnitude + 0x108) << (segment - 1),
            };
            table[code] = (short)((a & 0x80) != 0 ? magnitude : -magnitude);
        }

        return table;
    }
}
