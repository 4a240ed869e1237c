using System.Buffers.Binary;

namespace Ingest.Testing;

/// <summary>Audio for simulated calls: generated tones, deterministic noise, and WAV files cut into frames.</summary>
public static class CallAudio
{
    /// <summary>Bytes of one 100 ms frame of 16-bit mono PCM at <paramref name="sampleRate"/> (1,600 at 8 kHz).</summary>
    public static int FrameBytes(int sampleRate = 8000) => sampleRate / 10 * 2;

    /// <summary>
    /// <paramref name="frames"/> consecutive 100 ms frames of a sine tone (16-bit little-endian PCM, mono), continuous
    /// across frames. Every frame differs from its neighbours, so a swapped or repeated frame shows in a byte compare.
    /// </summary>
    public static IReadOnlyList<byte[]> Tone(int frames, double hertz = 440, int sampleRate = 8000, int startFrame = 0)
    {
        var samplesPerFrame = sampleRate / 10;
        var result = new List<byte[]>(frames);
        for (var f = 0; f < frames; f++)
        {
            var frame = new byte[samplesPerFrame * 2];
            for (var i = 0; i < samplesPerFrame; i++)
            {
                var n = (long)(startFrame + f) * samplesPerFrame + i;
                var sample = (short)(Math.Sin(2 * Math.PI * hertz * n / sampleRate) * 12_000);
                BinaryPrimitives.WriteInt16LittleEndian(frame.AsSpan(i * 2), sample);
            }

            result.Add(frame);
        }

        return result;
    }

    /// <summary>One frame of deterministic noise: the same (<paramref name="seed"/>, <paramref name="index"/>) gives the same bytes.</summary>
    public static byte[] Noise(int seed, long index, int bytes = 320)
    {
        var audio = new byte[bytes];
        new Random(HashCode.Combine(seed, index)).NextBytes(audio);
        return audio;
    }

    /// <summary>
    /// Cuts a WAV file (RIFF, PCM) or raw PCM into frames of <paramref name="frameBytes"/> (the last may be shorter).
    /// A RIFF header is skipped up to its <c>data</c> chunk; anything else is taken as raw samples.
    /// </summary>
    public static IReadOnlyList<byte[]> Frames(byte[] wavOrPcm, int frameBytes = 1600)
    {
        ArgumentNullException.ThrowIfNull(wavOrPcm);
        ArgumentOutOfRangeException.ThrowIfLessThan(frameBytes, 1);
        var data = DataChunk(wavOrPcm);
        var frames = new List<byte[]>();
        for (var offset = 0; offset < data.Length; offset += frameBytes)
        {
            frames.Add(data.Slice(offset, Math.Min(frameBytes, data.Length - offset)).ToArray());
        }

        return frames;
    }

    private static ReadOnlySpan<byte> DataChunk(byte[] file)
    {
        var span = file.AsSpan();
        if (span.Length < 12 || !span[..4].SequenceEqual("RIFF"u8) || !span.Slice(8, 4).SequenceEqual("WAVE"u8))
        {
            return span;
        }

        var offset = 12;
        while (offset + 8 <= span.Length)
        {
            var size = (int)BinaryPrimitives.ReadUInt32LittleEndian(span.Slice(offset + 4, 4));
            if (span.Slice(offset, 4).SequenceEqual("data"u8))
            {
                return span.Slice(offset + 8, Math.Min(size, span.Length - offset - 8));
            }

            offset += 8 + size + (size & 1);
        }

        throw new ArgumentException("WAV file without a data chunk", nameof(file));
    }
}
