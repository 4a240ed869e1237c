using System.Net.WebSockets;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Security;

/// <summary>The configurable limits, on a gateway with tiny values (see <see cref="SecurityFixture.Small"/>).</summary>
[Collection(SecurityCollection.Name)]
public sealed class LimitTests(SecurityFixture fixture)
{
    private static Dictionary<string, string> From(string address) => new()
    {
        ["Authorization"] = ExotelClient.BasicHeader(IngestStack.ExotelUser, IngestStack.ExotelPassword),
        ["X-Forwarded-For"] = address,
    };

    private async Task<ClientWebSocket> OpenAsync(string address)
    {
        var socket = ExotelClient.NewSocket(From(address));
        await socket.ConnectAsync(SecurityFixture.Uri(fixture.Small), CancellationToken.None);
        return socket;
    }

    [Fact]
    public async Task Connection_that_sends_no_start_within_start_timeout_is_closed_1008_with_the_reason()
    {
        using var socket = await OpenAsync("203.0.113.10");

        // "connected" does not extend the start timeout.
        await SecurityFixture.SendTextAsync(socket, """{"event":"connected"}""");
        var (status, description) = await SecurityFixture.WaitForCloseAsync(socket, TimeSpan.FromSeconds(10));
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, status);
        Assert.Equal("no start message within 1 s", description);
    }

    [Fact]
    public async Task Call_silent_for_idle_timeout_is_closed_1008_and_ends_with_reason_idle_timeout()
    {
        var sid = Guid.NewGuid().ToString("N");
        using var socket = await OpenAsync("203.0.113.11");
        await SecurityFixture.SendTextAsync(socket, "{\"event\":\"start\",\"stream_sid\":\"" + sid + "\",\"start\":{\"call_sid\":\"idle\"}}");
        var (status, description) = await SecurityFixture.WaitForCloseAsync(socket, TimeSpan.FromSeconds(10));
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, status);
        Assert.Equal("idle timeout", description);
        Assert.True(await RedisStreams.WaitUntilAsync(async () => (await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid)).Count == 2, TimeSpan.FromSeconds(10)));
        Assert.Equal("idle_timeout", (await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid))[1]["reason"]);
    }

    [Fact]
    public async Task Call_longer_than_max_call_seconds_is_closed_1008_and_ends_with_reason_max_duration()
    {
        var sid = Guid.NewGuid().ToString("N");
        await using var client = await ExotelClient.ConnectAsync(SecurityFixture.Uri(fixture.Small));
        await client.StartAsync(sid, "long");
        var sending = Task.Run(async () =>
        {
            for (var chunk = 1; chunk <= 100 && client.Socket.State == WebSocketState.Open; chunk++)
            {
                try
                {
                    await client.MediaAsync(sid, chunk + 1, chunk, ExotelClient.Pcm(2, chunk));
                }
                catch (WebSocketException)
                {
                    return;
                }

                await Task.Delay(100);
            }
        });
        var (status, description) = await SecurityFixture.WaitForCloseAsync(client.Socket, TimeSpan.FromSeconds(15));
        await sending;
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, status);
        Assert.Equal("maximum call duration reached", description);
        Assert.True(await RedisStreams.WaitUntilAsync(async () => (await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid)).Count == 2, TimeSpan.FromSeconds(10)));
        var lifecycle = await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid);
        Assert.Equal("max_duration", lifecycle[1]["reason"]);
        var audio = await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid);
        Assert.InRange(audio.Count, 10, 40);
        Assert.Equal(Enumerable.Range(2, audio.Count).Select(i => (long)i), audio.Select(a => a.Seq));
    }

    [Fact]
    public async Task Connections_beyond_max_connections_per_ip_get_503_and_other_addresses_do_not()
    {
        await SecurityFixture.WaitForNoConnectionsAsync(fixture.Small);
        using var first = await OpenAsync("203.0.113.20");
        using var second = await OpenAsync("203.0.113.20");
        using (var third = ExotelClient.NewSocket(From("203.0.113.20")))
        {
            await Assert.ThrowsAsync<WebSocketException>(() => third.ConnectAsync(SecurityFixture.Uri(fixture.Small), CancellationToken.None));
            Assert.Equal(503, (int)third.HttpStatusCode);
            Assert.Equal("1", third.HttpResponseHeaders?["Retry-After"].Single());
        }

        // Another address is not affected by this one's limit.
        Assert.Equal(101, await ExotelClient.TryUpgradeAsync(SecurityFixture.Uri(fixture.Small), From("203.0.113.21")));
    }

    [Fact]
    public async Task Connections_beyond_max_connections_get_503()
    {
        await SecurityFixture.WaitForNoConnectionsAsync(fixture.Small);
        var open = new List<ClientWebSocket>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                open.Add(await OpenAsync($"203.0.113.{30 + i}"));
            }

            Assert.Equal(503, await ExotelClient.TryUpgradeAsync(SecurityFixture.Uri(fixture.Small), From("203.0.113.40")));
        }
        finally
        {
            foreach (var socket in open)
            {
                socket.Dispose();
            }
        }
    }
}
