using System.Net.WebSockets;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Security;

/// <summary>Bad messages on live calls: each is either dropped (counted, logged, call goes on) or closes with a specific code.</summary>
[Collection(SecurityCollection.Name)]
public sealed class HostileInputTests(SecurityFixture fixture)
{
    private const string Sid = "{SID}";

    /// <summary>Messages sent between media 2 and media 3 of a live call, each with the reason it is dropped.</summary>
    public static TheoryData<string, string, string> DroppedMessages => new()
    {
        { "invalid json", """{"event":"media","sequence_number":"3","stream_sid":"{SID}","media":{"payload":""", "InvalidJson" },
        { "negative sequence number", """{"event":"media","sequence_number":"-3","stream_sid":"{SID}","media":{"payload":"AAAA"}}""", "sequence_number is negative" },
        { "2^63 sequence number", """{"event":"media","sequence_number":9223372036854775808,"stream_sid":"{SID}","media":{"payload":"AAAA"}}""", "sequence_number is larger than" },
        { "media for another stream id", """{"event":"media","sequence_number":"3","stream_sid":"other-stream","media":{"payload":"AAAA"}}""", "stream_sid differs" },
        { "stop for another stream id", """{"event":"stop","sequence_number":"3","stream_sid":"other-stream","stop":{"reason":"callended"}}""", "stream_sid differs" },
        { "second start", """{"event":"start","sequence_number":"1","stream_sid":"another-start","start":{"stream_sid":"another-start","call_sid":"c"}}""", "a second start" },
        { "second start with a 1 GHz rate", """{"event":"start","stream_sid":"{SID}","start":{"stream_sid":"{SID}","media_format":{"sample_rate":"1000000000"}}}""", "1000000000 Hz is not" },
        { "json that is not an object", """[1,2,3]""", "NotAnObject" },
        { "dtmf with a bad digit", """{"event":"dtmf","sequence_number":"3","stream_sid":"{SID}","dtmf":{"digit":"Z"}}""", "InvalidDigit" },
    };

