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
        builder.Properties[IngestSiloConfigurator.RedisProperty] = Redis.ConnectionString;
        builder.Properties[IngestSiloConfigurator.OrphanSecondsProperty] = "3";
        builder.AddSiloBuilderConfigurator<IngestSiloConfigurator>();
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
}

[CollectionDefinition(Name)]
public sealed class GrainClusterCollection : ICollectionFixture<GrainClusterFixture>
{
    public const string Name = "grain cluster";
}
