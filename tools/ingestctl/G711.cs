namespace Ingest.Ctl;

/// <summary>
/// PCM16 to G.711 (ITU-T G.711: μ-law with its bias of 0x84 and clip at 32635, A-law on the 13-bit magnitude), to play a
/// WAV as Exotel's μ-law or A-law media. The gateway's own tables decode it (Gateway/Protocol/Audio.cs).
/// </summary>
internal static class G711
{
    public static byte[] Encode(ReadOnlySpan<byte> pcm16, string encoding)
    {
        var output = new byte[pcm16.Length / 2];
        for (var i = 0; i < output.Length; i++)
        {
            var sample = (short)(pcm16[2 * i] | (pcm16[(2 * i) + 1] << 8));
            output[i] = encoding == "alaw" ? ALaw(sample) : MuLaw(sample);
        }

        return output;
    }

    private static byte MuLaw(short pcm)
    {
        const int Bias = 0x84, Clip = 32635;
        int sample = pcm;
        var sign = sample < 0 ? 0x80 : 0;
        if (sign != 0)
        {
            sample = -sample;
        }

        sample = Math.Min(sample, Clip) + Bias;
        var exponent = 7;
        for (var mask = 0x4000; (sample & mask) == 0 && exponent > 0; mask >>= 1)
        {
            exponent--;
        }

        var mantissa = (sample >> (exponent + 3)) & 0x0F;
        return (byte)~(sign | (exponent << 4) | mantissa);
    }

    private static byte ALaw(short pcm)
    {
        var value = pcm >> 3;
        int mask;
        if (value >= 0)
        {
            mask = 0xD5;
        }
        else
        {
            mask = 0x55;
            value = -value - 1;
        }

        var segment = 0;
        while (segment < 8 && value > (0x20 << segment) - 1)
        {
            segment++;
        }

        if (segment >= 8)
        {
            return (byte)(0x7F ^ mask);
        }

        var code = (segment << 4) | ((segment < 2 ? value >> 1 : value >> segment) & 0x0F);
        return (byte)(code ^ mask);
    }
}
