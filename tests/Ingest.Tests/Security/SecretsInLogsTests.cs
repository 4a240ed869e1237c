using System.Net.WebSockets;
using System.Text;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Security;

/// <summary>Credentials, tokens and the Redis password never reach a log line, at Debug level, whatever happens.</summary>
[Collection(SecurityCollection.Name)]
public sealed class SecretsInLogsTests(SecurityFixture fixture)
{
    [Fact]
    public async Task Basic_credentials_tokens_and_the_redis_password_never_appear_in_the_gateway_log()
    {
        const string WrongPassword = "wrong-pa55word-guess";
        var goodToken = SecurityTokens.Create();
        var queryToken = SecurityTokens.Create();
        var badToken = SecurityTokens.Create(secret: "a-guessed-secret-that-is-long-enough-too!");

        // An authenticated Exotel call, then a failed Basic attempt.
        var sid = Guid.NewGuid().ToString("N");
        await using (var client = await ExotelClient.ConnectAsync(SecurityFixture.Uri(fixture.Main)))
        {
            await client.StartAsync(sid, "secret-call");
            await client.MediaAsync(sid, 2, 1, ExotelClient.Pcm(1, 1));
            await client.SendTextAsync("{not json");
            await client.StopAsync(sid, 3);
            await client.WaitForCloseAsync(TimeSpan.FromSeconds(30));
        }

        Assert.Equal(401, await ExotelClient.TryUpgradeAsync(SecurityFixture.Uri(fixture.Main),
            new Dictionary<string, string> { ["Authorization"] = ExotelClient.BasicHeader(IngestStack.ExotelUser, WrongPassword) }));

        // Native sessions with the token in the header and in the query, then failed ones.
        foreach (var (uri, headers) in new[]
        {
            (SecurityFixture.Uri(fixture.Main), new Dictionary<string, string> { ["Authorization"] = "Bearer " + goodToken }),
            (SecurityFixture.Uri(fixture.Main, "?token=" + queryToken), new Dictionary<string, string>()),
        })
        {
            using var socket = ExotelClient.NewSocket(headers);
            await socket.ConnectAsync(uri, CancellationToken.None);
            var id = "secret-" + Guid.NewGuid().ToString("N");
            await SecurityFixture.SendTextAsync(socket, "{\"event\":\"start\",\"stream_id\":\"" + id + "\"}");
            await socket.SendAsync(new byte[320], WebSocketMessageType.Binary, true, CancellationToken.None);
            await SecurityFixture.SendTextAsync(socket, "{\"event\":\"stop\"}");
            await SecurityFixture.WaitForCloseAsync(socket, TimeSpan.FromSeconds(30));
        }

        Assert.Equal(401, await ExotelClient.TryUpgradeAsync(SecurityFixture.Uri(fixture.Main), new Dictionary<string, string> { ["Authorization"] = "Bearer " + badToken }));
        Assert.Equal(401, await ExotelClient.TryUpgradeAsync(SecurityFixture.Uri(fixture.Main, "?token=" + badToken)));

        var log = fixture.Logs.AllText();
        Assert.Contains("Start event received", log, StringComparison.Ordinal);
        Assert.Contains("Refused upgrade with 401", log, StringComparison.Ordinal);

        string[] secrets =
        [
            IngestStack.ExotelPassword,
            WrongPassword,
            Convert.ToBase64String(Encoding.UTF8.GetBytes(IngestStack.ExotelUser + ":" + IngestStack.ExotelPassword)),
            Convert.ToBase64String(Encoding.UTF8.GetBytes(IngestStack.ExotelUser + ":" + WrongPassword)),
            IngestStack.JwtSecret,
            SecurityFixture.RedisPassword,
            goodToken.Split('.')[2],
            queryToken.Split('.')[2],
            badToken.Split('.')[2],
            queryToken.Split('.')[1],
        ];
        foreach (var secret in secrets)
        {
            var leaks = fixture.Logs.Entries.Where(e => e.ToString().Contains(secret, StringComparison.Ordinal)).Select(e => $"{e.Level} {e.Category}").Distinct();
            Assert.False(log.Contains(secret, StringComparison.Ordinal), $"a secret ({secret[..4]}...) is in the log: {string.Join("; ", leaks)}");
        }
    }
}
