using System.Diagnostics;
using System.Text;
using Ingest.Gateway.Protocol;

namespace Ingest.Tests.Protocol;

/// <summary>CONTRACT §5: the declared encoding is read, and G.711 payloads are expanded to PCM16LE as the reference decoder does.</summary>
public sealed class G711Tests
{
    [Theory]
    [InlineData("audio/x-mulaw;rate=8000", SourceEncoding.MuLaw, 8000L)]
    [InlineData("audio/x-mulaw", SourceEncoding.MuLaw, null)]
    [InlineData("MULAW", SourceEncoding.MuLaw, null)]
    [InlineData("ulaw", SourceEncoding.MuLaw, null)]
    [InlineData("pcmu", SourceEncoding.MuLaw, null)]
    [InlineData("audio/x-alaw; rate=16000", SourceEncoding.ALaw, 16000L)]
    [InlineData("alaw", SourceEncoding.ALaw, null)]
    [InlineData("pcma", SourceEncoding.ALaw, null)]
    [InlineData("audio/L16;rate=16000", SourceEncoding.Pcm16, 16000L)]
    [InlineData("audio/x-raw", SourceEncoding.Pcm16, null)]
    [InlineData("raw", SourceEncoding.Pcm16, null)]
    [InlineData("raw/slin", SourceEncoding.Pcm16, null)]
    [InlineData("linear16", SourceEncoding.Pcm16, null)]
    [InlineData("pcm16", SourceEncoding.Pcm16, null)]
    [InlineData("base64", SourceEncoding.Pcm16, null)]
    [InlineData(null, SourceEncoding.Pcm16, null)]
    public void Every_spelling_of_the_encoding_is_classified_and_a_rate_suffix_read(string? declared, SourceEncoding expected, long? rate)
    {
        Assert.Equal(expected, AudioEncodings.Classify(declared, out var suffix));
        Assert.Equal(rate, suffix);
    }

    [Theory]
    [InlineData("mu-law", SourceEncoding.MuLaw)]
    [InlineData("a-law", SourceEncoding.ALaw)]
    public void All_256_codes_of_each_law_decode_as_sox_decodes_them(string soxEncoding, SourceEncoding law)
    {
        var codes = Enumerable.Range(0, 256).Select(c => (byte)c).ToArray();
        var input = Path.GetTempFileName();
        var output = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(input, codes);
            var info = new ProcessStartInfo("sox") { RedirectStandardError = true, UseShellExecute = false };
            foreach (var arg in new[] { "-t", "raw", "-e", soxEncoding, "-b", "8", "-c", "1", "-r", "8000", input, "-t", "raw", "-e", "signed", "-b", "16", "-L", output })
            {
                info.ArgumentList.Add(arg);
            }

            using (var sox = Process.Start(info)!)
            {
                var errors = sox.StandardError.ReadToEnd();
                sox.WaitForExit();
                Assert.True(sox.ExitCode == 0, errors);
            }

            var reference = File.ReadAllBytes(output);
            Assert.Equal(512, reference.Length);
            Assert.Equal(reference, G711.ToPcm16(codes, law));
        }
        finally
        {
            File.Delete(input);
            File.Delete(output);
        }
    }

    [Fact]
    public void A_start_declaring_mulaw_with_a_rate_suffix_takes_its_rate_and_an_unsupported_suffix_is_refused()
    {
        static string Start(string encoding, string? rate) =>
            "{\"event\":\"start\",\"sequence_number\":\"1\",\"stream_sid\":\"s1\",\"start\":{\"stream_sid\":\"s1\",\"media_format\":{\"encoding\":\"" + encoding + "\""
            + (rate is null ? "" : ",\"sample_rate\":\"" + rate + "\"") + "}}}";

        Assert.True(ExotelMessageParser.TryParse(Encoding.UTF8.GetBytes(Start("audio/x-mulaw;rate=16000", null)), out var suffixed, out _, out _));
        Assert.Equal(SourceEncoding.MuLaw, suffixed.SourceEncoding);
        Assert.Equal(16000, suffixed.SampleRate);

        // The media_format's own sample_rate wins over the suffix.
        Assert.True(ExotelMessageParser.TryParse(Encoding.UTF8.GetBytes(Start("audio/x-mulaw;rate=16000", "8000")), out var both, out _, out _));
        Assert.Equal(8000, both.SampleRate);

        Assert.False(ExotelMessageParser.TryParse(Encoding.UTF8.GetBytes(Start("audio/x-alaw;rate=11025", null)), out _, out var error, out _));
        Assert.Equal(ProtocolErrorKind.UnsupportedSampleRate, error.Kind);
    }
}
