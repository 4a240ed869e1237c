using Ingest.Grains;
using Ingest.Silo;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.TestingHost;
using StackExchange.Redis;

namespace Ingest.Tests.Infrastructure;

/// <summary>An Orleans TestCluster of two silos whose grains publish to a real redis-server started for the fixture.</summary>
public sealed class GrainClusterFixture : IAsyncLifetime
{
    public RedisServer Redis { get; private set; } = null!;

    public TestCluster Cluster { get; private set; } = null!;

    public IConnectionMultiplexer Connection { get; private set; } = null!;

    public string ServiceId { get; } = "grains-" + Guid.NewGuid().ToString("N")[..8];

    public async Task InitializeAsync()
    {
        Redis = await RedisServer.StartAsync();
        Connection = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        Cluster = await StartClusterAsync();
    }

    public async Task<TestCluster> StartClusterAsync(int silos = 2)
    {
        var builder = new TestClusterBuilder((short)silos);
        builder.Options.ServiceId = ServiceId;
        builder.Properties["RedisConnectionString"] = Redis.ConnectionString;
        builder.Properties["OrphanSeconds"] = "3";
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        Connection.Dispose();
        await Redis.DisposeAsync();
    }

    public sealed class SiloConfigurator : IHostConfigurator
    {
        public void Configure(IHostBuilder hostBuilder)
        {
            hostBuilder.ConfigureServices((context, services) =>
            {
                var connectionString = context.Configuration["RedisConnectionString"]!;
                var options = Ingest.ServiceDefaults.RedisUrl.Parse(connectionString);
                var redis = ConnectionMultiplexer.Connect(options);
                services.AddSingleton<IConnectionMultiplexer>(redis);
                var orphanSeconds = int.TryParse(context.Configuration["OrphanSeconds"], out var seconds) ? seconds : 120;
                services.AddIngestGrains(o =>
                {
                    o.RetryInterval = TimeSpan.FromMilliseconds(100);
                    o.OrphanTimeout = TimeSpan.FromSeconds(orphanSeconds);
                });
                services.Configure<ClusterMembershipOptions>(ClusterTuning.FastFailureDetection);
            });
            hostBuilder.UseOrleans((context, silo) =>
            {
                var connectionString = context.Configuration["RedisConnectionString"]!;
                silo.AddRedisGrainStorage(IngestFlagsGrain.StorageName, o => o.ConfigurationOptions = Ingest.ServiceDefaults.RedisUrl.Parse(connectionString));
            });
        }
    }
}

[CollectionDefinition(Name)]
public sealed class GrainClusterCollection : ICollectionFixture<GrainClusterFixture>
{
    public const string Name = "grain cluster";
}
