using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Security.Cryptography;
using Ingest.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.Tokens;

namespace Ingest.Tests.Security;

/// <summary>Failed attempts are delayed and rate-limited per address; the JWT rules; the admin role.</summary>
[Collection(SecurityCollection.Name)]
public sealed class AuthenticationHardeningTests(SecurityFixture fixture)
{
    private static Dictionary<string, string> Basic(string password, string address) => new()
    {
        ["Authorization"] = ExotelClient.BasicHeader(IngestStack.ExotelUser, password),
        ["X-Forwarded-For"] = address,
    };

    private static async Task<(int Status, string? RetryAfter)> UpgradeAsync(Uri uri, IDictionary<string, string> headers)
    {
        using var socket = ExotelClient.NewSocket(headers);
        try
        {
            await socket.ConnectAsync(uri, CancellationToken.None);
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "probe", CancellationToken.None);
            return (101, null);
        }
        catch (WebSocketException)
        {
            var retry = socket.HttpResponseHeaders?.TryGetValue("Retry-After", out var values) == true ? values.FirstOrDefault() : null;
            return ((int)socket.HttpStatusCode, retry);
        }
    }

    [Fact]
    public async Task Wrong_basic_credentials_are_answered_401_only_after_a_fixed_delay()
    {
        var clock = Stopwatch.StartNew();
        var (status, _) = await UpgradeAsync(SecurityFixture.Uri(fixture.Small), Basic("wrong", "198.18.0.1"));
        Assert.Equal(401, status);
        Assert.True(clock.ElapsedMilliseconds >= SecurityFixture.SmallAuthFailureDelayMs - 20, $"answered after {clock.ElapsedMilliseconds} ms");
    }

    [Fact]
    public async Task After_n_wrong_credentials_an_address_gets_429_with_retry_after_while_right_credentials_still_get_in()
    {
        const string Guesser = "198.18.0.2";
        for (var i = 0; i < SecurityFixture.SmallAuthFailureLimit - 1; i++)
        {
            Assert.Equal(401, (await UpgradeAsync(SecurityFixture.Uri(fixture.Small), Basic("guess-" + i, Guesser))).Status);
        }

        var (status, retryAfter) = await UpgradeAsync(SecurityFixture.Uri(fixture.Small), Basic("guess-x", Guesser));
        Assert.Equal(429, status);
        Assert.True(int.TryParse(retryAfter, out var seconds) && seconds >= 1, $"Retry-After: {retryAfter}");

        // A guesser sharing an address with Exotel (NAT, load balancer) must not lock Exotel out.
        Assert.Equal(101, (await UpgradeAsync(SecurityFixture.Uri(fixture.Small), Basic(IngestStack.ExotelPassword, Guesser))).Status);
        Assert.Equal(101, (await UpgradeAsync(SecurityFixture.Uri(fixture.Small), Basic(IngestStack.ExotelPassword, "198.18.0.3"))).Status);
    }

    [Fact]
    public async Task Invalid_tokens_count_towards_the_same_per_address_limit()
    {
        const string Guesser = "198.18.0.4";
        var bad = new Dictionary<string, string> { ["Authorization"] = "Bearer " + SecurityTokens.Create(secret: "a-guessed-secret-that-is-long-enough-too!"), ["X-Forwarded-For"] = Guesser };
        for (var i = 0; i < SecurityFixture.SmallAuthFailureLimit - 1; i++)
        {
            Assert.Equal(401, (await UpgradeAsync(SecurityFixture.Uri(fixture.Small), bad)).Status);
        }

        Assert.Equal(429, (await UpgradeAsync(SecurityFixture.Uri(fixture.Small), bad)).Status);
    }

    [Fact]
    public async Task Requests_without_any_credential_are_not_counted_as_guesses()
    {
        var none = new Dictionary<string, string> { ["X-Forwarded-For"] = "198.18.0.5" };
        for (var i = 0; i < SecurityFixture.SmallAuthFailureLimit + 2; i++)
        {
            Assert.Equal(401, (await UpgradeAsync(SecurityFixture.Uri(fixture.Small), none)).Status);
        }

        Assert.Equal(101, (await UpgradeAsync(SecurityFixture.Uri(fixture.Small), Basic(IngestStack.ExotelPassword, "198.18.0.5"))).Status);
    }

    /// <summary>
    /// Each rule's token is minted when its case runs, not when the cases are discovered: a token minted at discovery
    /// with the usual 5 min lifetime has expired by the time a 6 min suite reaches it, and is refused for its lifetime
    /// instead of for the rule.
    /// </summary>
    private static readonly Dictionary<string, Func<string>> TokenFor = new(StringComparer.Ordinal)
    {
        ["alg none"] = SecurityTokens.CreateUnsigned,
        ["HS512 with the right secret"] = () => SecurityTokens.CreateWithOtherHmac("HS512", HMACSHA512.HashData),
        ["HS384 with the right secret"] = () => SecurityTokens.CreateWithOtherHmac("HS384", HMACSHA384.HashData),
        ["RS256"] = SecurityTokens.CreateRs256,
        ["no exp"] = () => SecurityTokens.Create(withExpiry: false),
        ["expired"] = () => SecurityTokens.Create(expires: DateTime.UtcNow.AddMinutes(-10)),
        ["wrong issuer"] = () => SecurityTokens.Create(issuer: "https://evil.test"),
        ["no issuer"] = () => SecurityTokens.Create(issuer: null),
        ["wrong audience"] = () => SecurityTokens.Create(audience: "someone-else"),
        ["no audience"] = () => SecurityTokens.Create(audience: null),
        ["wrong secret"] = () => SecurityTokens.Create(secret: "another-secret-that-is-also-long-enough!!"),
        ["garbage"] = () => "not.a.jwt",
    };

    public static TheoryData<string> RejectedTokens => new(TokenFor.Keys);

    [Fact]
    public async Task A_storm_of_refusals_from_one_address_is_one_log_line_per_window_and_every_one_is_counted()
    {
        // No credential: refused 401 every time, never counted as a guess, so the storm is not cut short by 429.
        const string Storm = "198.18.0.20", Other = "198.18.0.21";
        var refusals = fixture.Small.Services.GetRequiredService<Ingest.Gateway.Ingest.RefusalLog>();
        var recordedBefore = refusals.Recent().Count(r => r.Remote.ToString() == Storm);
        for (var i = 0; i < 12; i++)
        {
            Assert.Equal(401, (await UpgradeAsync(SecurityFixture.Uri(fixture.Small), new Dictionary<string, string> { ["X-Forwarded-For"] = Storm })).Status);
        }

        Assert.Equal(401, (await UpgradeAsync(SecurityFixture.Uri(fixture.Small), new Dictionary<string, string> { ["X-Forwarded-For"] = Other })).Status);

        int Lines(string address) => fixture.SmallLogs.Entries.Count(e => e.Message.StartsWith("Refused upgrade with 401 from " + address + ":", StringComparison.Ordinal));
        Assert.Equal(1, Lines(Storm));
        Assert.Equal(1, Lines(Other));
        Assert.Equal(12, refusals.Recent().Count(r => r.Remote.ToString() == Storm) - recordedBefore);
    }

    [Theory]
    [MemberData(nameof(RejectedTokens))]
    public async Task Jwt_that_breaks_a_rule_gets_401(string rule)
    {
        var token = TokenFor[rule]();
        var before = fixture.Logs.Entries.Count;
        Assert.Equal(401, (await UpgradeAsync(SecurityFixture.Uri(fixture.Main), new Dictionary<string, string> { ["Authorization"] = "Bearer " + token })).Status);
        Assert.Equal(401, (await UpgradeAsync(SecurityFixture.Uri(fixture.Main, "?token=" + Uri.EscapeDataString(token)), new Dictionary<string, string>())).Status);

        // Refused as a bad token (header and query alike), for the reason the rule names, not for anything else.
        var refusals = fixture.Logs.Entries.Skip(before).Where(e => e.Message.StartsWith("Refused upgrade with 401", StringComparison.Ordinal)).Select(e => e.Message).ToList();
        Assert.True(refusals.Count == 2, $"{rule}: {refusals.Count} refusals logged: {string.Join(" | ", refusals)}");
        Assert.All(refusals, r => Assert.True(r.EndsWith("invalid token: " + ExpectedFailure[rule], StringComparison.Ordinal), $"{rule}: {r}"));
    }

    /// <summary>
    /// The validation failure each rule gives (the refusal's log line names it). HS384/HS512 and RS256 find no key
    /// because the only key accepted is the HS256 secret; garbage is not a JWT at all.
    /// </summary>
    private static readonly Dictionary<string, string> ExpectedFailure = new(StringComparer.Ordinal)
    {
        ["alg none"] = "SecurityTokenInvalidSignatureException",
        ["HS512 with the right secret"] = "SecurityTokenSignatureKeyNotFoundException",
        ["HS384 with the right secret"] = "SecurityTokenSignatureKeyNotFoundException",
        ["RS256"] = "SecurityTokenSignatureKeyNotFoundException",
        ["no exp"] = "SecurityTokenInvalidLifetimeException",
        ["expired"] = "SecurityTokenInvalidLifetimeException",
        ["wrong issuer"] = "SecurityTokenInvalidIssuerException",
        ["no issuer"] = "SecurityTokenInvalidIssuerException",
        ["wrong audience"] = "SecurityTokenInvalidAudienceException",
        ["no audience"] = "SecurityTokenInvalidAudienceException",
        ["wrong secret"] = "SecurityTokenSignatureKeyNotFoundException",
        ["garbage"] = "ArgumentException",
    };

    [Fact]
    public async Task Hand_built_hs256_token_is_accepted_so_the_hs384_and_hs512_refusals_are_about_the_algorithm() =>
        Assert.Equal(101, (await UpgradeAsync(SecurityFixture.Uri(fixture.Main), new Dictionary<string, string> { ["Authorization"] = "Bearer " + SecurityTokens.CreateWithOtherHmac("HS256", HMACSHA256.HashData) })).Status);

    [Fact]
    public async Task Jwt_with_the_configured_issuer_and_audience_is_accepted() =>
        Assert.Equal(101, (await UpgradeAsync(SecurityFixture.Uri(fixture.Main), new Dictionary<string, string> { ["Authorization"] = "Bearer " + SecurityTokens.Create() })).Status);

    [Theory]
    [InlineData(null, HttpStatusCode.Forbidden)]
    [InlineData("agent", HttpStatusCode.Forbidden)]
    [InlineData("Admin", HttpStatusCode.Forbidden)]
    [InlineData("admin", HttpStatusCode.OK)]
    public async Task Admin_api_answers_403_unless_the_token_carries_role_admin(string? role, HttpStatusCode expected)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, IngestStack.HttpUri(fixture.Main, "/v1/admin/flags"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", SecurityTokens.Create(role: role));
        using var response = await http.SendAsync(request);
        Assert.Equal(expected, response.StatusCode);
    }

    [Fact]
    public async Task Admin_api_answers_401_to_an_alg_none_token_claiming_role_admin()
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Put, IngestStack.HttpUri(fixture.Main, "/v1/admin/flags/support-exotel"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", SecurityTokens.CreateUnsigned());
        request.Content = new StringContent("""{"enabled": false}""", System.Text.Encoding.UTF8, "application/json");
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.True(IngestStack.SupportsExotel(fixture.Main));
    }

    [Fact]
    public async Task X_forwarded_for_is_ignored_from_a_caller_that_is_not_a_trusted_proxy()
    {
        // Main trusts no proxy: the header cannot move a caller to a fresh rate-limit or connection bucket.
        var (status, _) = await UpgradeAsync(SecurityFixture.Uri(fixture.Main), new Dictionary<string, string> { ["X-Forwarded-For"] = "198.51.100.7" });
        Assert.Equal(401, status);
        Assert.Contains(fixture.Logs.Entries, e => e.Message.Contains("Refused upgrade with 401 from 127.0.0.1", StringComparison.Ordinal));
    }
}
