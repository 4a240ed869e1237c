using System.Net.WebSockets;
using Ingest.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;

namespace Ingest.Tests.Security;

/// <summary>A second connection presenting a live stream id is refused with 1008; the live call is untouched.</summary>
[Collection(SecurityCollection.Name)]
public sealed class HijackTests(SecurityFixture fixture)
{
    private async Task HijackIsRefusedAsync(WebApplication hijackVia)
    {
        var sid = Guid.NewGuid().ToString("N");
        await using var owner = await ExotelClient.ConnectAsync(SecurityFixture.Uri(fixture.Main));
        await owner.StartAsync(sid, "owner");
        await owner.MediaAsync(sid, 2, 1, ExotelClient.Pcm(11, 1));
        Assert.True(await RedisStreams.WaitUntilAsync(async () => (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid)).Count == 1, TimeSpan.FromSeconds(10)));

        await using (var thief = await ExotelClient.ConnectAsync(SecurityFixture.Uri(hijackVia)))
        {
            await thief.StartAsync(sid, "thief");
            await thief.MediaAsync(sid, 3, 2, ExotelClient.Pcm(66, 2));
            var (status, description) = await SecurityFixture.WaitForCloseAsync(thief.Socket, TimeSpan.FromSeconds(15));
            Assert.Equal(WebSocketCloseStatus.PolicyViolation, status);
            Assert.Equal("stream id is live on another connection", description);
        }

        for (var chunk = 2; chunk <= 10; chunk++)
        {
            await owner.MediaAsync(sid, chunk + 1, chunk, ExotelClient.Pcm(11, chunk));
        }

        await owner.StopAsync(sid, 12);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await owner.WaitForCloseAsync(TimeSpan.FromSeconds(30)));

        var audio = await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid);
        Assert.Equal(Enumerable.Range(2, 10).Select(i => (long)i), audio.Select(a => a.Seq));
        Assert.Equal(ExotelClient.Pcm(11, 2), audio[1].Audio);
        var lifecycle = await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid);
        Assert.Equal(["start", "stop"], lifecycle.Select(e => e["event"]));
        Assert.Equal("owner", lifecycle[0]["call_sid"]);
    }

    [Fact]
    public async Task Second_connection_with_a_live_stream_id_on_the_same_gateway_is_refused_1008_and_logged()
    {
        await HijackIsRefusedAsync(fixture.Main);
        Assert.Contains(fixture.Logs.Entries, e => e.Message.Contains("the stream id is live on another connection", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Second_connection_with_a_live_stream_id_on_another_gateway_is_refused_1008_by_the_grain() =>
        await HijackIsRefusedAsync(fixture.Small);
}
