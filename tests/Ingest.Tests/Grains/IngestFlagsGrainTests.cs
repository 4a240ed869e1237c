using Ingest.Grains.Interfaces;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Grains;

[Collection(GrainClusterCollection.Name)]
public sealed class IngestFlagsGrainTests(GrainClusterFixture fixture)
{
    [Fact]
    public async Task Flag_change_survives_a_restart_of_the_whole_cluster()
    {
        var flags = fixture.Cluster.Client.GetGrain<IIngestFlagsGrain>("restart-" + Guid.NewGuid().ToString("N"));
        Assert.False((await flags.Get()).SupportExotel);
        var changed = await flags.SetSupportExotel(true, "test");
        Assert.True(changed.SupportExotel);

        var key = flags.GetPrimaryKeyString();
        await using var second = await fixture.StartClusterAsync(silos: 1);
        var reread = await second.Client.GetGrain<IIngestFlagsGrain>(key).Get();
        await second.StopAllSilosAsync();

        Assert.True(reread.SupportExotel);
        Assert.Equal("test", reread.Source);
        Assert.Equal(changed.Version, reread.Version);
    }
}
