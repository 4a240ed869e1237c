using Orleans.TestingHost;
using StackExchange.Redis;

namespace Ingest.Tests.Infrastructure;

/// <summary>The xunit collection fixture over the kit's <see cref="IngestGrainCluster"/>: two silos, idle calls orphaned after 3 s.</summary>
public sealed class GrainClusterFixture : IAsyncLifetime
{
    private IngestGrainCluster _grains = null!;

    public RedisServer Redis => _grains.Redis;

    public TestCluster Cluster => _grains.Cluster;

    public IConnectionMultiplexer Connection => _grains.Connection;

    public string ServiceId => _grains.ServiceId;

    public async Task InitializeAsync() => _grains = await IngestGrainCluster.StartAsync(silos: 2, orphanSeconds: 3);

    public Task<TestCluster> StartClusterAsync(int silos = 2) => _grains.StartClusterAsync(silos);

    public async Task DisposeAsync() => await _grains.DisposeAsync();
}

[CollectionDefinition(Name)]
public sealed class GrainClusterCollection : ICollectionFixture<GrainClusterFixture>
{
    public const string Name = "grain cluster";
}
