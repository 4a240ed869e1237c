using System.Net.WebSockets;
using Ingest.Gateway.Protocol;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Security;

/// <summary>
/// CONTRACT §5, §7 through real Kestrel, a real silo and Redis: a call declaring μ-law or A-law lands as the exact
/// PCM16LE expansion of what was sent, under a start entry that says encoding=pcm16le and source_encoding as declared.
/// </summary>
[Collection(SecurityCollection.Name)]
public sealed class G711CallTests(SecurityFixture fixture)
{
    [Theory]
    [InlineData("audio/x-mulaw;rate=8000", SourceEncoding.MuLaw)]
    [InlineData("audio/x-alaw", SourceEncoding.ALaw)]
    public async Task A_G711_call_lands_as_the_exact_PCM16LE_decode_of_what_was_sent(string declared, SourceEncoding law)
    {
        var sid = Guid.NewGuid().ToString("N");
        await using var call = await ExotelClient.ConnectAsync(SecurityFixture.Uri(fixture.Main));
        await call.SendJsonAsync(new
        {
            @event = "start",
            sequence_number = "1",
            stream_sid = sid,
            start = new
            {
                stream_sid = sid,
                call_sid = "g711",
                account_sid = "exotelt",
                media_format = new { encoding = declared, sample_rate = "8000", bit_rate = "64kbps" },
            },
        });

        var sent = new List<byte[]>();
        for (var chunk = 1; chunk <= 20; chunk++)
        {
            var payload = Enumerable.Range(0, 800).Select(i => (byte)((i * 7) + (chunk * 13))).ToArray();
            sent.Add(payload);
            await call.MediaAsync(sid, chunk + 1, chunk, payload);
        }

        await call.StopAsync(sid, 22);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await call.WaitForCloseAsync(TimeSpan.FromSeconds(30)));
        Assert.True(await RedisStreams.WaitUntilAsync(
            async () => (await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid)).Any(e => e["event"] == "stop"), TimeSpan.FromSeconds(20)));

        var audio = await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid);
        Assert.Equal(Enumerable.Range(2, 20).Select(i => (long)i), audio.Select(a => a.Seq));
        for (var i = 0; i < sent.Count; i++)
        {
            Assert.Equal(G711.ToPcm16(sent[i], law), audio[i].Audio);
        }

        var start = Assert.Single(await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid), e => e["event"] == "start");
        Assert.Equal("pcm16le", start["encoding"]);
        Assert.Equal(declared, start["source_encoding"]);
        Assert.Equal("8000", start["sample_rate"]);
    }

    [Fact]
    public async Task A_PCM16_call_has_no_source_encoding_and_its_bytes_land_unchanged()
    {
        var sid = Guid.NewGuid().ToString("N");
        await using var call = await ExotelClient.ConnectAsync(SecurityFixture.Uri(fixture.Main));
        await call.StartAsync(sid, "pcm");
        await call.MediaAsync(sid, 2, 1, ExotelClient.Pcm(5, 1));
        await call.StopAsync(sid, 3);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await call.WaitForCloseAsync(TimeSpan.FromSeconds(30)));
        Assert.True(await RedisStreams.WaitUntilAsync(
            async () => (await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid)).Any(e => e["event"] == "stop"), TimeSpan.FromSeconds(20)));
        Assert.Equal(ExotelClient.Pcm(5, 1), Assert.Single(await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid)).Audio);
        var start = Assert.Single(await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid), e => e["event"] == "start");
        Assert.Equal("pcm16le", start["encoding"]);
        Assert.False(start.ContainsKey("source_encoding"));
    }
}
