using System.Text.Json.Serialization;
using Ingest.Gateway.Auth;
using Microsoft.AspNetCore.Http.HttpResults;
using Orleans.Runtime;

namespace Ingest.Gateway.Admin;

/// <summary>The cluster's silos as its membership table lists them (active and recently dead); JWT with role admin.</summary>
public static class SilosApi
{
    public sealed record SiloView(
        [property: JsonPropertyName("address")] string Address,
        [property: JsonPropertyName("status")] string Status,
        [property: JsonPropertyName("name")] string? Name,
        [property: JsonPropertyName("host")] string? Host,
        [property: JsonPropertyName("started_at")] DateTime StartedAt);

    public static RouteGroupBuilder MapSilosApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/v1/admin/silos").RequireAuthorization(JwtSetup.AdminPolicy);
        group.MapGet("/", GetAsync);
        return group;
    }

    private static async Task<Results<Ok<SiloView[]>, ProblemHttpResult>> GetAsync(IClusterClient client, CancellationToken aborted)
    {
        if (await Management.AskAsync(client, m => m.GetDetailedHosts(onlyActive: false), aborted) is not { } answer)
        {
            return TypedResults.Problem("The cluster could not be reached.", statusCode: StatusCodes.Status503ServiceUnavailable);
        }

        var hosts = answer.Result;
        Management.Remember(hosts.Where(h => h.Status == SiloStatus.Active).Select(h => h.SiloAddress));

        return TypedResults.Ok(hosts
            .OrderBy(h => h.Status == SiloStatus.Active ? 0 : 1)
            .ThenBy(h => h.SiloAddress.ToString(), StringComparer.Ordinal)
            .Select(h => new SiloView(h.SiloAddress.ToString(), h.Status.ToString(), h.SiloName, h.HostName, h.StartTime))
            .ToArray());
    }
}
