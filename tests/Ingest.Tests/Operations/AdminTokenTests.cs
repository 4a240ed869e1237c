using Ingest.ServiceDefaults;
using System.Net;
using System.Net.Http.Headers;
using Ingest.Gateway.Auth;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Operations;

/// <summary>Admin tokens: a separate secret when ADMIN_JWT_SECRET is set, the Authorization header only, a short life.</summary>
public sealed class AdminTokenTests
{
    private const string AdminSecret = "admin-only-secret-that-is-long-enough!!";

    [Fact]
    public async Task An_admin_token_in_the_query_string_is_refused_and_the_same_token_in_the_header_is_accepted()
    {
        await using var stack = await IngestStack.StartAsync();
        await stack.AddSiloAsync();
        var gateway = await stack.AddGatewayAsync();
        var token = Tokens.Create(role: "admin");

        Assert.Equal(HttpStatusCode.Unauthorized, await GetFlagsAsync(gateway, query: token));
        Assert.Equal(HttpStatusCode.OK, await GetFlagsAsync(gateway, header: token));
    }

    [Fact]
    public async Task With_ADMIN_JWT_SECRET_set_only_tokens_signed_with_it_are_admin()
    {
        await using var stack = await IngestStack.StartAsync();
        await stack.AddSiloAsync();
        var gateway = await stack.AddGatewayAsync(new() { ["ADMIN_JWT_SECRET"] = AdminSecret });

        Assert.Equal(HttpStatusCode.Unauthorized, await GetFlagsAsync(gateway, header: Tokens.Create(role: "admin")));
        Assert.Equal(HttpStatusCode.OK, await GetFlagsAsync(gateway, header: Tokens.Create(AdminSecret, role: "admin")));

        // And the admin secret opens no native call.
        var bearer = new Dictionary<string, string> { ["Authorization"] = "Bearer " + Tokens.Create(AdminSecret) };
        Assert.Equal(401, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(gateway), bearer));
    }

    [Fact]
    public async Task Tokens_valid_for_longer_than_the_maximum_lifetime_are_refused()
    {
        await using var stack = await IngestStack.StartAsync();
        await stack.AddSiloAsync();
        var gateway = await stack.AddGatewayAsync();

        Assert.Equal(HttpStatusCode.Unauthorized, await GetFlagsAsync(gateway, header: Tokens.Create(role: "admin", expires: DateTime.UtcNow.AddHours(3))));
        var native = new Dictionary<string, string> { ["Authorization"] = "Bearer " + Tokens.Create(expires: DateTime.UtcNow.AddDays(30)) };
        Assert.Equal(401, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(gateway), native));
        var fine = new Dictionary<string, string> { ["Authorization"] = "Bearer " + Tokens.Create(expires: DateTime.UtcNow.AddHours(12)) };
        Assert.Equal(101, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(gateway), fine));
    }

    [Theory]
    [InlineData(0, 60, true)]       // issued now, valid 1 h
    [InlineData(0, 61, false)]      // valid a minute too long
    [InlineData(-50, 5, true)]      // issued 50 min ago, 5 min left
    [InlineData(-120, -1, false)]   // expired
    public void Lifetime_is_bounded_from_issue_and_from_now(int issuedMinutes, int expiresMinutes, bool accepted)
    {
        var now = DateTime.UtcNow;
        Assert.Equal(accepted, JwtValidation.LifetimeIsAcceptable(now.AddMinutes(issuedMinutes), now.AddMinutes(expiresMinutes), now.AddMinutes(issuedMinutes), now, TimeSpan.FromHours(1)));
    }

    [Fact]
    public void A_token_without_iat_or_nbf_is_bounded_from_now()
    {
        var now = DateTime.UtcNow;
        Assert.False(JwtValidation.LifetimeIsAcceptable(null, now.AddYears(10), null, now, TimeSpan.FromHours(1)));
    }

    private static async Task<HttpStatusCode> GetFlagsAsync(Microsoft.AspNetCore.Builder.WebApplication gateway, string? header = null, string? query = null)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var request = new HttpRequestMessage(HttpMethod.Get, IngestStack.HttpUri(gateway, "/v1/admin/flags" + (query is null ? string.Empty : "?token=" + query)));
        if (header is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", header);
        }

        using var response = await http.SendAsync(request);
        return response.StatusCode;
    }
}
