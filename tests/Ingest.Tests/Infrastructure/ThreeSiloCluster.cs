using Ingest.Grains;
using Orleans.Runtime;
using Orleans.TestingHost;
using StackExchange.Redis;

namespace Ingest.Tests.Infrastructure;

/// <summary>
/// An Orleans TestCluster of three silos (configured like <see cref="GrainClusterFixture"/>: fast failure detection,
/// grains publishing to a real redis-server), for tests that kill a silo hosting live calls.
/// </summary>
public sealed class ThreeSiloCluster : IAsyncDisposable
{
    private ThreeSiloCluster(RedisServer redis, IConnectionMultiplexer connection, TestCluster cluster)
    {
        Redis = redis;
        Connection = connection;
        Cluster = cluster;
    }

    public RedisServer Redis { get; }

    public IConnectionMultiplexer Connection { get; }

    public TestCluster Cluster { get; }

    /// <summary>How the management grain names the call grain's type ("Namespace.Type,Assembly").</summary>
    public static string CallGrainType { get; } = typeof(CallStreamGrain).FullName + "," + typeof(CallStreamGrain).Assembly.GetName().Name;

    public static async Task<ThreeSiloCluster> StartAsync()
    {
        var redis = await RedisServer.StartAsync();
        var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var builder = new TestClusterBuilder(3);
        builder.Options.ServiceId = "three-" + Guid.NewGuid().ToString("N")[..8];
        builder.Properties[IngestSiloConfigurator.RedisProperty] = redis.ConnectionString;
        builder.AddSiloBuilderConfigurator<IngestSiloConfigurator>();
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return new ThreeSiloCluster(redis, connection, cluster);
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

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Cluster.StopAllSilosAsync();
        }
        finally
        {
            await Cluster.DisposeAsync();
            Connection.Dispose();
            await Redis.DisposeAsync();
        }
    }
}
