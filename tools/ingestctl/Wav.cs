using System.Buffers.Binary;
using System.Text;

namespace Ingest.Ctl;

/// <summary>PCM16 mono WAV files: read (any chunk order, plain PCM or WAVE_FORMAT_EXTENSIBLE PCM), write (44-byte header).</summary>
public static class Wav
{
    public sealed record Audio(int SampleRate, byte[] Pcm);

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

                if (format != 1 || channels != 1 || bits != 16)
                {
                    throw CtlException.Usage($"{path} is {Describe(format, channels, bits)} at {sampleRate} Hz; simulate plays PCM16 mono only (convert: sox in.wav -r 8000 -b 16 -c 1 -e signed-integer out.wav)");
                }

                rate = sampleRate;
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

        return new Audio(rate.Value, data);
    }

    private static string Describe(int format, int channels, int bits) =>
        $"{(format == 1 ? "PCM" : format == 3 ? "float" : $"format {format}")} {bits}-bit {(channels == 1 ? "mono" : $"{channels} channels")}";

    public static void Write(string path, int sampleRate, ReadOnlySpan<byte> pcm)
    {
        using var file = File.Create(path);
        Span<byte> header = stackalloc byte[44];
        Encoding.ASCII.GetBytes("RIFF", header);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], (uint)(36 + pcm.Length));
        Encoding.ASCII.GetBytes("WAVEfmt ", header[8..]);
        BinaryPrimitives.WriteUInt32LittleEndian(header[16..], 16);
        BinaryPrimitives.WriteUInt16LittleEndian(header[20..], 1);
        BinaryPrimitives.WriteUInt16LittleEndian(header[22..], 1);
        BinaryPrimitives.WriteUInt32LittleEndian(header[24..], (uint)sampleRate);
        BinaryPrimitives.WriteUInt32LittleEndian(header[28..], (uint)(sampleRate * 2));
        BinaryPrimitives.WriteUInt16LittleEndian(header[32..], 2);
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
