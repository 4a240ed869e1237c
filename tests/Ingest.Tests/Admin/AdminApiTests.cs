using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Ingest.Grains;
using Ingest.Grains.Interfaces;
using Ingest.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;

namespace Ingest.Tests.Admin;

/// <summary>
/// A cluster of its own (the tests flip the cluster-wide flag): two silos and two gateways.
/// <see cref="Strict"/> has Basic credentials, an allow-list that holds none of the test addresses, trusts loopback as a
/// proxy (so each attempt picks its address with X-Forwarded-For), 3 wrong credentials per address, one connection per
/// address. <see cref="Open"/> has Basic credentials, no allow-list and no trusted proxy.
/// </summary>
public sealed class AdminFixture : IAsyncLifetime
{
    public IngestStack Stack { get; private set; } = null!;

    public WebApplication Strict { get; private set; } = null!;

    public WebApplication Open { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Stack = await IngestStack.StartAsync();
        await Stack.AddSiloAsync();
        await Stack.AddSiloAsync();
        Strict = await Stack.AddGatewayAsync(new()
        {
            ["SUPPORT_EXOTEL"] = "true",
            ["EXOTEL_IP_ALLOWLIST"] = "192.0.2.0/24",
            ["TRUSTED_PROXIES"] = "127.0.0.1",
            ["AUTH_FAILURE_LIMIT"] = "3",
            ["AUTH_FAILURE_DELAY_MS"] = "0",
            ["MAX_CONNECTIONS_PER_IP"] = "1",
        });
        Open = await Stack.AddGatewayAsync();
        if (!await RedisStreams.WaitUntilAsync(() => Task.FromResult(IngestStack.SupportsExotel(Strict) && IngestStack.SupportsExotel(Open)), TimeSpan.FromSeconds(10)))
        {
            throw new InvalidOperationException("SUPPORT_EXOTEL did not reach every gateway");
        }
    }

    public async Task DisposeAsync() => await Stack.DisposeAsync();
}

