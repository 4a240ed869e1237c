using System.Text.Json.Serialization;
using Ingest.Gateway.Auth;
using Ingest.Gateway.Ingest;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Ingest.Gateway.Admin;

/// <summary>CONTRACT §8: why was this call turned away? This gateway's last refused upgrades, newest first; JWT with role admin.</summary>
public static class RefusalsApi
{
    /// <summary>One refused upgrade. <c>detail</c> is the text the caller was sent: never a password, token or header.</summary>
    public sealed record RefusalView(
        [property: JsonPropertyName("at")] DateTime At,
        [property: JsonPropertyName("remote")] string Remote,
        [property: JsonPropertyName("reason")] string Reason,
        [property: JsonPropertyName("status")] int Status,
        [property: JsonPropertyName("protocol"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Protocol,
        [property: JsonPropertyName("detail")] string Detail);

    public static RouteGroupBuilder MapRefusalsApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/v1/admin/refusals").RequireAuthorization(JwtSetup.AdminPolicy);
        group.MapGet("/", Get);
        return group;
    }

    private static Ok<RefusalView[]> Get(RefusalLog log) =>
        TypedResults.Ok(log.Recent().Select(r => new RefusalView(r.At, r.Remote.ToString(), r.Reason.Wire(), r.Status, r.Protocol, r.Detail)).ToArray());
}
