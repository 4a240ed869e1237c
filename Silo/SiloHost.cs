using Ingest.Grains;
using Ingest.ServiceDefaults;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Connections.Security;
using Orleans.Dashboard;
using Orleans.Runtime;
using StackExchange.Redis;

namespace Ingest.Silo;

/// <summary>Host wiring for one silo: Orleans with Redis clustering and storage, the grains' services, and a small HTTP port.</summary>
public static class SiloHost
{
    /// <summary>How long a SIGTERMed silo may take to leave the cluster and deactivate its grains.</summary>
    public static readonly TimeSpan SiloShutdownTimeout = TimeSpan.FromSeconds(30);

    public static async Task<WebApplication> BuildAsync(string[] args, Action<WebApplicationBuilder>? customize = null)
    {
        // Content root is the app's own folder, so appsettings.json applies whatever the working directory.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        customize?.Invoke(builder);
        var settings = SiloSettings.From(builder.Configuration);

        var tls = OrleansTls.Load(builder.Configuration);

        // ORLEANS_DASHBOARD (default false): the Orleans Dashboard at /dashboard on SILO_HTTP_PORT, admin role only.
        var dashboard = Settings.OptionalBool(builder.Configuration, DashboardSetup.Setting) ?? false;
        var dashboardAuth = dashboard ? DashboardSetup.ReadOptions(builder.Configuration) : null;

        // A port in use is a setting to change, said in one line before anything binds (CONTRACT §2).
        PortCheck.EnsureFree("SILO_PORT", settings.SiloPort);
        PortCheck.EnsureFree("GATEWAY_PORT", settings.GatewayPort);
        PortCheck.EnsureFree("SILO_HTTP_PORT", settings.HttpPort);

        // Connect before the host is built: a lazily created multiplexer stalls the first activations.
        var redis = await ConnectionMultiplexer.ConnectAsync(settings.Redis);
        builder.Services.AddSingleton<IConnectionMultiplexer>(redis);
        builder.Services.AddSingleton(settings);

        builder.WebHost.UseUrls(settings.HttpPort == 0 ? "http://127.0.0.1:0" : Settings.ListenUrl(settings.ListenAddress, settings.HttpPort));
        // Orleans leaves the cluster gracefully inside this; past it the stop is ungraceful, and ShutdownWatchdog ends the
        // process 10 s later whatever is still waiting on Redis (CONTRACT §8: exit within 60 s of SIGTERM).
        builder.Host.ConfigureHostOptions(o => o.ShutdownTimeout = SiloShutdownTimeout);

        builder.UseOrleans(silo =>
        {
            silo.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = settings.ClusterId;
                o.ServiceId = settings.ServiceId;
            });
            silo.Configure<EndpointOptions>(o =>
            {
                o.AdvertisedIPAddress = settings.AdvertisedIp;
                o.SiloPort = settings.SiloPort;
                o.GatewayPort = settings.GatewayPort;
                o.SiloListeningEndpoint = new System.Net.IPEndPoint(settings.ListenAddress, settings.SiloPort);
                o.GatewayListeningEndpoint = new System.Net.IPEndPoint(settings.ListenAddress, settings.GatewayPort);
            });
            silo.UseRedisClustering(o =>
            {
                o.ConfigurationOptions = settings.Redis;
                o.CreateMultiplexer = _ => Task.FromResult<(IConnectionMultiplexer, bool)>((redis, true));
            });
            AddIngest(silo, settings.Redis, redis, settings.Ingest);
            if (tls is not null)
            {
                silo.UseTls(tls, o =>
                {
                    o.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
                    o.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
                    o.RemoteCertificateValidation = (remote, _, _) => OrleansTls.IsClusterPeer(tls, remote);
                });
            }

            if (dashboard)
            {
                // The live log stream is off: logs are for the log pipeline, and streaming them costs every line.
                silo.AddDashboard(o => o.HideTrace = true);
            }

            silo.Services.AddSingleton<IValidateOptions<IngestOptions>, IngestOptionsValidator>();
            silo.Services.AddOptions<IngestOptions>().ValidateOnStart();
            silo.Services.AddSingleton<IValidateOptions<SiloMessagingOptions>>(new GrainCallTimeoutValidator<SiloMessagingOptions>(settings.Redis, o => o.ResponseTimeout));
            silo.Services.AddOptions<SiloMessagingOptions>().ValidateOnStart();
        });

        builder.AddServiceDefaults();
        // The live view's memory-stream queues are grains: when a silo leaves, the pulling agents of the others log an
        // Error for each Dequeue that was in flight to it, and retry on the queue's new activation. The view is
        // republished every second and a gateway marks a silent silo itself (LiveView), so a graceful rolling restart
        // would print Error lines for nothing; only the live view uses memory streams.
        builder.Logging.AddFilter("Orleans.Streams." + Ingest.Grains.Interfaces.LiveViewStream.Provider, LogLevel.Critical);
        builder.Logging.AddFilter("Orleans.Providers.MemoryAdapterReceiver", LogLevel.Critical);
        builder.Services.AddHealthChecks()
            .AddCheck<RedisHealthCheck>("redis", tags: [ServiceDefaultsExtensions.ReadyTag])
            .AddCheck<SiloHealthCheck>("orleans", tags: [ServiceDefaultsExtensions.ReadyTag]);
        builder.Services.AddHostedService<FlagSeeder>();
        if (dashboardAuth is not null)
        {
            DashboardSetup.AddAdminAuth(builder.Services, dashboardAuth);
        }

        var app = builder.Build();
        if (settings.IgnoredAudioMaxLength is { } maxLength)
        {
            SiloStartupLog.AudioMaxLengthIgnored(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Ingest.Silo"), maxLength);
        }

        // Validate now, so a bad relation stops the process before anything starts (and logs) rather than mid-start.
        _ = app.Services.GetRequiredService<IOptions<IngestOptions>>().Value;
        _ = app.Services.GetRequiredService<IOptions<SiloMessagingOptions>>().Value;
        app.MapDefaultEndpoints();
        if (dashboardAuth is not null)
        {
            DashboardSetup.Map(app, dashboardAuth);
        }

        return app;
    }

    /// <summary>
    /// What makes a silo an Ingest silo, the same for this host and for the QA kit's test clusters: the grains and
    /// their services publishing through <paramref name="redis"/>, the flags grain's storage, the live view on memory
    /// streams (its subscriptions in PubSubStore, in Redis, so a gateway's subscription outlives the silo that held
    /// it), the production membership tuning and trace propagation. The host adds clustering, endpoints, TLS, the
    /// dashboard and the settings' validators; a test cluster adds its own options.
    /// </summary>
    public static ISiloBuilder AddIngest(ISiloBuilder silo, ConfigurationOptions redisOptions, IConnectionMultiplexer redis, Action<IngestOptions> ingest)
    {
        ArgumentNullException.ThrowIfNull(silo);
        foreach (var storage in new[] { IngestFlagsGrain.StorageName, "PubSubStore" })
        {
            silo.AddRedisGrainStorage(storage, o =>
            {
                o.ConfigurationOptions = redisOptions;
                o.CreateMultiplexer = _ => Task.FromResult<(IConnectionMultiplexer, bool)>((redis, true));
            });
        }

        silo.AddIngestLiveView();
        silo.Configure<ClusterMembershipOptions>(ClusterTuning.FastFailureDetection);
        ClusterTuning.AddCallDirectory(silo);
        silo.Configure<SiloMessagingOptions>(ClusterTuning.GatewayHandover);
        // Grain calls carry the caller's traceparent; the call grain's Start and Stop spans continue its trace.
        silo.AddActivityPropagation();
        silo.Services.AddIngestGrains(ingest);
        return silo;
    }
}

