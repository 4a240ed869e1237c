using Ingest.Grains;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime;
using Orleans.TestingHost;
using StackExchange.Redis;

namespace Ingest.Testing;

/// <summary>
/// An Orleans <see cref="TestCluster"/> of Ingest grains (configured by <see cref="IngestSiloConfigurator"/>) publishing to
/// a real redis-server started for it: for grain-level tests that talk to grains through <see cref="TestCluster.Client"/>
/// with no gateway in between. For the whole deployment over WebSockets use <see cref="IngestCluster"/>.
/// </summary>
public sealed class IngestGrainCluster : IAsyncDisposable
{
    private readonly int? _orphanSeconds;
    private readonly int? _sweepSeconds;

    private readonly StackRedis _redis;
    private IReadOnlyDictionary<string, string> _ingest = new Dictionary<string, string>();

    private IngestGrainCluster(StackRedis redis, string serviceId, int? orphanSeconds, int? sweepSeconds)
    {
        _redis = redis;
        ServiceId = serviceId;
        _orphanSeconds = orphanSeconds;
        _sweepSeconds = sweepSeconds;
    }

    /// <summary>How the management grain names the call grain's type ("Namespace.Type,Assembly").</summary>
    public static string CallGrainType { get; } = typeof(CallStreamGrain).FullName + "," + typeof(CallStreamGrain).Assembly.GetName().Name;

    /// <summary>The redis-server the grains publish to.</summary>
    public RedisServer Redis => _redis.Server;

    /// <summary>The connection string the silos publish to: the kit's redis-server, or the Redis given to <see cref="StartOnAsync"/>.</summary>
    public string RedisConnectionString => _redis.ConnectionString;

    /// <summary>A shared connection to <see cref="Redis"/>.</summary>
    public IConnectionMultiplexer Connection => _redis.Connection;

    /// <summary>The cluster started by <see cref="StartAsync"/>.</summary>
    public TestCluster Cluster { get; private set; } = null!;

    /// <summary>The Orleans service id (unique per instance; <see cref="StartClusterAsync"/> clusters share it).</summary>
    public string ServiceId { get; }

    /// <summary>
    /// Starts redis-server and a cluster of <paramref name="silos"/> silos. <paramref name="orphanSeconds"/> sets how long
    /// an idle call grain waits before it ends the call (default: the production 120 s); <paramref name="sweepSeconds"/> how soon the
    /// lifecycle sweeper wakes a call nobody looks after (default: production's 120 s).
    /// </summary>
    public static async Task<IngestGrainCluster> StartAsync(int silos = 2, int? orphanSeconds = null, string serviceIdPrefix = "grains", int? sweepSeconds = null)
    {
        return await StartCoreAsync(await StackRedis.OwnAsync(), silos, orphanSeconds, serviceIdPrefix, sweepSeconds, null);
    }

    /// <summary>
    /// Like <see cref="StartAsync"/>, with the grains' options set by name (<c>IngestOptions</c>' properties, e.g.
    /// <c>["StreamTtl"] = "00:01:00"</c>, <c>["MaxEventsPerCall"] = "1000000"</c>).
    /// </summary>
    /// <param name="ingest">IngestOptions property names and their values.</param>
    /// <param name="silos">How many silos.</param>
    /// <param name="orphanSeconds">How long an idle call grain waits before it ends the call.</param>
    /// <param name="redisConnectionString">A Redis the test owns (e.g. a Redis Cluster); null starts a redis-server of its own.</param>
    /// <param name="time">The clock the grains tell time by (e.g. a fake one); their Orleans timers still run in real time.</param>
    /// <param name="sweepSeconds">The lifecycle sweeper's round and staleness in seconds.</param>
    public static async Task<IngestGrainCluster> StartWithAsync(
        IReadOnlyDictionary<string, string> ingest, int silos = 1, int? orphanSeconds = null, string? redisConnectionString = null, TimeProvider? time = null, int? sweepSeconds = null)
    {
        var settings = new Dictionary<string, string>(ingest);
        if (time is not null)
        {
            var clock = Guid.NewGuid().ToString("N");
            IngestSiloConfigurator.Clocks[clock] = time;
            settings[ClockSetting] = clock;
        }

        return await StartCoreAsync(
            redisConnectionString is null ? await StackRedis.OwnAsync() : await StackRedis.OutsideAsync(redisConnectionString),
            silos, orphanSeconds, "grains", sweepSeconds, settings);
    }

