using Ingest.Gateway.Admin;
using Ingest.Gateway.Auth;
using Ingest.Gateway.Flags;
using Ingest.Gateway.Health;
using Ingest.Gateway.Ingest;
using Ingest.Grains.Interfaces;
using Ingest.ServiceDefaults;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Connections.Security;
using StackExchange.Redis;

namespace Ingest.Gateway;

/// <summary>Host wiring: Kestrel, the Orleans client, auth, the ingest endpoint, the admin API, health and metrics.</summary>
public static class GatewayHost
{
    public static async Task<WebApplication> BuildAsync(string[] args, Action<WebApplicationBuilder>? customize = null)
    {
        // Content root is the app's own folder, so appsettings.json applies whatever the working directory.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        customize?.Invoke(builder);
        var settings = GatewaySettings.From(builder.Configuration);
        var tls = OrleansTls.Load(builder.Configuration);

        // One multiplexer for the process, connected before the host is built; Orleans' clustering client shares it.
        var redis = await ConnectionMultiplexer.ConnectAsync(settings.Redis);
        builder.Services.AddSingleton<IConnectionMultiplexer>(redis);
        builder.Services.AddSingleton(settings);

        if (settings.Port is { } port)
        {
            PortCheck.EnsureFree("PORT", port);
            builder.WebHost.UseUrls(Settings.ListenUrl(settings.ListenAddress, port));
        }

        builder.Services.AddSingleton<IValidateOptions<HostOptions>>(new DrainInsideShutdownValidator(settings.Limits.DrainGrace));
        builder.Services.AddOptions<HostOptions>().ValidateOnStart();
        builder.Host.ConfigureHostOptions(o =>
        {
            // ShutdownWatchdog ends the process 10 s past this whatever still waits on Redis or the cluster.
            o.ShutdownTimeout = settings.Limits.ShutdownTimeout;

            // Serve /healthz while the Orleans client is still looking for silos; /readyz says when calls can come.
            o.ServicesStartConcurrently = true;
        });

        builder.UseOrleansClient(client =>
        {
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = settings.ClusterId;
                o.ServiceId = settings.ServiceId;
            });
            client.UseRedisClustering(o =>
            {
                o.ConfigurationOptions = settings.Redis;
                o.CreateMultiplexer = _ => Task.FromResult<(IConnectionMultiplexer, bool)>((redis, true));
            });
            client.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = TimeSpan.FromSeconds(5));

            // The pushed live view (Admin/LiveView): the silos publish on memory streams of this name.
            client.AddMemoryStreams(global::Ingest.Grains.Interfaces.LiveViewStream.Provider);

            // Flags are pushed by the config grain; a silo joining or leaving makes FlagCache renew its subscription.
            client.Services.AddSingleton<IClusterConnectionStatusObserver>(sp => new FlagCache.RenewOnGatewayChange(sp));

            // The current span's traceparent goes with a grain call (the call's Start and Stop spans, CallForwarder).
            client.AddActivityPropagation();
            if (tls is not null)
            {
                client.UseTls(tls, o =>
                {
                    o.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
                    o.RemoteCertificateValidation = (remote, _, _) => OrleansTls.IsClusterPeer(tls, remote);
                });
            }


