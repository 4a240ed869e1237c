using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Ingest.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Ingest.Tests.Operations;

/// <summary>ingestctl run as an operator runs it: help, typos, tokens. No stack needed.</summary>
public sealed class IngestCtlCommandLineTests
{
    [Theory]
    [InlineData("")]
    [InlineData("token")]
    [InlineData("flags")]
    [InlineData("flags get")]
    [InlineData("flags set")]
    [InlineData("calls")]
    [InlineData("calls list")]
    [InlineData("calls show")]
    [InlineData("refusals")]
    [InlineData("simulate")]
    [InlineData("dump")]
    [InlineData("tail")]
    public async Task Help_on_every_verb_exits_0_without_calling_anyone(string verb)
    {
        // Nothing listens on port 1: an attempt to reach anything would exit 1.
        var outcome = await HostRun.RunAsync(HostRun.IngestCtlDll, [], [.. verb.Split(' ', StringSplitOptions.RemoveEmptyEntries), "--help", "--url", "ws://127.0.0.1:1/"]);
        Assert.True(outcome.ExitCode == 0, outcome.ToString());
        Assert.Contains(outcome.Stdout, l => l.StartsWith("ingestctl " + verb, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("simulate", "--frames", "abc")]
    [InlineData("simulate", "--frames", "-3")]
    [InlineData("simulate", "--rate", "44100")]
    [InlineData("simulate", "--url", "not a url")]
    [InlineData("simulate", "--colour", "blue")]
    [InlineData("simulate", "--cadence-ms", "fast")]
    [InlineData("simulate", "--dtmf", "5")]
    [InlineData("token", "--expires", "soon")]
    [InlineData("token", "--role", "root")]
    [InlineData("tail", "--timeout", "0")]
    public async Task A_bad_argument_prints_one_line_naming_it_and_exits_2(string verb, string name, string value)
    {
        var outcome = await HostRun.RunAsync(HostRun.IngestCtlDll, new() { ["JWT_SECRET"] = IngestStack.JwtSecret }, [verb, name, value, .. verb == "tail" ? new[] { "some-id" } : []]);
        Assert.True(outcome.ExitCode == 2, outcome.ToString());
        Assert.True(outcome.Stderr.Length == 1, outcome.ToString());
        Assert.Contains(name, outcome.Stderr[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Token_mints_an_HS256_jwt_with_role_sub_and_the_lifetime_asked_for()
    {
        var outcome = await HostRun.RunAsync(HostRun.IngestCtlDll, new() { ["CTL_TEST_SECRET"] = IngestStack.JwtSecret }, ["token", "--role", "native", "--secret-env", "CTL_TEST_SECRET", "--expires", "10m", "--sub", "alice"]);
        Assert.True(outcome.ExitCode == 0, outcome.ToString());
        var token = Assert.Single(outcome.Stdout);

        var result = await new JsonWebTokenHandler().ValidateTokenAsync(token, new TokenValidationParameters
        {
            IssuerSigningKey = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(IngestStack.JwtSecret)),
            ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
            ValidateIssuer = false,
            ValidateAudience = false,
            RequireExpirationTime = true,
        });
        Assert.True(result.IsValid, result.Exception?.Message);
        var jwt = (JsonWebToken)result.SecurityToken;
        Assert.Equal("native", jwt.GetClaim("role").Value);
        Assert.Equal("alice", jwt.Subject);
        Assert.Equal(TimeSpan.FromMinutes(10), jwt.ValidTo - jwt.IssuedAt);

        var wrong = await new JsonWebTokenHandler().ValidateTokenAsync(token, new TokenValidationParameters
        {
            IssuerSigningKey = new SymmetricSecurityKey(Encoding.UTF8.GetBytes("another-secret-that-is-long-enough-for-hs256")),
            ValidateIssuer = false,
            ValidateAudience = false,
        });
        Assert.False(wrong.IsValid);
    }

    [Theory]
    [InlineData("quad.wav", "-r 8000 -b 16 -c 4", "PCM16 mono")]
    [InlineData("float.wav", "-r 8000 -b 32 -c 1 -e floating-point", "PCM16 mono")]
    [InlineData("cd.wav", "-r 44100 -b 16 -c 1", "8000, 16000 or 24000")]
    public async Task A_wav_simulate_cannot_play_is_refused_before_calling_anyone_in_one_line(string name, string format, string expected)
    {
        var path = Path.Combine(Path.GetTempPath(), "ingestctl-" + Guid.NewGuid().ToString("N")[..8] + "-" + name);
        try
        {
            CtlStackFixture.Sox(["-n", .. format.Split(' '), path, "synth", "0.5", "sine", "440"]);
            var outcome = await HostRun.RunAsync(HostRun.IngestCtlDll, [], ["simulate", "--url", "ws://127.0.0.1:1/v1/ingest", "--wav", path]);
            Assert.True(outcome.ExitCode == 2 && outcome.Stderr.Length == 1, outcome.ToString());
            Assert.Contains(expected, outcome.Stderr[0], StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task Token_without_a_secret_or_with_a_short_one_says_so_in_one_line()
    {
        var none = await HostRun.RunAsync(HostRun.IngestCtlDll, new() { ["JWT_SECRET"] = "", ["ADMIN_JWT_SECRET"] = "" }, ["token"]);
        Assert.True(none.ExitCode == 2 && none.Stderr.Length == 1, none.ToString());
        Assert.Contains("JWT_SECRET", none.Stderr[0], StringComparison.Ordinal);

        var shortOne = await HostRun.RunAsync(HostRun.IngestCtlDll, [], ["token", "--secret", "too-short"]);
        Assert.True(shortOne.ExitCode == 2 && shortOne.Stderr.Length == 1, shortOne.ToString());
        Assert.Contains("32 bytes", shortOne.Stderr[0], StringComparison.Ordinal);
    }
}

/// <summary>One in-process stack (redis-server, silo, Kestrel gateway with Exotel on) for the tests that talk to it.</summary>
public sealed class CtlStackFixture : IAsyncLifetime
{
    public IngestStack Stack { get; private set; } = null!;

    public WebApplication Gateway { get; private set; } = null!;

    public string HttpUrl => IngestStack.HttpUri(Gateway, "").ToString().TrimEnd('/');

    public string WsUrl => IngestStack.IngestUri(Gateway).ToString();

    public string Redis => Stack.Redis.ConnectionString;

    public string Directory { get; } = Path.Combine(Path.GetTempPath(), "ingestctl-" + Guid.NewGuid().ToString("N")[..8]);

    public async Task InitializeAsync()
    {
        System.IO.Directory.CreateDirectory(Directory);
        Stack = await IngestStack.StartAsync();
        await Stack.AddSiloAsync();
        Gateway = await Stack.AddGatewayAsync(new() { ["SUPPORT_EXOTEL"] = "true" });
    }

    public async Task DisposeAsync()
    {
        await Stack.DisposeAsync();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>ingestctl with the stack's admin secret in JWT_SECRET (so admin verbs mint their own token) and nothing else.</summary>
    public Task<HostRun.Outcome> CtlAsync(params string[] args) =>
        HostRun.RunAsync(HostRun.IngestCtlDll, new() { ["JWT_SECRET"] = IngestStack.JwtSecret, ["INGESTCTL_TOKEN"] = "", ["EXOTEL_BASIC_AUTH_USER"] = "", ["EXOTEL_BASIC_AUTH_PASS"] = "" }, args, TimeSpan.FromSeconds(60));

    public string[] Exotel(params string[] more) =>
        ["simulate", "--url", WsUrl, "--user", IngestStack.ExotelUser, "--pass", IngestStack.ExotelPassword, .. more];

    /// <summary>A 440 Hz tone made by sox, PCM16 mono 8000 Hz; returns its path and its data chunk.</summary>
    public (string Path, byte[] Data) SoxTone(string name, double seconds)
    {
        var path = Path.Combine(Directory, name);
        Sox("-n", "-r", "8000", "-b", "16", "-c", "1", "-e", "signed-integer", path, "synth", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture), "sine", "440", "vol", "0.5");
        return (path, DataChunk(File.ReadAllBytes(path)));
    }

    public static void Sox(params string[] args)
    {
        var info = new ProcessStartInfo("sox") { RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        try
        {
            using var sox = Process.Start(info)!;
            var stderr = sox.StandardError.ReadToEndAsync();
            sox.WaitForExit(20_000);
            Assert.True(sox.ExitCode == 0, stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Assert.Fail("sox is not installed (tools/test.sh installs it: apt-get install sox)");
        }
    }

    /// <summary>The bytes of a WAV's data chunk, found by walking its chunks (not by assuming a 44-byte header).</summary>
    public static byte[] DataChunk(byte[] wav)
    {
        for (var at = 12; at + 8 <= wav.Length;)
        {
            var size = BitConverter.ToInt32(wav, at + 4);
            if (Encoding.ASCII.GetString(wav, at, 4) == "data")
            {
                return wav[(at + 8)..(at + 8 + size)];
            }

            at += 8 + size + (size & 1);
        }

        throw new InvalidDataException("no data chunk");
    }

    public static int SampleRate(byte[] wav) => BitConverter.ToInt32(wav, 24);
}

/// <summary>
/// ingestctl against a real stack, as the README walks a newcomer through it: flip the flag, play a WAV, see it live,
/// see a refusal, dump the call back and get the same audio.
/// </summary>
[Trait("Category", "Slow")]
[RunsFor(45)]
public sealed class IngestCtlStackTests(CtlStackFixture f, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<CtlStackFixture>
{
    [Fact]
    public async Task Flags_set_false_then_get_shows_false_and_set_true_brings_it_back()
    {
        try
        {
            var off = await f.CtlAsync("flags", "set", "--enabled", "false", "--url", f.HttpUrl);
            Assert.True(off.ExitCode == 0, off.ToString());
            var get = await f.CtlAsync("flags", "get", "--url", f.HttpUrl, "--json");
            Assert.True(get.ExitCode == 0, get.ToString());
            Assert.False(JsonDocument.Parse(string.Join('\n', get.Stdout)).RootElement.GetProperty("supportExotel").GetBoolean());
            var table = await f.CtlAsync("flags", "get", "--url", f.HttpUrl);
            Assert.Contains(table.Stdout, l => l.StartsWith("support-exotel", StringComparison.Ordinal) && l.Contains("False", StringComparison.OrdinalIgnoreCase) && l.Contains("admin API", StringComparison.Ordinal));
        }
        finally
        {
            var on = await f.CtlAsync("flags", "set", "--enabled", "true", "--url", f.HttpUrl);
            Assert.True(on.ExitCode == 0, on.ToString());
        }

        var after = await f.CtlAsync("flags", "get", "--url", f.HttpUrl, "--json");
        Assert.True(JsonDocument.Parse(string.Join('\n', after.Stdout)).RootElement.GetProperty("supportExotel").GetBoolean(), after.ToString());
    }

    [Fact]
    public async Task An_admin_verb_with_a_bad_token_fails_with_one_line_and_exit_1()
    {
        var outcome = await HostRun.RunAsync(HostRun.IngestCtlDll, [], ["calls", "list", "--url", f.HttpUrl, "--token", "not-a-jwt"]);
        Assert.True(outcome.ExitCode == 1 && outcome.Stderr.Length == 1, outcome.ToString());
        Assert.Contains("401", outcome.Stderr[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_sox_wav_simulated_as_Exotel_dumps_back_byte_for_byte_at_8000_Hz()
    {
        await WaitForExotelAsync();
        var (wav, data) = f.SoxTone("tone.wav", 2.05); // 20 whole frames and a partial one
        var sid = "ctl-wav-" + Guid.NewGuid().ToString("N")[..6];
        var sim = await f.CtlAsync(f.Exotel("--wav", wav, "--cadence-ms", "0", "--sid", sid, "--dtmf", "7@3"));
        output.WriteLine(sim.ToString());
        Assert.True(sim.ExitCode == 0, sim.ToString());
        Assert.Contains($"stream_id {sid}", sim.Stdout);
        Assert.Contains(sim.Stdout, l => l.StartsWith(sid + ": sent 21 media frame(s); closed 1000", StringComparison.Ordinal));

        var outPath = Path.Combine(f.Directory, sid + ".wav");
        var dump = await f.CtlAsync("dump", sid, "--redis", f.Redis, "-o", outPath);
        output.WriteLine(dump.ToString());
        Assert.True(dump.ExitCode == 0, dump.ToString());
        var written = File.ReadAllBytes(outPath);
        Assert.Equal(8000, CtlStackFixture.SampleRate(written));
        Assert.Equal(data, CtlStackFixture.DataChunk(written));

        using var sidecar = JsonDocument.Parse(File.ReadAllText(outPath + ".json"));
        Assert.Empty(sidecar.RootElement.GetProperty("gaps").EnumerateArray());
        var events = sidecar.RootElement.GetProperty("lifecycle").EnumerateArray().Select(e => e.GetProperty("event").GetString()).ToArray();
        Assert.Equal("start,dtmf,stop", string.Join(",", events));
    }

    /// <summary>
    /// CONTRACT §5, §7: a stereo WAV (caller left, agent right) played as a two-track G.711 call comes back from dump as
    /// the same two channels. The WAV's samples are decoded G.711 codes, so simulate's encoder, the gateway's decoder,
    /// the two streams and dump's interleaving must each be exact for the bytes to match.
    /// </summary>
    [Theory]
    [InlineData("mulaw", Ingest.Gateway.Protocol.SourceEncoding.MuLaw)]
    [InlineData("alaw", Ingest.Gateway.Protocol.SourceEncoding.ALaw)]
    public async Task A_two_track_G711_call_simulated_from_a_stereo_wav_dumps_back_to_the_same_two_channels(string encoding, Ingest.Gateway.Protocol.SourceEncoding law)
    {
        await WaitForExotelAsync();
        var random = new Random(encoding.Length);
        byte[] Track()
        {
            var codes = new byte[8000]; // 1 s: 10 frames of 800 samples
            random.NextBytes(codes);
            return Ingest.Gateway.Protocol.G711.ToPcm16(codes, law);
        }

        var (caller, agent) = (Track(), Track());
        var interleaved = new byte[caller.Length * 2];
        for (var i = 0; i < caller.Length / 2; i++)
        {
            caller.AsSpan(2 * i, 2).CopyTo(interleaved.AsSpan(4 * i));
            agent.AsSpan(2 * i, 2).CopyTo(interleaved.AsSpan((4 * i) + 2));
        }

        var wav = Path.Combine(f.Directory, encoding + "-both.wav");
        File.WriteAllBytes(wav, StereoWav(8000, interleaved));
        var sid = "ctl-" + encoding + "-" + Guid.NewGuid().ToString("N")[..6];
        var sim = await f.CtlAsync(f.Exotel("--wav", wav, "--encoding", encoding, "--cadence-ms", "0", "--sid", sid));
        output.WriteLine(sim.ToString());
        Assert.True(sim.ExitCode == 0, sim.ToString());
        Assert.Contains(sim.Stdout, l => l.Contains("tracks both", StringComparison.Ordinal));

        var outPath = Path.Combine(f.Directory, sid + ".wav");
        var dump = await f.CtlAsync("dump", sid, "--redis", f.Redis, "-o", outPath);
        output.WriteLine(dump.ToString());
        Assert.True(dump.ExitCode == 0, dump.ToString());
        var written = File.ReadAllBytes(outPath);
        Assert.Equal(2, BitConverter.ToInt16(written, 22));
        Assert.Equal(interleaved, CtlStackFixture.DataChunk(written));

        using var sidecar = JsonDocument.Parse(File.ReadAllText(outPath + ".json"));
        Assert.Equal(10, sidecar.RootElement.GetProperty("frames").GetInt32());
        Assert.Equal(10, sidecar.RootElement.GetProperty("frames_outbound").GetInt32());
        var start = sidecar.RootElement.GetProperty("lifecycle").EnumerateArray().First(e => e.GetProperty("event").GetString() == "start");
        Assert.Equal($"audio/x-{(encoding == "mulaw" ? "mulaw" : "alaw")};rate=8000", start.GetProperty("source_encoding").GetString());
    }

    private static byte[] StereoWav(int rate, byte[] interleaved)
    {
        using var stream = new MemoryStream();
        using var writer = new BinaryWriter(stream);
        writer.Write(Encoding.ASCII.GetBytes("RIFF"));
        writer.Write(36 + interleaved.Length);
        writer.Write(Encoding.ASCII.GetBytes("WAVEfmt "));
        writer.Write(16);
        writer.Write((short)1);
        writer.Write((short)2);
        writer.Write(rate);
        writer.Write(rate * 4);
        writer.Write((short)4);
        writer.Write((short)16);
        writer.Write(Encoding.ASCII.GetBytes("data"));
        writer.Write(interleaved.Length);
        writer.Write(interleaved);
        writer.Flush();
        return stream.ToArray();
    }

    [Fact]
    public async Task A_dropped_frame_dumps_as_one_frame_of_silence_and_is_listed_in_the_sidecar()
    {
        await WaitForExotelAsync();
        var (wav, data) = f.SoxTone("drop.wav", 1.0); // 10 frames of 800 samples
        var sid = "ctl-drop-" + Guid.NewGuid().ToString("N")[..6];
        var sim = await f.CtlAsync(f.Exotel("--wav", wav, "--cadence-ms", "0", "--sid", sid, "--drop", "5", "--duplicate", "7"));
        Assert.True(sim.ExitCode == 0, sim.ToString());

        var outPath = Path.Combine(f.Directory, sid + ".wav");
        var dump = await f.CtlAsync("dump", sid, "--redis", f.Redis, "-o", outPath);
        output.WriteLine(dump.ToString());
        Assert.True(dump.ExitCode == 0, dump.ToString());

        const int frame = 1600;
        var expected = data.ToArray();
        Array.Clear(expected, 4 * frame, frame);
        Assert.Equal(expected, CtlStackFixture.DataChunk(File.ReadAllBytes(outPath))); // the duplicate is not there twice

        using var sidecar = JsonDocument.Parse(File.ReadAllText(outPath + ".json"));
        var gap = Assert.Single(sidecar.RootElement.GetProperty("gaps").EnumerateArray());
        Assert.Equal(6, gap.GetProperty("from_seq").GetInt64()); // start is 1, media chunk 1 is 2: chunk 5 is 6
        Assert.Equal(6, gap.GetProperty("to_seq").GetInt64());
        Assert.Equal(1, gap.GetProperty("missing").GetInt64());
        Assert.Equal(4 * 800, gap.GetProperty("at_sample").GetInt64());
        Assert.Equal(800, gap.GetProperty("silence_samples").GetInt64());
        Assert.Contains(dump.Stdout, l => l.Contains("gap seq 6-6", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Calls_list_and_show_see_a_live_call_during_a_slow_simulate_and_tail_follows_it_to_its_stop()
    {
        await WaitForExotelAsync();
        var sid = "ctl-live-" + Guid.NewGuid().ToString("N")[..6];
        var slow = f.CtlAsync(f.Exotel("--frames", "60", "--cadence-ms", "100", "--sid", sid));
        var tail = f.CtlAsync("tail", sid, "--redis", f.Redis, "--timeout", "40");

        HostRun.Outcome? list = null;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            list = await f.CtlAsync("calls", "list", "--url", f.HttpUrl);
            if (list.Stdout.Any(l => l.StartsWith(sid + " ", StringComparison.Ordinal)))
            {
                break;
            }
        }

        output.WriteLine(list!.ToString());
        Assert.Contains(list.Stdout, l => l.StartsWith("STREAM_ID", StringComparison.Ordinal));
        Assert.Contains(list.Stdout, l => l.StartsWith(sid + " ", StringComparison.Ordinal) && l.Contains("exotel", StringComparison.Ordinal));

        var show = await f.CtlAsync("calls", "show", sid, "--url", f.HttpUrl);
        Assert.True(show.ExitCode == 0, show.ToString());
        Assert.Contains(show.Stdout, l => l.StartsWith("protocol:", StringComparison.Ordinal) && l.EndsWith("exotel", StringComparison.Ordinal));

        var done = await slow;
        Assert.True(done.ExitCode == 0, done.ToString());
        var followed = await tail;
        output.WriteLine(followed.ToString());
        Assert.True(followed.ExitCode == 0, followed.ToString());
        Assert.Contains(followed.Stdout, l => l.Contains("frames/s", StringComparison.Ordinal) && l.Contains("dBFS", StringComparison.Ordinal));
        Assert.Contains(followed.Stdout, l => l.Contains("stop:", StringComparison.Ordinal) && l.Contains("60 seen", StringComparison.Ordinal));

        var gone = await f.CtlAsync("calls", "show", sid, "--url", f.HttpUrl);
        Assert.True(gone.ExitCode == 1 && gone.Stderr.Length == 1, gone.ToString());
    }

    [Fact]
    public async Task Refusals_show_why_a_call_with_a_wrong_password_was_turned_away()
    {
        await WaitForExotelAsync();
        var refused = await f.CtlAsync("simulate", "--url", f.WsUrl, "--user", IngestStack.ExotelUser, "--pass", "wrong-password", "--frames", "3");
        Assert.True(refused.ExitCode == 1, refused.ToString());
        Assert.Contains(refused.Stderr, l => l.Contains("HTTP 401", StringComparison.Ordinal));

        var refusals = await f.CtlAsync("refusals", "--url", f.HttpUrl);
        output.WriteLine(refusals.ToString());
        Assert.True(refusals.ExitCode == 0, refusals.ToString());
        Assert.Contains(refusals.Stdout, l => l.Contains("bad_credentials", StringComparison.Ordinal));
        Assert.DoesNotContain(refusals.Stdout, l => l.Contains("wrong-password", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_same_sid_a_second_time_fails_fast_with_the_1008_reason()
    {
        await WaitForExotelAsync();
        var sid = "ctl-twice-" + Guid.NewGuid().ToString("N")[..6];
        var first = await f.CtlAsync(f.Exotel("--sid", sid, "--frames", "5", "--cadence-ms", "0"));
        Assert.True(first.ExitCode == 0, first.ToString());

        // 100 frames at 100 ms would take 10 s; the second run must find out long before that.
        var clock = Stopwatch.StartNew();
        var second = await f.CtlAsync(f.Exotel("--sid", sid, "--frames", "100"));
        output.WriteLine(second.ToString());
        Assert.Equal(1, second.ExitCode);
        Assert.Contains(second.Stderr, l => l.Contains("1008", StringComparison.Ordinal) && l.Contains("stream already ended", StringComparison.Ordinal));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task A_native_tone_call_lands_at_its_own_rate()
    {
        var sid = "ctl-native-" + Guid.NewGuid().ToString("N")[..6];
        var sim = await f.CtlAsync("simulate", "--protocol", "native", "--url", f.WsUrl, "--rate", "16000", "--frames", "8", "--cadence-ms", "0", "--sid", sid);
        Assert.True(sim.ExitCode == 0, sim.ToString());
        var outPath = Path.Combine(f.Directory, sid + ".wav");
        var dump = await f.CtlAsync("dump", sid, "--redis", f.Redis, "-o", outPath);
        Assert.True(dump.ExitCode == 0, dump.ToString());
        var written = File.ReadAllBytes(outPath);
        Assert.Equal(16000, CtlStackFixture.SampleRate(written));
        Assert.Equal(8 * 1600 * 2, CtlStackFixture.DataChunk(written).Length);
    }

    [Fact]
    public async Task Concurrent_calls_each_get_a_fresh_stream_id_and_land_whole()
    {
        await WaitForExotelAsync();
        var prefix = "ctl-many-" + Guid.NewGuid().ToString("N")[..4] + "-";
        var sim = await f.CtlAsync(f.Exotel("--calls", "3", "--frames", "5", "--cadence-ms", "20", "--sid-prefix", prefix));
        Assert.True(sim.ExitCode == 0, sim.ToString());
        var sids = sim.Stdout.Where(l => l.StartsWith("stream_id " + prefix, StringComparison.Ordinal)).Select(l => l["stream_id ".Length..]).ToArray();
        Assert.Equal(3, sids.Distinct().Count());
        foreach (var sid in sids)
        {
            Assert.Equal(5, await f.Stack.Connection.GetDatabase().StreamLengthAsync("ingest:audio:{" + sid + "}"));
        }
    }

    [Fact]
    public async Task A_stream_longer_than_one_XRANGE_page_dumps_whole()
    {
        await WaitForExotelAsync();
        var sid = "ctl-long-" + Guid.NewGuid().ToString("N")[..6];
        var sim = await f.CtlAsync(f.Exotel("--frames", "2500", "--frame-ms", "20", "--cadence-ms", "0", "--sid", sid));
        Assert.True(sim.ExitCode == 0, sim.ToString());
        var outPath = Path.Combine(f.Directory, sid + ".wav");
        var dump = await f.CtlAsync("dump", sid, "--redis", f.Redis, "-o", outPath);
        Assert.True(dump.ExitCode == 0, dump.ToString());
        using var sidecar = JsonDocument.Parse(File.ReadAllText(outPath + ".json"));
        Assert.Equal(2500, sidecar.RootElement.GetProperty("frames").GetInt32());
        Assert.Equal(2500 * 160 * 2, CtlStackFixture.DataChunk(File.ReadAllBytes(outPath)).Length);
    }

    /// <summary>The flags test turns Exotel off for a moment; the calls wait until the gateway takes them again.</summary>
    private async Task WaitForExotelAsync()
    {
        var clock = Stopwatch.StartNew();
        while (!IngestStack.SupportsExotel(f.Gateway) && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(100);
        }
    }
}
