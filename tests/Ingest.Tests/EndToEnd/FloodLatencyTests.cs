using System.Diagnostics;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.EndToEnd;

/// <summary>Timing promises are measured alone: xunit runs this collection after the parallel ones, on its own.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TimingCollection : ICollectionFixture<EndToEndFixture>
{
    public const string Name = "timing, alone";
}

/// <summary>
/// CONTRACT §5 (issue 9 item 7): a flood of dtmf/mark events on one call must not delay a real-time call next to it.
/// A latency promise, so it runs with nothing else of the suite beside it (on a loaded 2-core box, the parallel suite
/// alone pushed one frame past the bound once).
/// </summary>
[Collection(TimingCollection.Name)]
public sealed class FloodLatencyTests(EndToEndFixture fixture, Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    [Trait("Category", "Slow")]
    public async Task Forty_thousand_marks_do_not_slow_down_a_real_time_call_next_to_them()
    {
        var flood = "flood-" + Guid.NewGuid().ToString("N");
        var live = "flood-live-" + Guid.NewGuid().ToString("N");
        await using var flooder = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main));
        await using var caller = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main));
        await flooder.StartAsync(flood, "call-flood");
        await flooder.MediaAsync(flood, 2, 1, ExotelClient.Pcm(7, 1));
        await caller.StartAsync(live, "call-live");

        var flooding = Task.Run(async () =>
        {
            for (var n = 3; n < 40_003; n++)
            {
                await flooder.SendTextAsync($$$"""{"event":"mark","sequence_number":"{{{n}}}","stream_sid":"{{{flood}}}","mark":{"name":"m{{{n}}}"}}""");
            }

            await flooder.MediaAsync(flood, 40_003, 2, ExotelClient.Pcm(7, 2));
            await flooder.StopAsync(flood, 40_004);
        });

        var worst = TimeSpan.Zero;
        for (var frame = 1; frame <= 40; frame++)
        {
            var sent = Stopwatch.StartNew();
            await caller.MediaAsync(live, frame + 1, frame, ExotelClient.Pcm(8, frame));
            Assert.True(await RedisStreams.WaitUntilAsync(
                async () => (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, live)).Count >= frame, TimeSpan.FromSeconds(10)));
            worst = sent.Elapsed > worst ? sent.Elapsed : worst;
            var rest = TimeSpan.FromMilliseconds(100) - sent.Elapsed;
            if (rest > TimeSpan.Zero)
            {
                await Task.Delay(rest);
            }
        }

        await caller.StopAsync(live, 42);
        await flooding;
        var sentAll = Stopwatch.StartNew();
        Assert.True(worst < TimeSpan.FromSeconds(1), $"a real-time frame took {worst.TotalMilliseconds} ms from send to readable");

        // O(1) per event: the whole flood is readable soon after the last mark was sent (quadratic bookkeeping took
        // seconds per ten thousand).
        Assert.True(await RedisStreams.WaitUntilAsync(
            async () => (await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, flood)).Any(e => e["event"] == "stop"),
            TimeSpan.FromSeconds(30)));
        output.WriteLine($"worst real-time frame {worst.TotalMilliseconds} ms; flood landed {sentAll.ElapsedMilliseconds} ms after its last mark was sent");
        Assert.True(sentAll.Elapsed < TimeSpan.FromSeconds(3), $"the flood landed {sentAll.ElapsedMilliseconds} ms after its last mark was sent");

        var audio = await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, flood);
        var lifecycle = await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, flood);
        Assert.Equal([2L, 40_003L], audio.Select(a => a.Seq));

        // CONTRACT §7: one call's dtmf/mark entries are bounded (INGEST_MAX_EVENTS_PER_CALL, 10,000); the rest are
        // counted in the stop, and their numbers are no gaps.
        Assert.Equal(10_000, lifecycle.Count(e => e["event"] == "mark"));
        Assert.Equal("30000", lifecycle.Single(e => e["event"] == "stop")["events_dropped"]);
        Assert.DoesNotContain(lifecycle, e => e["event"] == "gap");
    }
}
