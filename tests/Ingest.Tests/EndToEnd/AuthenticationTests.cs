using System.Net;
using System.Net.Http.Headers;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.EndToEnd;

/// <summary>The upgrade matrix of CONTRACT §3.</summary>
[Collection(EndToEndCollection.Name)]
public sealed class AuthenticationTests(EndToEndFixture fixture)
{
    private static Dictionary<string, string> Header(string name, string value) => new() { [name] = value };

    [Fact]
    public async Task No_credentials_get_401_with_a_challenge()
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, IngestStack.HttpUri(fixture.Main, "/v1/ingest"));
        request.Headers.Connection.Add("Upgrade");
        request.Headers.Upgrade.Add(new ProductHeaderValue("websocket"));
        request.Headers.Add("Sec-WebSocket-Version", "13");
        request.Headers.Add("Sec-WebSocket-Key", Convert.ToBase64String(Guid.NewGuid().ToByteArray()));
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.NotEmpty(response.Headers.WwwAuthenticate);
    }

    [Fact]
    public async Task Right_basic_credentials_are_accepted() =>
        Assert.Equal(101, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(fixture.Main),
            Header("Authorization", ExotelClient.BasicHeader(IngestStack.ExotelUser, IngestStack.ExotelPassword))));

    [Fact]
    public async Task Wrong_basic_password_gets_401() =>
        Assert.Equal(401, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(fixture.Main),
            Header("Authorization", ExotelClient.BasicHeader(IngestStack.ExotelUser, "wrong"))));

    [Fact]
    public async Task Allow_listed_address_is_accepted_without_credentials() =>
        Assert.Equal(101, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(fixture.AllowLoopback)));

    [Fact]
    public async Task Address_outside_the_allow_list_gets_401() =>
        Assert.Equal(401, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(fixture.AllowRemoteUntrusted)));

    [Fact]
    public async Task Forged_x_forwarded_for_from_an_untrusted_address_is_ignored() =>
        Assert.Equal(401, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(fixture.AllowRemoteUntrusted),
            Header("X-Forwarded-For", "198.51.100.7")));

    [Fact]
    public async Task X_forwarded_for_from_a_trusted_proxy_is_believed() =>
        Assert.Equal(101, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(fixture.AllowRemoteTrusted),
            Header("X-Forwarded-For", "198.51.100.7")));

    [Fact]
    public async Task Valid_jwt_in_the_header_is_accepted() =>
        Assert.Equal(101, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(fixture.Main),
            Header("Authorization", "Bearer " + Tokens.Create())));

    [Fact]
    public async Task Valid_jwt_in_the_query_is_accepted() =>
        Assert.Equal(101, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(fixture.Main, "?token=" + Tokens.Create())));

    [Fact]
    public async Task Jwt_with_a_wrong_signature_gets_401() =>
        Assert.Equal(401, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(fixture.Main),
            Header("Authorization", "Bearer " + Tokens.Create(secret: "another-secret-that-is-also-long-enough!!"))));

    [Fact]
    public async Task Expired_jwt_gets_401() =>
        Assert.Equal(401, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(fixture.Main),
            Header("Authorization", "Bearer " + Tokens.Create(expires: DateTime.UtcNow.AddMinutes(-10)))));

    [Fact]
    public async Task Plain_get_gets_400()
    {
        using var http = new HttpClient();
        using var response = await http.GetAsync(IngestStack.HttpUri(fixture.Main, "/v1/ingest"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Admin_api_needs_a_token_with_role_admin()
    {
        using var http = new HttpClient();
        var uri = IngestStack.HttpUri(fixture.Main, "/v1/admin/flags");
        using (var anonymous = await http.GetAsync(uri))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        using (var request = new HttpRequestMessage(HttpMethod.Get, uri))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Tokens.Create(role: "agent"));
            using var forbidden = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        }

        using (var request = new HttpRequestMessage(HttpMethod.Get, uri))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Tokens.Create(role: "admin"));
            using var ok = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Contains("\"supportExotel\":true", await ok.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Health_endpoints_answer_and_metrics_carry_every_contract_series()
    {
        var sid = Guid.NewGuid().ToString("N");
        await using (var call = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            await call.StartAsync(sid, "call-metrics");
            await call.MediaAsync(sid, 2, 1, ExotelClient.Pcm(5, 1));
            await call.StopAsync(sid, 3);
            await call.WaitForCloseAsync(TimeSpan.FromSeconds(10));
        }

        using var http = new HttpClient();
        using var live = await http.GetAsync(IngestStack.HttpUri(fixture.Main, "/healthz"));
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        using var ready = await http.GetAsync(IngestStack.HttpUri(fixture.Main, "/readyz"));
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        var metrics = await http.GetStringAsync(IngestStack.HttpUri(fixture.Main, "/metrics"));
        // CONTRACT §8: frames received, published, duplicates, gaps, malformed messages, active calls, publish latency.
        foreach (var series in new[]
        {
            "ingest_frames_received_total", "ingest_frames_published_total", "ingest_frames_duplicates_total", "ingest_gaps_total",
            "ingest_messages_malformed_total", "ingest_calls_active", "ingest_publish_latency_seconds_bucket", "ingest_calls_ended_total",
        })
        {
            Assert.Contains(series, metrics, StringComparison.Ordinal);
        }
    }
}