/// <summary>Membership settings shared by the silo host and the test clusters.</summary>
public static class ClusterTuning
{
    /// <summary>
    /// Declares a crashed silo dead in about 6 s instead of the default ~15 s: probes every 2 s, dead after 3 missed.
    /// The price is more probe traffic and a higher chance that a long GC pause gets a healthy silo voted out.
    /// A silo that hangs with its sockets open (frozen VM, SIGSTOP) is declared dead the same way: Orleans' connection
    /// liveness check would otherwise refuse to vote against it for 24 s after its last message, and its calls would
    /// wait that long (FrozenSiloTests).
    /// </summary>
    public static void FastFailureDetection(ClusterMembershipOptions o)
    {
        o.EnableConnectionLivenessCheck = false;
        o.ProbeTimeout = TimeSpan.FromSeconds(2);
        o.NumMissedProbesLimit = 3;
        o.NumVotesForDeathDeclaration = 1;
        o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(10);
        o.TableRefreshTimeout = TimeSpan.FromSeconds(2);
        o.DeathVoteExpirationTimeout = TimeSpan.FromSeconds(30);
    }

    /// <summary>
    /// A leaving silo tells the gateway processes connected to it to send their grain calls through other silos, then
    /// waits 1 s (Orleans' default: not at all) before it stops taking them. Without the wait, calls sent through it in
    /// that moment, for grains on any silo, were refused at its stop: the leaving silo logged an Error for each
    /// ("Failed to address message", 35 in one rolling restart) and the gateway presented those calls again.
    /// </summary>
    public static void GatewayHandover(SiloMessagingOptions o) => o.ClientGatewayShutdownNotificationTimeout = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The grain directory: Orleans' strongly consistent, distributed one instead of its default. With the default, a
    /// silo that leaves or dies takes the directory registrations it held with it, and every grain registered there is
    /// deactivated wherever it runs: calls on silos that stay up moved (and stalled) at every membership change. The
    /// distributed directory hands a leaving silo's range to its successor and rebuilds a dead one's from the silos
    /// that hold the activations, so only the calls of the silo that changes move.
    /// <para>
    /// Range leases are off. A lease holds a dead silo's range closed to new registrations until 30 s after its
    /// estimated failure (with the failure detection above, 6 s after it is declared dead), so a crashed silo's calls
    /// waited 9.2 s instead of ~4. What the lease guards against, a silo declared dead that still runs its grains, the
    /// call grain guards against itself: every write is fenced by the call's cursor in Redis, so a second activation
    /// cannot land what the first already did (FrozenSiloTests, SiloCrashTests).
    /// The default directory, used before, had no lease either.
    /// </para>
    /// Orleans 10 answers a silo with the default directory from one with this one, so a rolling upgrade from an
    /// earlier build can replace silos one at a time; that mixed cluster was not measured here.
    /// </summary>
    public static void AddCallDirectory(ISiloBuilder silo)
    {
#pragma warning disable ORLEANSEXP003 // experimental in Orleans 10; measured in docs/PERFORMANCE.md (Topology)
        silo.AddDistributedGrainDirectory();
#pragma warning restore ORLEANSEXP003
        silo.Configure<GrainDirectoryOptions>(o => o.RangeLeaseDuration = TimeSpan.Zero);
    }
}

internal sealed class SiloHealthCheck(ISiloStatusOracle oracle) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(oracle.CurrentStatus == SiloStatus.Active
            ? HealthCheckResult.Healthy("active")
            : HealthCheckResult.Unhealthy(oracle.CurrentStatus.ToString()));
}
