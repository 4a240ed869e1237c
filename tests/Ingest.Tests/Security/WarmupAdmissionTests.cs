using System.Net;
using System.Text;
using Ingest.Gateway.Ingest;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Ingest.Tests.Security;

/// <summary>
/// The warm-up's upgrades skip authentication, so "from this host" must be the socket's address: behind a trusted
/// proxy the forwarded-headers middleware rewrites the connection's address from <c>X-Forwarded-For</c>, which a caller
/// writes. The request goes through the gateway's own middleware order (SocketPeer, then UseForwardedHeaders).
/// </summary>
public sealed class WarmupAdmissionTests
{
    private static readonly byte[] Secret = Encoding.ASCII.GetBytes("0123456789ABCDEF0123456789ABCDEF");

    /// <summary>Runs a request from <paramref name="socket"/> through SocketPeer and the forwarded-headers middleware trusting 198.51.100.7.</summary>
    private static async Task<bool> AdmittedAsync(IPAddress socket, string? forwardedFor, bool keepSocketPeer = true)
    {
        var options = new ForwardedHeadersOptions { ForwardedHeaders = Microsoft.AspNetCore.HttpOverrides.ForwardedHeaders.XForwardedFor };
        options.KnownProxies.Add(IPAddress.Parse("198.51.100.7"));
        var app = new ApplicationBuilder(new ServiceCollection().AddLogging().BuildServiceProvider());
        if (keepSocketPeer)
        {
            SocketPeer.UseSocketPeer(app);
        }

        app.UseForwardedHeaders(options);
        var admitted = false;
        app.Run(http =>
        {
            admitted = GatewayWarmup.Admits(http, Secret);
            return Task.CompletedTask;
        });

        var context = new DefaultHttpContext();
        context.Connection.RemoteIpAddress = socket;
        context.Connection.LocalIpAddress = IPAddress.Parse("10.0.0.5");
        context.Request.Headers[GatewayWarmup.Header] = Encoding.ASCII.GetString(Secret);
        if (forwardedFor is not null)
        {
            context.Request.Headers["X-Forwarded-For"] = forwardedFor;
        }

        await app.Build()(context);
        return admitted;
    }

    [Fact]
    public async Task A_forged_X_Forwarded_For_of_127_0_0_1_through_a_trusted_proxy_is_not_the_warmup()
    {
        Assert.False(await AdmittedAsync(IPAddress.Parse("198.51.100.7"), "127.0.0.1"));

        // Without the socket's address kept, the rewritten 127.0.0.1 is what admission would see: the case this guards.
        Assert.True(await AdmittedAsync(IPAddress.Parse("198.51.100.7"), "127.0.0.1", keepSocketPeer: false));
    }

    [Fact]
    public async Task The_warmup_from_loopback_with_this_process_secret_is_admitted_and_a_wrong_secret_is_not()
    {
        Assert.True(await AdmittedAsync(IPAddress.Loopback, forwardedFor: null));
        var context = new DefaultHttpContext();
        context.Connection.RemoteIpAddress = IPAddress.Loopback;
        context.Request.Headers[GatewayWarmup.Header] = "not-the-secret-0123456789ABCDEF01";
        Assert.False(GatewayWarmup.Admits(context, Secret));
        Assert.False(GatewayWarmup.Admits(context, null));
    }
}
