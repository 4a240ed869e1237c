using System.Globalization;
using System.Text.Json.Serialization;
using Ingest.Gateway.Auth;
using Ingest.Grains.Interfaces;
using Microsoft.AspNetCore.Http.HttpResults;
using Orleans.Runtime;

namespace Ingest.Gateway.Admin;

/// <summary>
/// CONTRACT §8: the live calls of the cluster, whichever gateway and silo carry them; JWT with role admin. Costs one
/// grain call per silo, whatever the number of calls: each silo's <see cref="ISiloCallsGrain"/> (placed on that silo)
/// describes the calls its call grains registered, so no call is asked, and none that just ended is activated again.
/// Each silo is asked on its own: one that does not answer (killed, not yet declared dead) leaves its calls out and is
/// named in the <c>X-Ingest-Unreachable-Silos</c> header, instead of failing the whole list while calls move.
/// </summary>
/// <remarks>
/// Paging: <c>?limit=N</c> (1..10,000) returns at most N calls from <c>offset</c> (default 0), oldest first; without
/// <c>limit</c> every live call. The body is the JSON array either way; <c>X-Total-Count</c> tells how many calls are
/// live, and a <c>Link</c> header with <c>rel="next"</c> names the next page while there is one.
/// </remarks>
public static class CallsApi
{
    public const string UnreachableSilosHeader = "X-Ingest-Unreachable-Silos";

    public const string TotalCountHeader = "X-Total-Count";

