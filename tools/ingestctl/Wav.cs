using System.Buffers.Binary;
using System.Text;

namespace Ingest.Ctl;

/// <summary>
/// PCM16 WAV files, mono or two channels (caller and agent): read (any chunk order, plain PCM or WAVE_FORMAT_EXTENSIBLE
/// PCM), write (44-byte header).
/// </summary>
public static class Wav
{
    /// <summary>The audio of a WAV; <see cref="Pcm"/> holds the first channel, <see cref="Second"/> the second of a stereo file.</summary>
    public sealed record Audio(int SampleRate, byte[] Pcm, byte[]? Second = null);

    public static Audio Read(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw CtlException.Usage($"cannot read {path}: {ex.Message}");
        }

        if (bytes.Length < 12 || Encoding.ASCII.GetString(bytes, 0, 4) != "RIFF" || Encoding.ASCII.GetString(bytes, 8, 4) != "WAVE")
        {
            throw CtlException.Usage($"{path} is not a WAV file (no RIFF/WAVE header)");
        }

        int? rate = null;
        var channelCount = 1;
        byte[]? data = null;
        for (var at = 12; at + 8 <= bytes.Length;)
        {
            var id = Encoding.ASCII.GetString(bytes, at, 4);
            var size = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 4)), (uint)(bytes.Length - at - 8));
            var body = bytes.AsSpan(at + 8, size);
            if (id == "fmt " && size >= 16)
            {
                var format = BinaryPrimitives.ReadUInt16LittleEndian(body);
                var channels = BinaryPrimitives.ReadUInt16LittleEndian(body[2..]);
                var sampleRate = BinaryPrimitives.ReadInt32LittleEndian(body[4..]);
                var bits = BinaryPrimitives.ReadUInt16LittleEndian(body[14..]);
                if (format == 0xFFFE && size >= 26)
                {
                    format = BinaryPrimitives.ReadUInt16LittleEndian(body[24..]);
                }

                if (format != 1 || channels is not (1 or 2) || bits != 16)
                {
                    throw CtlException.Usage($"{path} is {Describe(format, channels, bits)} at {sampleRate} Hz; simulate plays PCM16 mono, or two channels as caller and agent (convert: sox in.wav -r 8000 -b 16 -c 1 -e signed-integer out.wav)");
                }

                rate = sampleRate;
                channelCount = channels;
            }
            else if (id == "data")
            {
                data = body.ToArray();
            }

            at += 8 + size + (size & 1);
        }

        if (rate is null || data is null)
        {
            throw CtlException.Usage($"{path} has no {(rate is null ? "fmt" : "data")} chunk");
        }

        if (channelCount == 1)
        {
            return new Audio(rate.Value, data);
        }

        var frames = data.Length / 4;
        var (left, right) = (new byte[frames * 2], new byte[frames * 2]);
        for (var i = 0; i < frames; i++)
        {
            data.AsSpan(4 * i, 2).CopyTo(left.AsSpan(2 * i));
            data.AsSpan((4 * i) + 2, 2).CopyTo(right.AsSpan(2 * i));
        }

        return new Audio(rate.Value, left, right);
    }

    private static string Describe(int format, int channels, int bits) =>
        $"{(format == 1 ? "PCM" : format == 3 ? "float" : $"format {format}")} {bits}-bit {(channels == 1 ? "mono" : $"{channels} channels")}";

    /// <summary>A two-channel WAV of two mono PCM16 tracks (the shorter padded with silence).</summary>
    public static void WriteStereo(string path, int sampleRate, ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        var samples = Math.Max(left.Length, right.Length) / 2;
        var interleaved = new byte[samples * 4];
        for (var i = 0; i < samples; i++)
        {
            if ((2 * i) + 1 < left.Length)
            {
                left.Slice(2 * i, 2).CopyTo(interleaved.AsSpan(4 * i));
            }

            if ((2 * i) + 1 < right.Length)
            {
                right.Slice(2 * i, 2).CopyTo(interleaved.AsSpan((4 * i) + 2));
            }
        }

        Write(path, sampleRate, interleaved, channels: 2);
    }

    public static void Write(string path, int sampleRate, ReadOnlySpan<byte> pcm, int channels = 1)
    {
        using var file = File.Create(path);
        Span<byte> header = stackalloc byte[44];
        Encoding.ASCII.GetBytes("RIFF", header);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], (uint)(36 + pcm.Length));
        Encoding.ASCII.GetBytes("WAVEfmt ", header[8..]);
        BinaryPrimitives.WriteUInt32LittleEndian(header[16..], 16);
        BinaryPrimitives.WriteUInt16LittleEndian(header[20..], 1);
        BinaryPrimitives.WriteUInt16LittleEndian(header[22..], (ushort)channels);
        BinaryPrimitives.WriteUInt32LittleEndian(header[24..], (uint)sampleRate);
        BinaryPrimitives.WriteUInt32LittleEndian(header[28..], (uint)(sampleRate * 2 * channels));
        BinaryPrimitives.WriteUInt16LittleEndian(header[32..], (ushort)(2 * channels));
        BinaryPrimitives.WriteUInt16LittleEndian(header[34..], 16);
        Encoding.ASCII.GetBytes("data", header[36..]);
        BinaryPrimitives.WriteUInt32LittleEndian(header[40..], (uint)pcm.Length);
        file.Write(header);
        file.Write(pcm);
        if ((pcm.Length & 1) == 1)
        {
            file.WriteByte(0);
        }
    }

    /// <summary>RMS level of PCM16 little-endian samples in dBFS (-inf for silence, reported as -120).</summary>
    public static double RmsDbfs(ReadOnlySpan<byte> pcm)
    {
        var samples = pcm.Length / 2;
        if (samples == 0)
        {
            return -120;
        }

        double sum = 0;
        for (var i = 0; i < samples; i++)
        {
            double s = BinaryPrimitives.ReadInt16LittleEndian(pcm[(2 * i)..]) / 32768.0;
            sum += s * s;
        }

        var rms = Math.Sqrt(sum / samples);
        return rms <= 1e-6 ? -120 : 20 * Math.Log10(rms);
    }
}
