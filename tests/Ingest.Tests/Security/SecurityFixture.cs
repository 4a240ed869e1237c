using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.RegularExpressions;
using Ingest.Gateway.Ingest;
using Ingest.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ingest.Tests.Security;

/// <summary>
/// One silo and two gateways. <see cref="Main"/> logs everything at Debug into <see cref="Logs"/>, validates issuer and
/// audience, and reaches Redis through a password-protected ACL user. <see cref="Small"/> has tiny limits, trusts
/// loopback as a proxy (so tests pick their caller address with X-Forwarded-For) and allows 3 wrong credentials per minute.
/// </summary>
public sealed class SecurityFixture : IAsyncLifetime
{
    public const string RedisUser = "gateway";
    public const string RedisPassword = "redis-pa55-never-logged";
    public const int SmallMaxMessageBytes = 4096;
    public const int SmallAuthFailureLimit = 3;
    public const int SmallAuthFailureDelayMs = 300;

    public IngestStack Stack { get; private set; } = null!;

    public WebApplication Main { get; private set; } = null!;

    public WebApplication Small { get; private set; } = null!;

    public CapturingLoggerProvider Logs { get; } = new();

    /// <summary>What <see cref="Small"/> logged (REFUSAL_LOG_SECONDS at its default).</summary>
    public CapturingLoggerProvider SmallLogs { get; } = new();

    public async Task InitializeAsync()
    {
        Stack = await IngestStack.StartAsync();
        await Stack.Connection.GetDatabase().ExecuteAsync("ACL", "SETUSER", RedisUser, "on", ">" + RedisPassword, "~*", "&*", "+@all");
        await Stack.AddSiloAsync();
        Main = await Stack.AddGatewayAsync(
            new()
            {
                ["SUPPORT_EXOTEL"] = "true",
                ["REDIS_URL"] = $"redis://{RedisUser}:{RedisPassword}@{Stack.Redis.ConnectionString}",
                ["JWT_ISSUER"] = SecurityTokens.Issuer,
                ["JWT_AUDIENCE"] = SecurityTokens.Audience,
                ["AUTH_FAILURE_LIMIT"] = "100000",
                // The tests read every refusal's line on this gateway; Small keeps the default window.
                ["REFUSAL_LOG_SECONDS"] = "0",
                ["Logging:LogLevel:Default"] = "Debug",
                ["Logging:LogLevel:Microsoft.AspNetCore"] = "Debug",
                ["Logging:LogLevel:Orleans"] = "Information",
            },
            b => b.Logging.AddProvider(Logs));
        Small = await Stack.AddGatewayAsync(new()
        {
            ["TRUSTED_PROXIES"] = "127.0.0.1",
            ["JWT_ISSUER"] = SecurityTokens.Issuer,
            ["JWT_AUDIENCE"] = SecurityTokens.Audience,
            ["MAX_MESSAGE_BYTES"] = SmallMaxMessageBytes.ToString(CultureInfo.InvariantCulture),
            ["START_TIMEOUT_SECONDS"] = "1",
            ["IDLE_TIMEOUT_SECONDS"] = "2",
            ["MAX_CALL_SECONDS"] = "3",
            ["MAX_CONNECTIONS_PER_IP"] = "2",
            ["MAX_CONNECTIONS"] = "4",
            ["AUTH_FAILURE_LIMIT"] = SmallAuthFailureLimit.ToString(CultureInfo.InvariantCulture),
            ["AUTH_FAILURE_DELAY_MS"] = SmallAuthFailureDelayMs.ToString(CultureInfo.InvariantCulture),
        }, b => b.Logging.AddProvider(SmallLogs));
        var ready = await RedisStreams.WaitUntilAsync(() => Task.FromResult(IngestStack.SupportsExotel(Main) && IngestStack.SupportsExotel(Small)), TimeSpan.FromSeconds(10));
        if (!ready)
        {
            throw new InvalidOperationException("SUPPORT_EXOTEL did not reach every gateway");
        }
    }

    public async Task DisposeAsync() => await Stack.DisposeAsync();

    public static Uri Uri(WebApplication gateway, string query = "") => IngestStack.IngestUri(gateway, query);

    public static int Connections(WebApplication gateway) => gateway.Services.GetRequiredService<SessionRegistry>().Connections;

    public static async Task WaitForNoConnectionsAsync(WebApplication gateway) =>
        Assert.True(await RedisStreams.WaitUntilAsync(() => Task.FromResult(Connections(gateway) == 0), TimeSpan.FromSeconds(15)), "connections did not drain");

    /// <summary>A well-behaved Exotel call; asserts it lands byte for byte with a start and a callended stop.</summary>
    public async Task GoodExotelCallAsync(WebApplication gateway, int frames = 50, int streamNumber = 77, TimeSpan? pace = null)
    {
        var sid = Guid.NewGuid().ToString("N");
        await using (var client = await ExotelClient.ConnectAsync(Uri(gateway)))
        {
            await client.ConnectedAsync();
            await client.StartAsync(sid, "good-call");
            for (var chunk = 1; chunk <= frames; chunk++)
            {
                await client.MediaAsync(sid, chunk + 1, chunk, ExotelClient.Pcm(streamNumber, chunk));
                if (pace is { } delay)
                {
                    await Task.Delay(delay);
                }
            }

            await client.StopAsync(sid, frames + 2);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(30)));
        }

        var audio = await RedisStreams.ReadAudioAsync(Stack.Connection, sid);
        Assert.Equal(Enumerable.Range(2, frames).Select(i => (long)i), audio.Select(a => a.Seq));
        for (var i = 0; i < frames; i++)
        {
            Assert.Equal(ExotelClient.Pcm(streamNumber, i + 1), audio[i].Audio);
        }

        var lifecycle = await RedisStreams.ReadLifecycleAsync(Stack.Connection, sid);
        Assert.Equal(["start", "stop"], lifecycle.Select(e => e["event"]));
        Assert.Equal("callended", lifecycle[1]["reason"]);
    }

    /// <summary>The sum of a counter on /metrics (every gateway in this process shares the meter).</summary>
    public async Task<long> MetricAsync(string name)
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync(IngestStack.HttpUri(Main, "/metrics"));
        long sum = 0;
        foreach (Match m in Regex.Matches(text, "^" + Regex.Escape(name) + @"(\{[^}]*\})? ([0-9.eE+]+)", RegexOptions.Multiline))
        {
            sum += (long)double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
        }

        return sum;
    }

    public static Task SendTextAsync(ClientWebSocket socket, string text) =>
        socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, CancellationToken.None);

    /// <summary>Waits for the server's close frame; returns its status and description (null status if none came).</summary>
    public static async Task<(WebSocketCloseStatus? Status, string? Description)> WaitForCloseAsync(ClientWebSocket socket, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, cts.Token);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return (result.CloseStatus, result.CloseStatusDescription);
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
            return (socket.CloseStatus, socket.CloseStatusDescription ?? ex.GetType().Name + ": " + ex.Message);
        }
    }
}

[CollectionDefinition(Name)]
public sealed class SecurityCollection : ICollectionFixture<SecurityFixture>
{
    public const string Name = "security";
}
