using Ingest.Gateway.Auth;
using Ingest.Gateway.Flags;
using Ingest.Grains.Interfaces;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Ingest.Gateway.Admin;

/// <summary>CONTRACT §4: read and flip SUPPORT_EXOTEL at run time; JWT with role admin.</summary>
public static class FlagsApi
{
    public sealed record SetFlagRequest(bool? Enabled);

    public sealed record FlagView(bool Enabled, long Version, string Source, DateTimeOffset ChangedAt);

    public sealed record FlagsView(bool SupportExotel, Dictionary<string, FlagView> Flags);

    public static RouteGroupBuilder MapFlagsApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/v1/admin/flags").RequireAuthorization(JwtSetup.AdminPolicy);
        group.MapGet("/", GetAsync);
        group.MapPut("/support-exotel", PutAsync);
        return group;
    }

    private static async Task<Results<Ok<FlagsView>, ProblemHttpResult>> GetAsync(FlagCache cache)
    {
        try
        {
            return TypedResults.Ok(View(await cache.RefreshAsync()));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return TypedResults.Problem("The cluster could not be reached.", statusCode: StatusCodes.Status503ServiceUnavailable);
        }
    }

    private static async Task<Results<Ok<FlagsView>, BadRequest<string>, ProblemHttpResult>> PutAsync(
        SetFlagRequest? body, FlagCache cache, HttpContext context)
    {
        if (body?.Enabled is not { } enabled)
        {
            return TypedResults.BadRequest("body must be {\"enabled\": true|false}");
        }

        try
        {
            var subject = context.User.Identity?.Name ?? "unknown";
            return TypedResults.Ok(View(await cache.SetSupportExotelAsync(enabled, $"admin API ({subject})")));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return TypedResults.Problem("The cluster could not be reached.", statusCode: StatusCodes.Status503ServiceUnavailable);
        }
    }

    private static FlagsView View(IngestFlags flags) =>
        new(flags.SupportExotel, new Dictionary<string, FlagView>
        {
            ["support-exotel"] = new(flags.SupportExotel, flags.Version, flags.Source, flags.ChangedAt),
        });
}
