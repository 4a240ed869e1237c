using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.EndToEnd;

/// <summary>
/// The edges of a call (CONTRACT §3, §5, §7) through a real Kestrel gateway, a silo and a real redis-server: what
/// Exotel and its simulator really send, and what must land for each.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class CallEdgeTests(EndToEndFixture fixture)
{
    private static string NewSid() => "edge-" + Guid.NewGuid().ToString("N");

    private async Task<(IReadOnlyList<RedisStreams.AudioEntry> Audio, IReadOnlyList<Dictionary<string, string>> Lifecycle)> LandedAsync(string sid)
    {
        Assert.True(await RedisStreams.WaitUntilAsync(
            async () => (await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid)).Any(e => e["event"] == "stop"),
            TimeSpan.FromSeconds(20)), $"no stop landed for {sid}");
        return (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid), await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid));
    }

    private async Task<double> MetricAsync(string name)
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync(IngestStack.HttpUri(fixture.Main, "/metrics"));
        return text.Split('\n')
            .Where(l => l.StartsWith(name, StringComparison.Ordinal) && (l.Length == name.Length || l[name.Length] is ' ' or '{'))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Odd_length_payloads_from_exotels_simulator_are_published_byte_for_byte_and_counted()
    {
        var sid = NewSid();
        var before = await MetricAsync("ingest_frames_odd_length_total");
        var frames = new[] { 23, 321, 320, 1 }.Select((n, i) => Enumerable.Range(0, n).Select(b => (byte)(b + i)).ToArray()).ToArray();
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            await client.StartAsync(sid, "call-odd");
            for (var i = 0; i < frames.Length; i++)
            {
                await client.MediaAsync(sid, i + 2, i + 1, frames[i]);
            }

            await client.StopAsync(sid, frames.Length + 2);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(20)));
        }

        var (audio, lifecycle) = await LandedAsync(sid);
        Assert.Equal(frames, audio.Select(a => a.Audio));
        Assert.DoesNotContain(lifecycle, e => e["event"] == "gap");
        Assert.True(await RedisStreams.WaitUntilAsync(async () => await MetricAsync("ingest_frames_odd_length_total") - before >= 3, TimeSpan.FromSeconds(5)));
    }

    public static TheoryData<string, string> UsableStarts => new()
    {
        { "sample_rate 8000.0", """{"event":"start","sequence_number":1,"stream_sid":"{SID}","start":{"stream_sid":"{SID}","call_sid":"c1","media_format":{"encoding":"base64","sample_rate":8000.0}}}""" },
        { "call_sid over 1 KiB", """{"event":"start","sequence_number":"1","start":{"stream_sid":"{SID}","call_sid":"{LONG}","media_format":{"sample_rate":"8000"}}}""" },
        { "65 custom parameters", """{"event":"start","sequence_number":"1","start":{"stream_sid":"{SID}","call_sid":"c1","custom_parameters":{PARAMS}}}""" },
        { "from as an object", """{"event":"start","sequence_number":"1","start":{"stream_sid":"{SID}","call_sid":"c1","from":{"number":"+91"},"to":["+92"]}}""" },
    };

    [Theory]
    [MemberData(nameof(UsableStarts))]
    public async Task A_start_with_unusable_optional_fields_still_starts_the_call(string name, string start)
    {
        var sid = NewSid();
        var parameters = "{" + string.Join(",", Enumerable.Range(1, 65).Select(n => $"\"p{n}\":\"v{n}\"")) + "}";
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            await client.SendTextAsync(start.Replace("{SID}", sid, StringComparison.Ordinal)
                .Replace("{LONG}", new string('x', 1500), StringComparison.Ordinal)
                .Replace("{PARAMS}", parameters, StringComparison.Ordinal));

            // "2.0" is the integer 2 (CONTRACT §5).
            await client.SendTextAsync($$$"""{"event":"media","sequence_number":"2.0","stream_sid":"{{{sid}}}","media":{"chunk":"1","timestamp":"100","payload":"AAECAw=="}}""");
            await client.MediaAsync(sid, 3, 2, ExotelClient.Pcm(1, 2));
            await client.StopAsync(sid, 4);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(20)));
        }

        var (audio, lifecycle) = await LandedAsync(sid);
        Assert.True(new[] { 2L, 3L }.SequenceEqual(audio.Select(a => a.Seq)), name);
        Assert.Equal(["start", "stop"], lifecycle.Select(e => e["event"]));
        Assert.Equal("8000", lifecycle[0]["sample_rate"]);
    }

    [Theory]
    [InlineData("""{"event":"start","sequence_number":"1","start":{"call_sid":"c1"}}""", "stream_sid")]
    [InlineData("""{"event":"start","sequence_number":"1","start":{"stream_sid":"bad sid with spaces"}}""", "stream_sid")]
    [InlineData("""{"event":"start","sequence_number":"1","start":{"stream_sid":"s-ok","media_format":{"sample_rate":"44100"}}}""", "44100")]
    public async Task A_start_that_cannot_be_used_is_refused_at_once_with_1007_and_the_reason(string start, string reason)
    {
        await using var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main));
        var clock = Stopwatch.StartNew();
        await client.SendTextAsync(start);

        Assert.Equal(WebSocketCloseStatus.InvalidPayloadData, await client.WaitForCloseAsync(TimeSpan.FromSeconds(20)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"refused after {clock.ElapsedMilliseconds} ms, not at once");
        Assert.Contains(reason, client.Socket.CloseStatusDescription, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Numbers_missing_just_before_stop_leave_a_trailing_gap()
    {
        var sid = NewSid();
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            await client.StartAsync(sid, "call-trailing");
            await client.MediaAsync(sid, 2, 1, ExotelClient.Pcm(2, 1));
            await client.MediaAsync(sid, 3, 2, ExotelClient.Pcm(2, 2));
            await client.StopAsync(sid, 8);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(20)));
        }

        var (_, lifecycle) = await LandedAsync(sid);
        var gap = Assert.Single(lifecycle, e => e["event"] == "gap");
        Assert.Equal(("4", "7", "4", "missing"), (gap["from_seq"], gap["to_seq"], gap["missing"], gap["reason"]));
    }

    [Fact]
    public async Task A_frame_received_with_bad_base64_is_a_malformed_gap_not_a_missing_one()
    {
        var sid = NewSid();
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            await client.StartAsync(sid, "call-malformed");
            await client.MediaAsync(sid, 2, 1, ExotelClient.Pcm(3, 1));
            await client.SendTextAsync($$$"""{"event":"media","sequence_number":"3","stream_sid":"{{{sid}}}","media":{"chunk":"2","payload":"!!not*base64!!"}}""");
            await client.MediaAsync(sid, 4, 3, ExotelClient.Pcm(3, 3));
            await client.StopAsync(sid, 5);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(20)));
        }

        var (audio, lifecycle) = await LandedAsync(sid);
        Assert.Equal([2L, 4L], audio.Select(a => a.Seq));
        var gap = Assert.Single(lifecycle, e => e["event"] == "gap");
        Assert.Equal(("3", "3", "1", "malformed"), (gap["from_seq"], gap["to_seq"], gap["missing"], gap["reason"]));
    }

    [Theory]
    [InlineData("9223372036854775806")]
    [InlineData("1764576000000")]
    public async Task One_absurd_sequence_number_does_not_poison_the_rest_of_the_call(string absurd)
    {
        var sid = NewSid();
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            await client.StartAsync(sid, "call-absurd");
            await client.MediaAsync(sid, 2, 1, ExotelClient.Pcm(4, 1));
            await client.SendTextAsync($$$"""{"event":"media","sequence_number":"{{{absurd}}}","stream_sid":"{{{sid}}}","media":{"chunk":"2","payload":"AAECAw=="}}""");
            await client.MediaAsync(sid, 3, 2, ExotelClient.Pcm(4, 2));
            await client.MediaAsync(sid, 4, 3, ExotelClient.Pcm(4, 3));
            await client.StopAsync(sid, 5);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(20)));
        }

        var (audio, lifecycle) = await LandedAsync(sid);
        Assert.Equal([2L, 3L, 4L], audio.Select(a => a.Seq));
        Assert.Equal(["start", "stop"], lifecycle.Select(e => e["event"]));
        Assert.Equal("3", lifecycle[1]["frames"]);
    }

    [Fact]
    public async Task A_token_query_parameter_does_not_turn_an_exotel_call_with_basic_credentials_into_a_jwt_login()
    {
        // Exotel copies custom parameters into the URL. 70 calls: past AUTH_FAILURE_LIMIT (60) had they counted as failures.
        for (var i = 0; i < 70; i++)
        {
            Assert.Equal(101, await ExotelClient.TryUpgradeAsync(
                IngestStack.IngestUri(fixture.Main, "?token=customer-" + i + "&lang=hi"),
                new Dictionary<string, string> { ["Authorization"] = ExotelClient.BasicHeader(IngestStack.ExotelUser, IngestStack.ExotelPassword) }));
        }

        var sid = NewSid();
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main, "?token=not-a-jwt")))
        {
            await client.StartAsync(sid, "call-token");
            await client.MediaAsync(sid, 2, 1, ExotelClient.Pcm(5, 1));
            await client.StopAsync(sid, 3);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(20)));
        }

        var (audio, _) = await LandedAsync(sid);
        Assert.Equal([2L], audio.Select(a => a.Seq));
    }

    [Fact]
    public async Task A_token_query_parameter_does_not_turn_an_allow_listed_exotel_call_into_a_jwt_login()
    {
        var sid = NewSid();
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.AllowLoopback, "?token=not-a-jwt"), user: null, password: null))
        {
            await client.StartAsync(sid, "call-token-ip");
            await client.MediaAsync(sid, 2, 1, ExotelClient.Pcm(6, 1));
            await client.StopAsync(sid, 3);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(20)));
        }

        var (audio, _) = await LandedAsync(sid);
        Assert.Equal([2L], audio.Select(a => a.Seq));
    }

    [Fact]
    public async Task A_token_query_parameter_still_admits_a_native_client_without_exotel_credentials() =>
        Assert.Equal(101, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(fixture.Main, "?token=" + Tokens.Create())));
}
