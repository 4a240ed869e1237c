using System.Text.Json.Serialization;
using Ingest.Gateway.Auth;
using Ingest.Grains.Interfaces;
using Microsoft.AspNetCore.Http.HttpResults;
using Orleans.Runtime;

namespace Ingest.Gateway.Admin;

/// <summary>
/// CONTRACT §8: the live calls of the cluster, whichever gateway and silo carry them; JWT with role admin. Costs the
/// call path nothing: the management grain lists the call activations of every silo, and each is asked for its status
/// with an interleaved read-only method, all at once, each with a short timeout. Each silo is asked on its own: one that
/// does not answer (killed, not yet declared dead) leaves its calls out and is named in the
/// <c>X-Ingest-Unreachable-Silos</c> header, instead of failing the whole list while calls move.
/// </summary>
public static class CallsApi
{
    private static readonly TimeSpan StatusTimeout = TimeSpan.FromSeconds(2);

    public const string UnreachableSilosHeader = "X-Ingest-Unreachable-Silos";


    public sealed record CallView(
        [property: JsonPropertyName("stream_id")] string StreamId,
        [property: JsonPropertyName("protocol")] string Protocol,
        [property: JsonPropertyName("frames")] long Frames,
        [property: JsonPropertyName("started_at")] DateTime StartedAt,
        [property: JsonPropertyName("gaps")] long Gaps,
        [property: JsonPropertyName("missing")] long Missing,
        [property: JsonPropertyName("buffered")] int Buffered,
        [property: JsonPropertyName("call_sid"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? CallSid,
        [property: JsonPropertyName("silo")] string Silo,
        [property: JsonPropertyName("frames_outbound"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? FramesOutbound);

    public static RouteGroupBuilder MapCallsApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/v1/admin/calls").RequireAuthorization(JwtSetup.AdminPolicy);
        group.MapGet("/", GetAsync);
        return group;
    }

    private static async Task<Results<Ok<CallView[]>, ProblemHttpResult>> GetAsync(IClusterClient client, HttpResponse response, CancellationToken aborted)
    {
        if (await Management.AskAsync(client, m => m.GetHosts(onlyActive: true), aborted) is not { } answer)
        {
            return TypedResults.Problem("The cluster could not be reached.", statusCode: StatusCodes.Status503ServiceUnavailable);
        }

        var (management, silos) = answer;
        Management.Remember(silos.Keys);

        var perSilo = await Task.WhenAll(silos.Keys.Select(async silo =>
        {
            try
            {
                return (Silo: silo, Activations: await management
                    .GetDetailedGrainStatistics([ICallStatusGrain.ImplementationTypeName], [silo])
                    .WaitAsync(Management.AttemptTimeout, aborted));
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !aborted.IsCancellationRequested)
            {
                return (Silo: silo, Activations: (DetailedGrainStatistic[]?)null);
            }
        }));

        var unreachable = perSilo.Where(p => p.Activations is null).Select(p => p.Silo.ToString()).ToArray();
        if (unreachable.Length > 0)
        {
            response.Headers[UnreachableSilosHeader] = string.Join(",", unreachable);
        }

        var activations = perSilo.SelectMany(p => p.Activations ?? []).ToArray();

        // During a failover a call can briefly have two activations; the live one answers, the other says null.
        var keys = activations.Select(a => a.GrainId.Key.ToString()).Where(k => !string.IsNullOrEmpty(k)).Distinct(StringComparer.Ordinal);
        var statuses = await Task.WhenAll(keys.Select(key => StatusAsync(client, key!, aborted)));
        return TypedResults.Ok(statuses
            .OfType<CallStatus>()
            .OrderBy(s => s.StartedAt)
            .Select(s => new CallView(
                s.StreamId,
                s.Protocol == CallProtocol.Exotel ? "exotel" : "native",
                s.Frames,
                s.StartedAt,
                s.Gaps,
                s.Missing,
                s.Buffered,
                s.CallSid,
                s.Silo,
                s.FramesOutbound))
            .ToArray());
    }

    /// <summary>A grain that does not answer in time (its silo just died, it deactivated meanwhile) is left out, not waited for.</summary>
    private static async Task<CallStatus?> StatusAsync(IClusterClient client, string streamId, CancellationToken aborted)
    {
        try
        {
            return await client.GetGrain<ICallStatusGrain>(streamId).GetStatus().AsTask().WaitAsync(StatusTimeout, aborted);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !aborted.IsCancellationRequested)
        {
            return null;
        }
    }
}