    private const string ClockSetting = "~clock";

    /// <summary>
    /// Like <see cref="StartAsync"/>, on a Redis the test owns and disposes itself, e.g. a <see cref="RedisClusterServer"/>'s
    /// <see cref="RedisClusterServer.ConnectionString"/>.
    /// </summary>
    public static async Task<IngestGrainCluster> StartOnAsync(string redisConnectionString, int silos = 2, int? orphanSeconds = null, string serviceIdPrefix = "grains", int? sweepSeconds = null) =>
        await StartCoreAsync(await StackRedis.OutsideAsync(redisConnectionString), silos, orphanSeconds, serviceIdPrefix, sweepSeconds, null);

    private static async Task<IngestGrainCluster> StartCoreAsync(StackRedis redis, int silos, int? orphanSeconds, string serviceIdPrefix, int? sweepSeconds, IReadOnlyDictionary<string, string>? ingest)
    {
        var cluster = new IngestGrainCluster(redis, serviceIdPrefix + "-" + Guid.NewGuid().ToString("N")[..8], orphanSeconds, sweepSeconds);
        cluster._ingest = ingest ?? cluster._ingest;
        try
        {
            cluster.Cluster = await cluster.StartClusterAsync(silos);
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }

        return cluster;
    }

    /// <summary>Starts another cluster on the same Redis and service id (e.g. to see state survive a whole-cluster restart); the caller disposes it.</summary>
    public async Task<TestCluster> StartClusterAsync(int silos = 2)
    {
        var builder = new TestClusterBuilder((short)silos);
        builder.Options.ServiceId = ServiceId;
        builder.Properties[IngestSiloConfigurator.RedisProperty] = RedisConnectionString;
        if (_orphanSeconds is { } seconds)
        {
            builder.Properties[IngestSiloConfigurator.OrphanSecondsProperty] = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (_sweepSeconds is { } sweep)
        {
            builder.Properties[IngestSiloConfigurator.SweepSecondsProperty] = sweep.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        foreach (var (name, value) in _ingest)
        {
            builder.Properties[name == ClockSetting ? IngestSiloConfigurator.ClockProperty : IngestSiloConfigurator.IngestSection + ":" + name] = value;
        }

        builder.AddSiloBuilderConfigurator<IngestSiloConfigurator>();
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    /// <summary>Which silo hosts the activation of each given call grain (calls without an activation are left out).</summary>
    public async Task<Dictionary<string, SiloAddress>> HostsAsync(IEnumerable<string> streamIds)
    {
        var wanted = streamIds.ToHashSet(StringComparer.Ordinal);
        var management = Cluster.Client.GetGrain<IManagementGrain>(0);
        var stats = await management.GetDetailedGrainStatistics([CallGrainType]);
        return stats
            .Where(s => wanted.Contains(s.GrainId.Key.ToString()!))
            .GroupBy(s => s.GrainId.Key.ToString()!)
            .ToDictionary(g => g.Key, g => g.First().SiloAddress, StringComparer.Ordinal);
    }

    /// <summary>A service of silo <paramref name="index"/> (the silos run in this process), e.g. its byte budget.</summary>
    public T SiloService<T>(int index = 0)
        where T : notnull => ((InProcessSiloHandle)Cluster.Silos[index]).SiloHost.Services.GetRequiredService<T>();

    /// <summary>Stops every silo, then Redis.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (Cluster is not null)
            {
                await Cluster.StopAllSilosAsync();
                await Cluster.DisposeAsync();
            }
        }
        finally
        {
            await _redis.DisposeAsync();
        }
    }
}
