using System.Net;

namespace Ingest.Gateway.Ingest;

/// <summary>
/// The address at the other end of the TCP connection, kept before the forwarded-headers middleware rewrites
/// <c>Connection.RemoteIpAddress</c> from <c>X-Forwarded-For</c>. Limits and refusals judge the caller (the rewritten
/// address); what must be this host itself, the warm-up's own upgrades, is judged by the socket.
/// </summary>
public sealed record SocketPeer(IPAddress? Address)
{
    /// <summary>The socket's address: the one kept before any rewrite, or the connection's when nothing rewrote it.</summary>
    public static IPAddress? Of(HttpContext http) => http.Features.Get<SocketPeer>() is { } kept ? kept.Address : http.Connection.RemoteIpAddress;

    /// <summary>Keeps the socket's address; runs before <c>UseForwardedHeaders</c>.</summary>
    public static IApplicationBuilder UseSocketPeer(IApplicationBuilder app) => app.Use((http, next) =>
    {
        http.Features.Set(new SocketPeer(http.Connection.RemoteIpAddress));
        return next(http);
    });
}