    [Theory]
    [MemberData(nameof(DroppedMessages))]
    public async Task Bad_message_on_a_live_exotel_call_is_dropped_counted_and_logged_and_the_call_goes_on(string name, string message, string logged)
    {
        var malformedBefore = await fixture.MetricAsync("ingest_messages_malformed_total");
        var parallel = fixture.GoodExotelCallAsync(fixture.Main, streamNumber: name.Length);
        var sid = "hostile-" + Guid.NewGuid().ToString("N");
        await using (var client = await ExotelClient.ConnectAsync(SecurityFixture.Uri(fixture.Main)))
        {
            await client.StartAsync(sid, "hostile");
            await client.MediaAsync(sid, 2, 1, ExotelClient.Pcm(5, 1));
            await client.SendTextAsync(message.Replace(Sid, sid, StringComparison.Ordinal));
            await client.MediaAsync(sid, 3, 2, ExotelClient.Pcm(5, 2));
            await client.StopAsync(sid, 4);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(30)));
        }

        await parallel;
        var audio = await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid);
        Assert.Equal([2L, 3L], audio.Select(a => a.Seq));
        Assert.Equal(ExotelClient.Pcm(5, 2), audio[1].Audio);
        var lifecycle = await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid);
        Assert.Equal(["start", "stop"], lifecycle.Select(e => e["event"]));
        Assert.True(await RedisStreams.WaitUntilAsync(async () => await fixture.MetricAsync("ingest_messages_malformed_total") > malformedBefore, TimeSpan.FromSeconds(5)));
        Assert.Contains(fixture.Logs.Entries, e => e.Message.Contains("dropped", StringComparison.Ordinal) && e.Message.Contains(logged, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Unknown_event_is_ignored_and_counted_as_unknown_and_the_call_goes_on()
    {
        var unknownBefore = await fixture.MetricAsync("ingest_messages_unknown_total");
        var sid = Guid.NewGuid().ToString("N");
        await using (var client = await ExotelClient.ConnectAsync(SecurityFixture.Uri(fixture.Main)))
        {
            await client.StartAsync(sid, "unknown");
            await client.SendTextAsync($$"""{"event":"closed","stream_sid":"{{sid}}"}""");
            await client.SendTextAsync($$"""{"event":"{{new string('x', 60)}}","stream_sid":"{{sid}}"}""");
            await client.MediaAsync(sid, 2, 1, ExotelClient.Pcm(6, 1));
            await client.StopAsync(sid, 3);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(30)));
        }

        Assert.Equal([2L], (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid)).Select(a => a.Seq));
        Assert.True(await RedisStreams.WaitUntilAsync(async () => await fixture.MetricAsync("ingest_messages_unknown_total") >= unknownBefore + 2, TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task Media_before_start_is_dropped_and_the_call_can_still_start()
    {
        var sid = Guid.NewGuid().ToString("N");
        await using (var client = await ExotelClient.ConnectAsync(SecurityFixture.Uri(fixture.Main)))
        {
            await client.MediaAsync(sid, 2, 1, ExotelClient.Pcm(7, 1));
            await client.StartAsync(sid, "late-start");
            await client.MediaAsync(sid, 3, 2, ExotelClient.Pcm(7, 2));
            await client.StopAsync(sid, 4);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(30)));
        }

        Assert.Equal([3L], (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid)).Select(a => a.Seq));
        Assert.Contains(fixture.Logs.Entries, e => e.Message.Contains("arrived before start", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Binary_frame_on_an_exotel_connection_closes_1003_and_the_call_ends_with_protocol_error()
    {
        var sid = Guid.NewGuid().ToString("N");
        await using var client = await ExotelClient.ConnectAsync(SecurityFixture.Uri(fixture.Main));
        await client.StartAsync(sid, "binary");
        await client.MediaAsync(sid, 2, 1, ExotelClient.Pcm(8, 1));
        await client.Socket.SendAsync(new byte[320], WebSocketMessageType.Binary, true, CancellationToken.None);
        var (status, description) = await SecurityFixture.WaitForCloseAsync(client.Socket, TimeSpan.FromSeconds(15));
        Assert.Equal(WebSocketCloseStatus.InvalidMessageType, status);
        Assert.Contains("binary frames", description, StringComparison.Ordinal);
        Assert.True(await RedisStreams.WaitUntilAsync(async () => (await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid)).Count == 2, TimeSpan.FromSeconds(10)));
        var lifecycle = await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid);
        Assert.Equal("protocol_error", lifecycle[1]["reason"]);
        Assert.Equal([2L], (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid)).Select(a => a.Seq));
    }

    [Fact]
    public async Task Text_frame_that_is_not_utf8_closes_1007()
    {
        var sid = Guid.NewGuid().ToString("N");
        await using var client = await ExotelClient.ConnectAsync(SecurityFixture.Uri(fixture.Main));
        await client.StartAsync(sid, "utf8");
        await client.Socket.SendAsync(new byte[] { (byte)'{', (byte)'"', 0xFF, 0xFE, (byte)'"', (byte)'}' }, WebSocketMessageType.Text, true, CancellationToken.None);
        var (status, description) = await SecurityFixture.WaitForCloseAsync(client.Socket, TimeSpan.FromSeconds(15));
        Assert.True(status == WebSocketCloseStatus.InvalidPayloadData, $"{status} {description}");
        Assert.True(await RedisStreams.WaitUntilAsync(async () => (await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid)).Count == 2, TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Exotel_start_with_a_1_GHz_sample_rate_closes_1007_with_the_reason()
    {
        var sid = Guid.NewGuid().ToString("N");
        await using var client = await ExotelClient.ConnectAsync(SecurityFixture.Uri(fixture.Main));
        await client.StartAsync(sid, "ghz", sampleRate: 1_000_000_000);
        var (status, description) = await SecurityFixture.WaitForCloseAsync(client.Socket, TimeSpan.FromSeconds(15));
        Assert.Equal(WebSocketCloseStatus.InvalidPayloadData, status);
        Assert.Contains("1000000000 Hz is not 8000, 16000 or 24000", description, StringComparison.Ordinal);
        Assert.Empty(await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid));
    }

    [Fact]
    public async Task Exotel_upgrade_with_an_unsupported_url_sample_rate_gets_400() =>
        Assert.Equal(400, await ExotelClient.TryUpgradeAsync(SecurityFixture.Uri(fixture.Main, "?sample-rate=1000000000"),
            new Dictionary<string, string> { ["Authorization"] = ExotelClient.BasicHeader(IngestStack.ExotelUser, IngestStack.ExotelPassword) }));

    [Fact]
    public async Task Message_larger_than_max_message_bytes_closes_1009()
    {
        var sid = Guid.NewGuid().ToString("N");
        await using var client = await ExotelClient.ConnectAsync(SecurityFixture.Uri(fixture.Small));
        await client.StartAsync(sid, "big");
        await client.MediaAsync(sid, 2, 1, new byte[SecurityFixture.SmallMaxMessageBytes]);
        var (status, description) = await SecurityFixture.WaitForCloseAsync(client.Socket, TimeSpan.FromSeconds(15));
        Assert.Equal(WebSocketCloseStatus.MessageTooBig, status);
        Assert.Contains("4096 bytes", description, StringComparison.Ordinal);
        Assert.True(await RedisStreams.WaitUntilAsync(async () => (await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid)).Count == 2, TimeSpan.FromSeconds(10)));
        Assert.Equal("message_too_large", (await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid))[1]["reason"]);
    }

    // ---- native ------------------------------------------------------------------------------

    private static async Task<ClientWebSocket> NativeAsync(Uri uri)
    {
        var socket = ExotelClient.NewSocket(new Dictionary<string, string> { ["Authorization"] = "Bearer " + SecurityTokens.Create() });
        await socket.ConnectAsync(uri, CancellationToken.None);
        return socket;
    }

    private static string NativeStart(string id, int rate = 16000) =>
        $$"""{"event":"start","stream_id":"{{id}}","sample_rate":{{rate}},"encoding":"pcm16le","channels":1}""";

    [Fact]
    public async Task Native_text_junk_in_the_audio_phase_is_dropped_and_an_odd_length_frame_is_published_byte_for_byte()
    {
        var id = "native-" + Guid.NewGuid().ToString("N");
        var parallel = fixture.GoodExotelCallAsync(fixture.Main, streamNumber: 91);
        using (var socket = await NativeAsync(SecurityFixture.Uri(fixture.Main)))
        {
            await SecurityFixture.SendTextAsync(socket, NativeStart(id));
            await socket.SendAsync(ExotelClient.Pcm(3, 1, 640), WebSocketMessageType.Binary, true, CancellationToken.None);
            await SecurityFixture.SendTextAsync(socket, "this is not json");
            await SecurityFixture.SendTextAsync(socket, """{"event":"start","stream_id":"second"}""");
            await SecurityFixture.SendTextAsync(socket, """{"event":"pause"}""");
            await socket.SendAsync(new byte[641], WebSocketMessageType.Binary, true, CancellationToken.None);
            await socket.SendAsync(ExotelClient.Pcm(3, 3, 640), WebSocketMessageType.Binary, true, CancellationToken.None);
            await SecurityFixture.SendTextAsync(socket, """{"event":"stop"}""");
            Assert.Equal(WebSocketCloseStatus.NormalClosure, (await SecurityFixture.WaitForCloseAsync(socket, TimeSpan.FromSeconds(30))).Status);
        }

        await parallel;

        // The odd frame (641 bytes) is not whole 16-bit samples, but it is what was sent: published byte for byte (CONTRACT §5).
        var audio = await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, id);
        Assert.Equal([1L, 2L, 3L], audio.Select(a => a.Seq));
        Assert.Equal(641, audio[1].Audio.Length);
        var lifecycle = await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, id);
        Assert.Equal(["start", "stop"], lifecycle.Select(e => e["event"]));
        Assert.Contains(fixture.Logs.Entries, e => e.Message.Contains("a second start", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Native_binary_before_start_closes_1008()
    {
        using var socket = await NativeAsync(SecurityFixture.Uri(fixture.Main));
        await socket.SendAsync(new byte[320], WebSocketMessageType.Binary, true, CancellationToken.None);
        var (status, description) = await SecurityFixture.WaitForCloseAsync(socket, TimeSpan.FromSeconds(15));
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, status);
        Assert.Contains("start message before audio", description, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"event":"start","stream_id":"n-ghz","sample_rate":1000000000}""", "1000000000 Hz")]
    [InlineData("""{"event":"start","stream_id":"n-neg","sample_rate":-8000}""", "sample_rate")]
    [InlineData("""{"event":"start","stream_id":"n-ch","channels":2}""", "channels must be 1")]
    [InlineData("""{"event":"start","stream_id":"bad id with spaces"}""", "stream_id")]
    [InlineData("""{"event":"start","stream_id":""", "not valid JSON")]
    public async Task Native_invalid_start_closes_1007_with_the_reason(string start, string reason)
    {
        using var socket = await NativeAsync(SecurityFixture.Uri(fixture.Main));
        await SecurityFixture.SendTextAsync(socket, start);
        var (status, description) = await SecurityFixture.WaitForCloseAsync(socket, TimeSpan.FromSeconds(15));
        Assert.Equal(WebSocketCloseStatus.InvalidPayloadData, status);
        Assert.Contains(reason, description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exotel_media_with_the_largest_sequence_number_is_malformed_and_the_next_frame_without_one_lands()
    {
        var sid = Guid.NewGuid().ToString("N");
        var malformedBefore = await fixture.MetricAsync("ingest_messages_malformed_total");
        await using (var client = await ExotelClient.ConnectAsync(SecurityFixture.Uri(fixture.Main)))
        {
            await client.StartAsync(sid, "max-seq");
            await client.MediaAsync(sid, long.MaxValue, 1, ExotelClient.Pcm(4, 1));
            await client.SendTextAsync("{\"event\":\"media\",\"stream_sid\":\"" + sid + "\",\"media\":{\"payload\":\"AAAAAA==\"}}");
            await client.StopAsync(sid, 3);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(30)));
        }

        // 2^63-1 is far beyond the stream's position (1): malformed, and it does not move the position, so the next frame
        // (which carries no number) is 2, not a wrap-around or a "duplicate".
        Assert.Equal([2L], (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid)).Select(a => a.Seq));
        Assert.True(await RedisStreams.WaitUntilAsync(async () => await fixture.MetricAsync("ingest_messages_malformed_total") > malformedBefore, TimeSpan.FromSeconds(5)));
        Assert.DoesNotContain(await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid), e => e["event"] == "gap");
    }
}
