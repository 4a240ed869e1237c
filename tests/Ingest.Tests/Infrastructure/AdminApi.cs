using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;

namespace Ingest.Tests.Infrastructure;

/// <summary>The gateway's admin API as the tests call it (CONTRACT §4, §8).</summary>
public static class AdminApi
{
    /// <summary>GET <paramref name="pathAndQuery"/> with <paramref name="token"/> as the bearer (none when null), the body buffered.</summary>
    public static async Task<HttpResponseMessage> GetAsync(WebApplication gateway, string pathAndQuery, string? token)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, IngestStack.HttpUri(gateway, pathAndQuery));
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        var response = await http.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    /// <summary>Turns SUPPORT_EXOTEL on or off through <c>PUT /v1/admin/flags/support-exotel</c> with an admin token; asserts 200.</summary>
    public static async Task PutSupportExotelAsync(WebApplication gateway, bool enabled)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Put, IngestStack.HttpUri(gateway, "/v1/admin/flags/support-exotel"))
        {
            Content = JsonContent.Create(new { enabled }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Tokens.Create(role: "admin"));
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
