namespace Ingest.Tests.Kit;

/// <summary>The QA kit's assertions fail when they should, and say what differed.</summary>
public sealed class LandedStreamTests
{
    [Fact]
    public async Task Landed_stream_assertions_name_the_missing_seq_the_differing_bytes_the_duplicate_and_the_gap()
    {
        await using var cluster = await IngestCluster.StartAsync(new IngestClusterOptions { Silos = 1 });
        await using var call = await ExotelCallSimulator.ConnectAsync(cluster, new CallOptions { RealTime = false });
        await call.StartAsync();
        await call.SendAudioAsync(frames: 5);
        await call.StopAsync();
        var landed = await LandedStream.ReadAsync(cluster, call.StreamId);
        landed.AssertMatches(call);
        Assert.Equal([2L, 3, 4, 5, 6], landed.Frames.Select(f => f.Seq));

        var oneMore = new Dictionary<long, byte[]>(call.SentFrames) { [7] = [1, 2] };
        var missing = Assert.Throws<LandedStreamAssertionException>(() => landed.AssertExactlyOnceInOrder(oneMore));
        Assert.Contains("missing 1 (7)", missing.Message, StringComparison.Ordinal);

        var changed = new Dictionary<long, byte[]>(call.SentFrames) { [4] = new byte[call.SentFrames[4].Length] };
        var differs = Assert.Throws<LandedStreamAssertionException>(() => landed.AssertExactlyOnceInOrder(changed));
        Assert.Contains("first differing seq 4", differs.Message, StringComparison.Ordinal);

        await cluster.Redis.GetDatabase().StreamAddAsync("ingest:audio:{" + call.StreamId + "}", [new("seq", 3), new("ts", 200), new("audio", call.SentFrames[3])]);
        var twice = await LandedStream.ReadAsync(cluster, call.StreamId);
        var duplicate = Assert.Throws<LandedStreamAssertionException>(() => twice.AssertExactlyOnceInOrder(call.SentFrames));
        Assert.Contains("duplicates 3×2", duplicate.Message, StringComparison.Ordinal);
        Assert.Contains("out of order", duplicate.Message, StringComparison.Ordinal);

        var gap = Assert.Throws<LandedStreamAssertionException>(() => landed.AssertGaps((3, 4, null)));
        Assert.Contains("got none", gap.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_skipped_frame_lands_as_a_gap_and_the_rest_still_match()
    {
        await using var cluster = await IngestCluster.StartAsync(new IngestClusterOptions { Silos = 1 });
        await using var call = await ExotelCallSimulator.ConnectAsync(cluster, new CallOptions { RealTime = false });
        await call.StartAsync();
        await call.SendAudioAsync(frames: 3);
        await call.SkipAsync(2);
        await call.SendAudioAsync(frames: 3);
        await call.StopAsync();

        var landed = await LandedStream.ReadAsync(cluster, call.StreamId);
        Assert.Equal([5L, 6], call.Skipped);
        landed.AssertMatches(call);
        var gap = Assert.Single(landed.Gaps);
        Assert.Equal(2, gap.Missing);
        Assert.Throws<LandedStreamAssertionException>(landed.AssertNoGaps);
    }
}