/// <summary>CONTRACT §8's admin API: <c>GET /v1/admin/refusals</c> and <c>GET /v1/admin/calls</c>.</summary>
public sealed class AdminApiTests(AdminFixture fixture, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<AdminFixture>
{
    private const string WrongPassword = "wrong-pa55word-never-shown";

    private static readonly string[] ContractReasons =
        ["exotel_disabled", "no_credentials", "bad_credentials", "not_allowlisted", "bad_token", "rate_limited", "draining", "over_capacity", "starting"];

    private static Dictionary<string, string> From(string address, string? authorization = null)
    {
        var headers = new Dictionary<string, string> { ["X-Forwarded-For"] = address };
        if (authorization is not null)
        {
            headers["Authorization"] = authorization;
        }

        return headers;
    }

    private static string RightBasic => ExotelClient.BasicHeader(IngestStack.ExotelUser, IngestStack.ExotelPassword);

    private static async Task<(string Body, JsonElement[] Items)> AdminGetAsync(WebApplication gateway, string path)
    {
        using var response = await AdminApi.GetAsync(gateway, path, Tokens.Create(role: "admin"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        using var document = JsonDocument.Parse(body);
        Assert.Equal(JsonValueKind.Array, document.RootElement.ValueKind);
        return (body, document.RootElement.EnumerateArray().Select(e => e.Clone()).ToArray());
    }

    private static JsonElement Single(JsonElement[] refusals, string remote) =>
        Assert.Single(refusals, r => r.GetProperty("remote").GetString() == remote);

    [Theory]
    [InlineData("/v1/admin/refusals")]
    [InlineData("/v1/admin/calls")]
    [InlineData("/v1/admin/silos")]
    public async Task Admin_endpoints_need_a_token_with_role_admin(string path)
    {
        using (var anonymous = await AdminApi.GetAsync(fixture.Open, path, token: null))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        using (var agent = await AdminApi.GetAsync(fixture.Open, path, Tokens.Create(role: "agent")))
        {
            Assert.Equal(HttpStatusCode.Forbidden, agent.StatusCode);
        }

        using var admin = await AdminApi.GetAsync(fixture.Open, path, Tokens.Create(role: "admin"));
        Assert.Equal(HttpStatusCode.OK, admin.StatusCode);
    }

    [Fact]
    public async Task Every_refused_upgrade_is_listed_newest_first_with_its_reason_and_the_address_judged_and_no_secret()
    {
        var strict = IngestStack.IngestUri(fixture.Strict);
        var wrongBasic = ExotelClient.BasicHeader(IngestStack.ExotelUser, WrongPassword);
        var badToken = Tokens.Create(secret: "another-secret-that-is-also-long-enough!!", role: "admin");

        Assert.Equal(401, await ExotelClient.TryUpgradeAsync(strict, From("203.0.113.1", wrongBasic)));
        Assert.Equal(401, await ExotelClient.TryUpgradeAsync(strict, From("203.0.113.2")));
        Assert.Equal(401, await ExotelClient.TryUpgradeAsync(strict, From("203.0.113.3", "Bearer " + badToken)));
        Assert.Equal(401, await ExotelClient.TryUpgradeAsync(new Uri(strict + "?token=" + badToken), From("203.0.113.10")));

        // Wrong credentials past the budget (3) get 429; only the 429 is rate_limited.
        var statuses = new List<int>();
        for (var i = 0; i < 5 && !statuses.Contains(429); i++)
        {
            statuses.Add(await ExotelClient.TryUpgradeAsync(strict, From("203.0.113.4", wrongBasic)));
        }

        Assert.Equal(429, statuses[^1]);

        // One connection per address: the second from the same address is over capacity.
        using (var first = ExotelClient.NewSocket(From("203.0.113.5", RightBasic)))
        {
            await first.ConnectAsync(strict, CancellationToken.None);
            Assert.Equal(503, await ExotelClient.TryUpgradeAsync(strict, From("203.0.113.5", RightBasic)));
            await first.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        }

        // Exotel support off: right credentials are refused as exotel_disabled.
        try
        {
            await AdminApi.PutSupportExotelAsync(fixture.Open, enabled: false);
            Assert.True(await RedisStreams.WaitUntilAsync(() => Task.FromResult(!IngestStack.SupportsExotel(fixture.Strict)), TimeSpan.FromSeconds(5)));
            Assert.Equal(401, await ExotelClient.TryUpgradeAsync(strict, From("203.0.113.6", RightBasic)));
        }
        finally
        {
            await AdminApi.PutSupportExotelAsync(fixture.Open, enabled: true);
            Assert.True(await RedisStreams.WaitUntilAsync(
                () => Task.FromResult(IngestStack.SupportsExotel(fixture.Strict) && IngestStack.SupportsExotel(fixture.Open)), TimeSpan.FromSeconds(5)));
        }

        var (body, refusals) = await AdminGetAsync(fixture.Strict, "/v1/admin/refusals");
        output.WriteLine(body);

        var expected = new (string Remote, string Reason, int Status, string? Protocol)[]
        {
            ("203.0.113.1", "bad_credentials", 401, "exotel"),
            ("203.0.113.2", "not_allowlisted", 401, "exotel"),
            ("203.0.113.3", "bad_token", 401, "native"),
            ("203.0.113.10", "bad_token", 401, "native"),
            ("203.0.113.5", "over_capacity", 503, "exotel"),
            ("203.0.113.6", "exotel_disabled", 401, "exotel"),
        };
        var positions = new List<int>();
        foreach (var (remote, reason, status, protocol) in expected)
        {
            var entry = Single(refusals, remote);
            Assert.Equal(reason, entry.GetProperty("reason").GetString());
            Assert.Equal(status, entry.GetProperty("status").GetInt32());
            Assert.Equal(protocol, entry.GetProperty("protocol").GetString());
            Assert.False(string.IsNullOrWhiteSpace(entry.GetProperty("detail").GetString()));
            var at = DateTimeOffset.Parse(entry.GetProperty("at").GetString()!, CultureInfo.InvariantCulture);
            Assert.EndsWith("Z", entry.GetProperty("at").GetString(), StringComparison.Ordinal);
            Assert.InRange(at, DateTimeOffset.UtcNow.AddMinutes(-2), DateTimeOffset.UtcNow.AddSeconds(5));
            positions.Add(Array.IndexOf(refusals, entry));
        }

        // Newest first: each later attempt comes before the earlier ones.
        Assert.Equal(positions.OrderByDescending(p => p), positions);
        var limited = refusals.Where(r => r.GetProperty("remote").GetString() == "203.0.113.4").ToArray();
        Assert.Equal(statuses.Count, limited.Length);
        Assert.Equal("rate_limited", limited[0].GetProperty("reason").GetString());
        Assert.Equal(429, limited[0].GetProperty("status").GetInt32());
        Assert.All(limited.Skip(1), r => Assert.Equal("bad_credentials", r.GetProperty("reason").GetString()));

        Assert.All(refusals, r => Assert.Contains(r.GetProperty("reason").GetString(), ContractReasons));
        foreach (var secret in new[] { WrongPassword, IngestStack.ExotelPassword, badToken, badToken.Split('.')[2], wrongBasic, wrongBasic[6..], RightBasic[6..], "Bearer " })
        {
            Assert.DoesNotContain(secret, body, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Refusals_are_kept_per_gateway_and_an_untrusted_x_forwarded_for_is_not_the_address_judged()
    {
        var before = (await AdminGetAsync(fixture.Strict, "/v1/admin/refusals")).Items.Length;

        // No allow-list on this gateway: no credential at all is no_credentials, judged by the socket's address.
        Assert.Equal(401, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(fixture.Open), From("198.51.100.99")));
        var (_, refusals) = await AdminGetAsync(fixture.Open, "/v1/admin/refusals");
        var newest = refusals[0];
        Assert.Equal("no_credentials", newest.GetProperty("reason").GetString());
        Assert.Equal("127.0.0.1", newest.GetProperty("remote").GetString());
        Assert.DoesNotContain(refusals, r => r.GetProperty("remote").GetString() == "198.51.100.99");
        Assert.Equal(before, (await AdminGetAsync(fixture.Strict, "/v1/admin/refusals")).Items.Length);

        // A plain GET is not a refused upgrade.
        using var http = new HttpClient();
        using var plain = await http.GetAsync(IngestStack.HttpUri(fixture.Open, "/v1/ingest"));
        Assert.Equal(HttpStatusCode.BadRequest, plain.StatusCode);
        Assert.Equal(refusals.Length, (await AdminGetAsync(fixture.Open, "/v1/admin/refusals")).Items.Length);
    }

    [Fact]
    public async Task Upgrade_refused_while_draining_is_listed_as_draining_and_counted_by_reason()
    {
        var gateway = await fixture.Stack.AddGatewayAsync(new() { ["DRAIN_GRACE_SECONDS"] = "20" });
        var sid = "drain-" + Guid.NewGuid().ToString("N");
        var call = await ExotelClient.ConnectAsync(IngestStack.IngestUri(gateway));
        await call.StartAsync(sid, "call-drain");
        var stopping = fixture.Stack.StopGatewayAsync(gateway);
        try
        {
            Assert.True(await RedisStreams.WaitUntilAsync(
                async () => await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(gateway), From("198.51.100.1", RightBasic)) == 503,
                TimeSpan.FromSeconds(5)), "no 503 while draining");
            var (_, refusals) = await AdminGetAsync(gateway, "/v1/admin/refusals");
            Assert.Equal("draining", refusals[0].GetProperty("reason").GetString());
            Assert.Equal(503, refusals[0].GetProperty("status").GetInt32());
            Assert.Equal("127.0.0.1", refusals[0].GetProperty("remote").GetString());

            using var http = new HttpClient();
            var metrics = await http.GetStringAsync(IngestStack.HttpUri(gateway, "/metrics"));
            Assert.Matches("ingest_refusals_total\\{[^}]*reason=\"draining\"[^}]*\\} [1-9]", metrics);
        }
        finally
        {
            await call.StopAsync(sid, 2);
            await call.WaitForCloseAsync(TimeSpan.FromSeconds(10));
            await call.DisposeAsync();
            await stopping;
        }
    }

    [Fact]
    public async Task Silos_lists_the_cluster_s_active_silos_with_address_status_and_name()
    {
        var (body, silos) = await AdminGetAsync(fixture.Open, "/v1/admin/silos");
        output.WriteLine(body);
        var active = silos.Where(s => s.GetProperty("status").GetString() == "Active").ToArray();
        Assert.True(active.Length >= 2, body);
        Assert.All(active, s =>
        {
            Assert.Contains("127.0.0.1:", s.GetProperty("address").GetString(), StringComparison.Ordinal);
            Assert.False(string.IsNullOrEmpty(s.GetProperty("name").GetString()));
        });
    }

    [Fact]
    public void The_gateway_names_the_call_grain_type_as_the_management_grain_does() =>
        Assert.Equal(ICallStatusGrain.ImplementationTypeName, typeof(CallStreamGrain).FullName + "," + typeof(CallStreamGrain).Assembly.GetName().Name);

    [Fact]
    public async Task Live_calls_of_the_cluster_are_listed_by_every_gateway_with_growing_frames_until_their_stop()
    {
        // An Exotel call on one gateway, a native call on the other.
        var exotel = await LiveCall.StartAsync(IngestStack.IngestUri(fixture.Strict), 41);
        var nativeId = "native-" + Guid.NewGuid().ToString("N");
        using var native = ExotelClient.NewSocket(new Dictionary<string, string> { ["Authorization"] = "Bearer " + Tokens.Create() });
        await native.ConnectAsync(IngestStack.IngestUri(fixture.Open), CancellationToken.None);
        await native.SendAsync(Encoding.UTF8.GetBytes($"{{\"event\":\"start\",\"stream_id\":\"{nativeId}\",\"sample_rate\":16000,\"encoding\":\"pcm16le\",\"channels\":1}}"),
            WebSocketMessageType.Text, true, CancellationToken.None);
        var nativeSent = 0;
        async Task SendNativeAsync(int frames)
        {
            for (var i = 0; i < frames; i++)
            {
                await native.SendAsync(ExotelClient.Pcm(42, ++nativeSent, 640), WebSocketMessageType.Binary, true, CancellationToken.None);
            }
        }

        await Task.WhenAll(exotel.SendAsync(3), SendNativeAsync(3));

        JsonElement? Find(JsonElement[] calls, string id) => calls.Cast<JsonElement?>().FirstOrDefault(c => c!.Value.GetProperty("stream_id").GetString() == id);

        async Task<(JsonElement Exotel, JsonElement Native)> WaitForFramesAsync(WebApplication gateway, long exotelFrames, long nativeFrames)
        {
            JsonElement[] calls = [];
            var seen = await RedisStreams.WaitUntilAsync(async () =>
            {
                calls = (await AdminGetAsync(gateway, "/v1/admin/calls")).Items;
                return Find(calls, exotel.StreamSid)?.GetProperty("frames").GetInt64() == exotelFrames
                    && Find(calls, nativeId)?.GetProperty("frames").GetInt64() == nativeFrames;
            }, TimeSpan.FromSeconds(10));
            Assert.True(seen, $"expected {exotelFrames}/{nativeFrames} frames: {JsonSerializer.Serialize(calls)}");
            return (Find(calls, exotel.StreamSid)!.Value, Find(calls, nativeId)!.Value);
        }

        // Each gateway lists both calls, its own and the other's.
        foreach (var gateway in new[] { fixture.Strict, fixture.Open })
        {
            var (e, n) = await WaitForFramesAsync(gateway, 3, 3);
            Assert.Equal("exotel", e.GetProperty("protocol").GetString());
            Assert.Equal("call-" + exotel.StreamSid, e.GetProperty("call_sid").GetString());
            Assert.Equal("native", n.GetProperty("protocol").GetString());
            Assert.False(n.TryGetProperty("call_sid", out _));
            foreach (var call in new[] { e, n })
            {
                var startedAt = call.GetProperty("started_at").GetString()!;
                Assert.EndsWith("Z", startedAt, StringComparison.Ordinal);
                Assert.InRange(DateTimeOffset.Parse(startedAt, CultureInfo.InvariantCulture), DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddSeconds(1));
                Assert.False(string.IsNullOrEmpty(call.GetProperty("silo").GetString()));
                Assert.Equal(0, call.GetProperty("gaps").GetInt64());
            }
        }

        // Frames grow as the calls go on.
        await Task.WhenAll(exotel.SendAsync(4), SendNativeAsync(6));
        var (exotelLater, nativeLater) = await WaitForFramesAsync(fixture.Open, 7, 9);
        output.WriteLine($"later: {exotelLater} {nativeLater}");

        // A stopped call is gone; the other stays listed.
        await exotel.FinishAsync();
        Assert.True(await RedisStreams.WaitUntilAsync(
            async () => Find((await AdminGetAsync(fixture.Open, "/v1/admin/calls")).Items, exotel.StreamSid) is null, TimeSpan.FromSeconds(10)), "the stopped call is still listed");
        Assert.NotNull(Find((await AdminGetAsync(fixture.Strict, "/v1/admin/calls")).Items, nativeId));

        await native.SendAsync("{\"event\":\"stop\"}"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        var buffer = new byte[256];
        Assert.Equal(WebSocketMessageType.Close, (await native.ReceiveAsync(buffer, CancellationToken.None)).MessageType);
        Assert.True(await RedisStreams.WaitUntilAsync(
            async () => (await AdminGetAsync(fixture.Strict, "/v1/admin/calls")).Items.Length == 0, TimeSpan.FromSeconds(10)), "calls still listed after both stopped");
    }
}