    public const int MaxLimit = 10_000;

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
        group.MapGet("/stream", StreamAsync);
        return group;
    }

    private static async Task<Results<Ok<CallView[]>, ProblemHttpResult>> GetAsync(
        IClusterClient client, HttpRequest request, HttpResponse response, CancellationToken aborted)
    {
        if (!TryPage(request, out var offset, out var limit, out var problem))
        {
            return TypedResults.Problem(problem, statusCode: StatusCodes.Status400BadRequest);
        }

        if (await AskSilosAsync(client, aborted) is not var (calls, unreachable))
        {
            return TypedResults.Problem("The cluster could not be reached.", statusCode: StatusCodes.Status503ServiceUnavailable);
        }

        if (unreachable.Length > 0)
        {
            response.Headers[UnreachableSilosHeader] = string.Join(",", unreachable);
        }

        response.Headers[TotalCountHeader] = calls.Count.ToString(CultureInfo.InvariantCulture);
        var page = calls.Skip(offset).Take(limit ?? int.MaxValue).ToList();
        if (limit is { } size && offset + page.Count < calls.Count)
        {
            response.Headers.Link = $"<{request.PathBase}{request.Path}?offset={offset + page.Count}&limit={size}>; rel=\"next\"";
        }

        return TypedResults.Ok(page.Select(ToView).ToArray());
    }

    /// <summary>
    /// The silos' calls as one list, oldest first. During a failover a call can briefly be live on two silos: the one
    /// further on is the one that writes.
    /// </summary>
    internal static List<CallStatus> Merge(IEnumerable<CallStatus> calls) => calls
        .GroupBy(s => s.StreamId, StringComparer.Ordinal)
        .Select(g => g.MaxBy(s => s.Frames)!)
        .OrderBy(s => s.StartedAt)
        .ThenBy(s => s.StreamId, StringComparer.Ordinal)
        .ToList();

    internal static CallView ToView(CallStatus s) => new(
        s.StreamId,
        s.Protocol == CallProtocol.Exotel ? "exotel" : "native",
        s.Frames,
        s.StartedAt,
        s.Gaps,
        s.Missing,
        s.Buffered,
        s.CallSid,
        s.Silo,
        s.FramesOutbound);

    /// <summary>
    /// <c>GET /v1/admin/calls/stream</c>: the live calls pushed as server-sent events, from the gateway's
    /// <see cref="LiveView"/> (one Orleans stream message per silo per second; no polling of the cluster). First the
    /// list as it is now (asked of the silos, as <c>GET /v1/admin/calls</c> does), then an event <c>calls</c> whenever
    /// a silo pushes, at most every <see cref="PushSpacing"/>, and a comment every 15 s so proxies keep the connection.
    /// At most <c>MAX_ADMIN_STREAMS</c> at once per gateway: beyond it <c>503</c> with <c>Retry-After</c>.
    /// </summary>
    private static async Task StreamAsync(HttpContext context, IClusterClient client, LiveView view, IHostApplicationLifetime lifetime)
    {
        if (!view.TryAddViewer())
        {
            context.Response.Headers.RetryAfter = "10";
            await TypedResults.Problem(
                "This gateway serves its most live-view subscribers at once (MAX_ADMIN_STREAMS); try again later or poll GET /v1/admin/calls.",
                statusCode: StatusCodes.Status503ServiceUnavailable).ExecuteAsync(context);
            return;
        }

        using var done = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
        try
        {
            var response = context.Response;
            response.ContentType = "text/event-stream";
            response.Headers.CacheControl = "no-cache";
            response.Headers["X-Accel-Buffering"] = "no";
            // The change signal is taken before the list is read: a silo's message that arrives while an event is
            // written or during the spacing after it completes the signal already held, so the next event follows at
            // once. Taken after the spacing, it missed such a message and the change waited for the next one (a new
            // call once reached a subscriber 2.5 s after it started instead of ~1 s).
            var changed = view.Changed;
            var first = await AskSilosAsync(client, done.Token);
            await WriteEventAsync(response, first?.Calls ?? view.Calls(), done.Token);
            while (!done.IsCancellationRequested)
            {
                if (await Task.WhenAny(changed, Task.Delay(KeepAliveEvery, done.Token)) != changed)
                {
                    await response.WriteAsync(": keep-alive\n\n", done.Token);
                    await response.Body.FlushAsync(done.Token);
                    continue;
                }

                changed = view.Changed;
                await WriteEventAsync(response, view.Calls(), done.Token);
                await Task.Delay(PushSpacing, done.Token);
            }
        }
        catch (OperationCanceledException) when (done.IsCancellationRequested)
        {
        }
        finally
        {
            view.RemoveViewer();
        }
    }

    /// <summary>The shortest time between two events of one subscriber.</summary>
    public static readonly TimeSpan PushSpacing = TimeSpan.FromMilliseconds(250);

    private static readonly TimeSpan KeepAliveEvery = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Every active silo's calls, merged, and the silos that did not answer; null when no management grain answered
    /// which silos there are.
    /// </summary>
    private static async Task<(List<CallStatus> Calls, string[] Unreachable)?> AskSilosAsync(IClusterClient client, CancellationToken aborted)
    {
        if (await Management.AskAsync(client, m => m.GetHosts(onlyActive: true), aborted) is not { } answer)
        {
            return null;
        }

        var silos = answer.Result.Keys;
        Management.Remember(silos);
        var perSilo = await Task.WhenAll(silos.Select(silo => CallsOfAsync(client, silo, aborted)));
        var unreachable = silos.Where((_, i) => perSilo[i] is null).Select(s => s.ToString()).ToArray();
        return (Merge(perSilo.SelectMany(p => p ?? [])), unreachable);
    }

    private static async Task WriteEventAsync(HttpResponse response, List<CallStatus> calls, CancellationToken aborted)
    {
        var json = System.Text.Json.JsonSerializer.Serialize(calls.Select(ToView).ToArray());
        await response.WriteAsync("event: calls\ndata: " + json + "\n\n", aborted);
        await response.Body.FlushAsync(aborted);
    }

    /// <summary>The calls one silo describes; null when it does not answer in time or the grain asked is not on it.</summary>
    private static async Task<IReadOnlyList<CallStatus>?> CallsOfAsync(IClusterClient client, SiloAddress silo, CancellationToken aborted)
    {
        try
        {
            var answer = await client.GetGrain<ISiloCallsGrain>(ISiloCallsGrain.KeyOf(silo)).GetCalls().AsTask().WaitAsync(Management.AttemptTimeout, aborted);
            return answer.Here ? answer.Calls : null;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !aborted.IsCancellationRequested)
        {
            return null;
        }
    }

    private static bool TryPage(HttpRequest request, out int offset, out int? limit, out string problem)
    {
        offset = 0;
        limit = null;
        problem = string.Empty;
        if (request.Query.TryGetValue("offset", out var o)
            && (!int.TryParse(o, NumberStyles.None, CultureInfo.InvariantCulture, out offset) || offset < 0))
        {
            problem = "offset must be a whole number, 0 or more.";
            return false;
        }

        if (request.Query.TryGetValue("limit", out var l))
        {
            if (!int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1 || n > MaxLimit)
            {
                problem = $"limit must be a whole number from 1 to {MaxLimit}.";
                return false;
            }

            limit = n;
        }

        return true;
    }
}
