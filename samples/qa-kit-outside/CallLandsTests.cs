using Ingest.Testing;
using Xunit;

namespace QaOutside;

/// <summary>One scenario written the way a QA team with its own repository writes it: only the packed kit's API.</summary>
public sealed class CallLandsTests
{
    [Fact]
    public async Task An_Exotel_call_lands_every_frame_once_in_order()
    {
        await using var cluster = await IngestCluster.StartAsync(new IngestClusterOptions { Silos = 1 });
        await using var call = await ExotelCallSimulator.ConnectAsync(cluster);
        await call.StartAsync();
        await call.SendAudioAsync(frames: 20);
        await call.StopAsync();

        var landed = await LandedStream.ReadAsync(cluster, call.StreamId, waitForStop: TimeSpan.FromSeconds(30));
        landed.AssertMatches(call);
        landed.AssertNoGaps();
    }
}
