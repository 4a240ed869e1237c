using System.Globalization;
using System.Net;
using Ingest.Gateway.Auth;
using Ingest.Gateway.Protocol;
using Microsoft.AspNetCore.Http.Features;

namespace Ingest.Gateway.Ingest;

/// <summary>CONTRACT §3: <c>GET /v1/ingest</c>, one endpoint for every caller; who the caller is decides the protocol.</summary>
public static partial class IngestEndpoint
{
    private const string Challenge = "Basic realm=\"ingest\", Bearer realm=\"ingest\"";
    private const string Draining = "gateway is draining; retry on another instance";
    private const string TooManyFailures = "too many wrong credentials from this address; retry later";

    public static IEndpointRouteBuilder MapIngest(this IEndpointRouteBuilder routes)
    {
        routes.Map("/v1/ingest", HandleAsync);
        return routes;
    }

    private static async Task HandleAsync(
        HttpContext http,
        IngestAuthenticator authenticator,
        AuthFailureLimiter failures,
        SessionRegistry registry,
        SessionContext sessions,
        RefusalLog refusals,
        GatewayWarmup warmup,
        RefusalLines lines,
        ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger(typeof(IngestEndpoint));
        if (!http.WebSockets.IsWebSocketRequest)
        {
            await RefuseAsync(http, logger, lines, sessions.Metrics, StatusCodes.Status400BadRequest, "this endpoint only accepts WebSocket upgrades (GET with Upgrade: websocket)");
            return;
        }

        // The gateway's own warm-up call (GatewayWarmup) takes the path of an Exotel call, in a session context of its
        // own: no refusal entry, limit, log line or metric of a real caller's is touched by it.
        var warming = warmup.Admits(http);
        if (warming)
        {
            sessions = warmup.Sessions;
            refusals = warmup.Refusals;
            loggers = sessions.LoggerFactory;
            logger = loggers.CreateLogger(typeof(IngestEndpoint));
        }

        // The address judged: the X-Forwarded-For one when the proxy is trusted (the middleware rewrote it), else the socket's.
        var remote = http.Connection.RemoteIpAddress is { } ip ? IpRangeList.Normalize(ip) : IPAddress.None;
        if (registry.IsDraining)
        {
            http.Response.Headers.RetryAfter = "5";
            refusals.Record(remote, RefusalReason.Draining, StatusCodes.Status503ServiceUnavailable, null, Draining);
            await RefuseAsync(http, logger, lines, sessions.Metrics, StatusCodes.Status503ServiceUnavailable, Draining);
            return;
        }

        // Its calls count against a registry of their own; the drain above is the gateway's (its registry's).
        if (warming)
        {
            registry = sessions.Registry;
        }

        var decision = warming ? new AuthDecision(CallerKind.Exotel, "warm-up") : await authenticator.AuthenticateAsync(http);
        if (decision.Kind == CallerKind.None)
        {
            // Only wrong credentials count, and a right credential always gets in: a guesser sharing Exotel's address
            // (a NAT, a load balancer) must not be able to lock Exotel out. Past the budget a wrong one gets 429.
            if (decision.BadCredential)
            {
                await failures.RecordFailureAsync(remote, http.RequestAborted);
                if (failures.IsBlocked(remote, out var retryAfter))
                {
                    http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
                    http.Response.Headers.WWWAuthenticate = Challenge;
                    refusals.Record(remote, RefusalReason.RateLimited, StatusCodes.Status429TooManyRequests, ProtocolName(decision.Attempted), TooManyFailures);
                    await RefuseAsync(http, logger, lines, sessions.Metrics, StatusCodes.Status429TooManyRequests, TooManyFailures);
                    return;
                }
            }

            if (decision.Refusal == RefusalReason.Starting)
            {
                http.Response.Headers.RetryAfter = "2";
                refusals.Record(remote, decision.Refusal, StatusCodes.Status503ServiceUnavailable, ProtocolName(decision.Attempted), decision.Reason);
                await RefuseAsync(http, logger, lines, sessions.Metrics, StatusCodes.Status503ServiceUnavailable, decision.Reason);
                return;
            }

            http.Response.Headers.WWWAuthenticate = Challenge;
            refusals.Record(remote, decision.Refusal, StatusCodes.Status401Unauthorized, ProtocolName(decision.Attempted), decision.Reason);
            await RefuseAsync(http, logger, lines, sessions.Metrics, StatusCodes.Status401Unauthorized, decision.Reason);
            return;
        }

        int? urlSampleRate = null;
        if (decision.Kind == CallerKind.Exotel)
        {
            var query = http.Request.Query;
            var rateText = query.TryGetValue("sample-rate", out var dashed) ? dashed.ToString()
                : query.TryGetValue("sample_rate", out var underscored) ? underscored.ToString() : null;
            if (!ExotelMessageParser.TryParseSampleRateQuery(rateText, out urlSampleRate, out var error))
            {
                await RefuseAsync(http, logger, lines, sessions.Metrics, StatusCodes.Status400BadRequest, $"sample-rate: {error.Detail}");
                return;
            }
        }

        if (!registry.TryOpenConnection(remote, out var refusal))
        {
            http.Response.Headers.RetryAfter = "1";
            refusals.Record(remote, RefusalReason.OverCapacity, StatusCodes.Status503ServiceUnavailable, ProtocolName(decision.Kind), refusal);
            await RefuseAsync(http, logger, lines, sessions.Metrics, StatusCodes.Status503ServiceUnavailable, refusal);
            return;
        }

        try
        {
            // Upgraded connections must not count against Kestrel's request body limits or timeouts.
            if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
            {
                bodySize.MaxRequestBodySize = null;
            }

            using var socket = await http.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
            {
                KeepAliveInterval = sessions.Settings.Limits.KeepAliveInterval,
                KeepAliveTimeout = sessions.Settings.Limits.KeepAliveInterval * 2,
            });
            using IngestSession session = decision.Kind == CallerKind.Exotel
                ? new ExotelSession(socket, remote, sessions, urlSampleRate, loggers.CreateLogger<ExotelSession>())
                : new NativeSession(socket, remote, sessions, loggers.CreateLogger<NativeSession>());
            await session.RunAsync();
        }
        finally
        {
            registry.CloseConnection(remote);
        }
    }

    private static string? ProtocolName(CallerKind kind) => kind switch
    {
        CallerKind.Exotel => "exotel",
        CallerKind.Native => "native",
        _ => null,
    };

    private static Task RefuseAsync(HttpContext http, ILogger logger, RefusalLines lines, GatewayMetrics metrics, int status, string reason)
    {
        metrics.Rejected.Add(1, new KeyValuePair<string, object?>("status", status));
        if (lines.ShouldLog(status, http.Connection.RemoteIpAddress, reason, out var leftOut))
        {
            if (leftOut > 0)
            {
                LogLeftOut(logger, leftOut, status, http.Connection.RemoteIpAddress, reason);
            }

            LogRefused(logger, status, http.Connection.RemoteIpAddress, reason);
        }

        http.Response.StatusCode = status;
        http.Response.ContentType = "text/plain; charset=utf-8";
        return http.Response.WriteAsync(reason + "\n");
    }

    [LoggerMessage(EventId = 6401, Level = LogLevel.Warning, Message = "Refused upgrade with {Status} from {RemoteIp}: {Reason}")]
    private static partial void LogRefused(ILogger logger, int status, IPAddress? remoteIp, string reason);

    [LoggerMessage(EventId = 6402, Level = LogLevel.Warning, Message = "{LeftOut} more upgrades refused with {Status} from {RemoteIp} ({Reason}) since the last line were not logged; every one is counted in ingest_upgrades_rejected_total")]
    private static partial void LogLeftOut(ILogger logger, int leftOut, int status, IPAddress? remoteIp, string reason);
}
