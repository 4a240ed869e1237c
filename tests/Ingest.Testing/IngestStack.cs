// Building block moved from Ingest.Tests; the type summary documents it, its members are read by the kit and the project tests.
#pragma warning disable CS1591

using Ingest.Gateway;
using Ingest.Gateway.Flags;
using Ingest.Silo;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace Ingest.Testing;

/// <summary>
/// The real thing in one test process: a redis-server, silo hosts (Orleans with Redis clustering and storage) and
/// gateway hosts on real Kestrel ports, each built by the same code as the shipped processes.
/// </summary>
public sealed class IngestStack : IAsyncDisposable
{
    private readonly List<WebApplication> _silos = [];
    private readonly List<WebApplication> _gateways = [];

    private readonly StackRedis _redis;

    private IngestStack(StackRedis redis) => _redis = redis;

    public const string ExotelUser = "exotel-key";
    public const string ExotelPassword = "exotel-token-s3cret";
    public const string JwtSecret = "test-secret-that-is-long-enough-for-hs256!!";

    /// <summary>The stack's own redis-server; a stack started on an outside Redis (a cluster) has none and throws.</summary>
    public RedisServer Redis => _redis.Server;

    /// <summary>What the silos and gateways get as REDIS_URL.</summary>
    public string RedisConnectionString => _redis.ConnectionString;

    public IConnectionMultiplexer Connection => _redis.Connection;

    public string ClusterId { get; } = "e2e-" + Guid.NewGuid().ToString("N")[..8];

    public IReadOnlyList<WebApplication> Gateways => _gateways;

    public IReadOnlyList<WebApplication> Silos => _silos;

    public static async Task<IngestStack> StartAsync(RedisServer? redis = null)
    {
        return new IngestStack(await StackRedis.OwnAsync(redis));
    }

    /// <summary>
    /// A stack on a Redis the caller owns and disposes, e.g. <see cref="RedisClusterServer.ConnectionString"/>: the silos
    /// and gateways get it as REDIS_URL; <see cref="Redis"/> is not available.
    /// </summary>
    public static async Task<IngestStack> StartAsync(string redisConnectionString) =>
        new(await StackRedis.OutsideAsync(redisConnectionString));

    /// <summary>
    /// Starts a silo. <paramref name="customize"/> runs on the host builder after the settings are added (e.g. to add a
    /// log provider).
    /// </summary>
    public async Task<WebApplication> AddSiloAsync(Dictionary<string, string?>? extra = null, Action<WebApplicationBuilder>? customize = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["REDIS_URL"] = RedisConnectionString,
            ["CLUSTER_ID"] = ClusterId,
            ["SERVICE_ID"] = ClusterId,
            ["SILO_PORT"] = RedisServer.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["GATEWAY_PORT"] = RedisServer.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["SILO_HTTP_PORT"] = "0",
            ["SILO_ADVERTISED_IP"] = "127.0.0.1",
            ["LISTEN_ADDRESS"] = "127.0.0.1",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        Merge(settings, extra);
        var silo = await SiloHost.BuildAsync([], b =>
        {
            b.Configuration.AddInMemoryCollection(settings);
            customize?.Invoke(b);
        });
        await silo.StartAsync();
        _silos.Add(silo);
        return silo;
    }

    /// <summary>
    /// Starts a gateway; by default with Basic credentials and a JWT secret, SUPPORT_EXOTEL left to the cluster.
    /// <paramref name="customize"/> runs on the host builder after the settings are added (e.g. to add a log provider).
    /// </summary>
    public async Task<WebApplication> AddGatewayAsync(Dictionary<string, string?>? extra = null, Action<WebApplicationBuilder>? customize = null, bool waitForFlags = true)
    {
        var settings = new Dictionary<string, string?>
        {
            ["REDIS_URL"] = RedisConnectionString,
            ["CLUSTER_ID"] = ClusterId,
            ["SERVICE_ID"] = ClusterId,
            ["PORT"] = RedisServer.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["LISTEN_ADDRESS"] = "127.0.0.1",
            ["EXOTEL_BASIC_AUTH_USER"] = ExotelUser,
            ["EXOTEL_BASIC_AUTH_PASS"] = ExotelPassword,
            ["JWT_SECRET"] = JwtSecret,
            ["DRAIN_GRACE_SECONDS"] = "2",

            // A test gateway takes calls at once: no warm-up before /readyz (a test that is about it asks for one).
            ["WARMUP_CALLS"] = "0",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        Merge(settings, extra);
        var gateway = await GatewayHost.BuildAsync([], b =>
        {
            b.Configuration.AddInMemoryCollection(settings);
            customize?.Invoke(b);
        });
        await gateway.StartAsync();
        _gateways.Add(gateway);
        if (waitForFlags)
        {
            await gateway.Services.GetRequiredService<FlagCache>().Loaded.WaitAsync(TimeSpan.FromSeconds(30));
        }

        return gateway;
    }

    public static Uri IngestUri(WebApplication gateway, string query = "") =>
        new(gateway.Urls.First().Replace("http://", "ws://", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal) + "/v1/ingest" + query);

    public static Uri HttpUri(WebApplication gateway, string path) =>
        new(gateway.Urls.First().Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal) + path);

    public static bool SupportsExotel(WebApplication gateway) => gateway.Services.GetRequiredService<FlagCache>().SupportExotel;

    /// <summary>Stops a gateway the way SIGTERM does (drain first) and disposes it; the stack forgets it.</summary>
    public async Task StopGatewayAsync(WebApplication gateway)
    {
        _gateways.Remove(gateway);
        await gateway.StopAsync();
        await gateway.DisposeAsync();
    }

    public async Task StopSiloAsync(WebApplication silo)
    {
        _silos.Remove(silo);
        await silo.StopAsync();
        await silo.DisposeAsync();
    }

    /// <summary>
    /// Stops a silo without the graceful leave (an already-cancelled stop token, as Orleans' TestCluster kills a silo):
    /// its grains are not deactivated and the others learn it is gone from membership. The stack forgets it.
    /// </summary>
    public async Task KillSiloAsync(WebApplication silo)
    {
        _silos.Remove(silo);
        try
        {
            await silo.StopAsync(new CancellationToken(canceled: true));
        }
        catch (OperationCanceledException)
        {
        }

        try
        {
            await silo.DisposeAsync();
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var gateway in _gateways)
        {
            await gateway.StopAsync();
            await gateway.DisposeAsync();
        }

        foreach (var silo in _silos)
        {
            await silo.StopAsync();
            await silo.DisposeAsync();
        }

        await _redis.DisposeAsync();
    }

    private static void Merge(Dictionary<string, string?> target, Dictionary<string, string?>? extra)
    {
        if (extra is null)
        {
            return;
        }

        foreach (var (key, value) in extra)
        {
            target[key] = value;
        }
    }
}