            // The forwarder abandons a grain call after a few seconds and resends; don't keep abandoned ones for 30 s.
            client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(10));
            client.Services.AddSingleton<IValidateOptions<ClientMessagingOptions>>(new GrainCallTimeoutValidator<ClientMessagingOptions>(settings.Redis, o => o.ResponseTimeout));
            client.Services.AddOptions<ClientMessagingOptions>().ValidateOnStart();
            client.UseConnectionRetryFilter(async (_, token) =>
            {
                await Task.Delay(TimeSpan.FromSeconds(1), token);
                return true;
            });
        });

        builder.Services.Configure<ForwardedHeadersOptions>(o =>
        {
            o.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            o.ForwardLimit = null;
            o.RequireHeaderSymmetry = false;

            // Only TRUSTED_PROXIES may speak for a client; not even loopback is trusted by default.
            o.KnownProxies.Clear();
            o.KnownIPNetworks.Clear();
#pragma warning disable ASPDEPR005 // the obsolete list still defaults to loopback and is still consulted
            o.KnownNetworks.Clear();
#pragma warning restore ASPDEPR005
            foreach (var network in settings.TrustedProxies.Networks)
            {
                o.KnownIPNetworks.Add(network);
            }
        });

        builder.Services.AddIngestJwt(settings);
        builder.Services.AddSingleton<FlagCache>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<FlagCache>());
        builder.Services.AddSingleton<IngestAuthenticator>();
        builder.Services.AddSingleton<AuthFailureLimiter>();
        builder.Services.AddSingleton<SessionRegistry>();
        builder.Services.AddSingleton<RefusalLog>();
        builder.Services.AddSingleton<RefusalLines>();
        builder.Services.AddSingleton(sp => new SessionContext(
            sp.GetRequiredService<IClusterClient>(),
            sp.GetRequiredService<SessionRegistry>(),
            settings,
            sp.GetRequiredService<ILoggerFactory>()));

        builder.Services.AddSingleton<DiscardingLoggerFactory>();
        builder.Services.AddSingleton<GatewayWarmup>();
        builder.Services.AddSingleton<Admin.LiveView>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<Admin.LiveView>());
        builder.Services.AddHostedService(sp => sp.GetRequiredService<GatewayWarmup>());

        builder.AddServiceDefaults();
        // CONTRACT §8: a gateway is ready once started (flags known, warm-up over) and while not draining; Redis and the
        // silos only show beside it (Degraded is still 200), since a call that starts during their outage is kept.
        builder.Services.AddSingleton(sp => new DependencyMonitor(sp.GetRequiredService<IConnectionMultiplexer>(), sp.GetRequiredService<IClusterClient>()));
        builder.Services.AddHostedService(sp => sp.GetRequiredService<DependencyMonitor>());
        builder.Services.AddHealthChecks()
            .AddCheck<GatewayReadiness>("gateway", tags: [ServiceDefaultsExtensions.ReadyTag])
            .AddCheck<WarmupReadiness>(GatewayWarmup.CheckName, tags: [ServiceDefaultsExtensions.ReadyTag])
            .Add(DependencyCheck.Registration("redis", m => m.Redis))
            .Add(DependencyCheck.Registration("orleans", m => m.Cluster));

        // Registered last so it stops first: calls drain while the Orleans client is still connected.
        builder.Services.AddHostedService<DrainOnShutdown>();

        var app = builder.Build();

        // Validate now, so a bad relation stops the process before anything starts (and logs) rather than mid-start.
        _ = app.Services.GetRequiredService<IOptions<HostOptions>>().Value;
        _ = app.Services.GetRequiredService<IOptions<ClientMessagingOptions>>().Value;
        // Once the meter provider listens (it is started with the host): a series touched before that is not exported.
        app.Lifetime.ApplicationStarted.Register(GatewayMetrics.Initialize);
        if (!settings.TrustedProxies.IsEmpty)
        {
            // With no known proxies the middleware would believe X-Forwarded-For from anyone, so it runs only when
            // TRUSTED_PROXIES names the proxies to believe. The socket's own address is kept first (SocketPeer).
            SocketPeer.UseSocketPeer(app);
            app.UseForwardedHeaders();
        }

        app.UseWebSockets();
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapDefaultEndpoints();
        app.MapIngest();
        app.MapFlagsApi();
        app.MapCallsApi();
        app.MapRefusalsApi();
        app.MapSilosApi();
        app.MapConsolePage();
        return app;
    }
}

/// <summary>Started (it has reached the cluster and knows the flags) and not draining: CONTRACT §8's "send me calls".</summary>
internal sealed class GatewayReadiness(SessionRegistry registry, FlagCache flags) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(
            registry.IsDraining ? HealthCheckResult.Unhealthy("draining")
            : !flags.Loaded.IsCompletedSuccessfully ? HealthCheckResult.Unhealthy("starting: the cluster's flags are not known yet")
            : HealthCheckResult.Healthy("started"));
}

/// <summary>A fresh gateway first runs its own calls through the path (GatewayWarmup), so the first real ones do not meet cold code.</summary>
internal sealed class WarmupReadiness(GatewayWarmup warmup) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(warmup.Done ? HealthCheckResult.Healthy("warm") : HealthCheckResult.Unhealthy("warming up"));
}

/// <summary>DRAIN_GRACE_SECONDS must end inside the host's shutdown bound, leaving time to flush what the calls hold.</summary>
internal sealed class DrainInsideShutdownValidator(TimeSpan drainGrace) : IValidateOptions<HostOptions>
{
    /// <summary>The least time after the grace for ending the remaining calls and flushing them to their grains.</summary>
    public static readonly TimeSpan MinimumFlush = TimeSpan.FromSeconds(15);

    public ValidateOptionsResult Validate(string? name, HostOptions options) =>
        drainGrace + MinimumFlush <= options.ShutdownTimeout
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail(
                $"invalid setting DRAIN_GRACE_SECONDS: {drainGrace.TotalSeconds:F0} s plus {MinimumFlush.TotalSeconds:F0} s to flush must fit inside SHUTDOWN_TIMEOUT_SECONDS ({options.ShutdownTimeout.TotalSeconds:F0} s)");
}
