using System.Collections.Immutable;
using Ingest.Grains.Interfaces;
using Orleans.Runtime;
using Xunit.Abstractions;

namespace Ingest.Tests.Grains;

/// <summary>Where new calls go: evenly over the silos, and onto a silo that joins (issue 26).</summary>
[Trait("Category", "Slow")]
public sealed class PlacementTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Three_hundred_new_calls_in_a_second_and_a_half_spread_over_three_silos_within_one_and_a_half_times_and_a_joining_silo_takes_new_calls()
    {
        await using var grains = await IngestGrainCluster.StartAsync(silos: 3, serviceIdPrefix: "placement");
        // Placement counts only silos whose load it has heard of (each publishes it about once a second): wait until
        // every silo has taken a call, one at a time, as in a cluster that has been up for a while.
        await WarmUpAsync(grains, grains.Cluster.Silos.Select(s => s.SiloAddress).ToList(), "warm");
        // New calls arrive as a busy cluster sees them: 300 within 1.5 s, 20 at a time.
        var first = new List<string>();
        for (var batch = 0; batch < 15; batch++)
        {
            first.AddRange(await StartCallsAsync(grains, "spread-" + batch, 20));
            await Task.Delay(100);
        }

        var hosts = await grains.HostsAsync(first);
        var perSilo = grains.Cluster.Silos.Select(s => hosts.Values.Count(a => a.Equals(s.SiloAddress))).ToList();
        output.WriteLine($"300 calls over 3 silos: {string.Join(" / ", perSilo)}");
        Assert.Equal(300, hosts.Count);
        Assert.True(perSilo.Min() > 0 && perSilo.Max() <= 1.5 * perSilo.Min(), $"uneven placement: {string.Join(" / ", perSilo)}");

        // A fourth silo joins; the next new calls go to it too (it is the least loaded), without any call moving to it.
        var joined = await grains.Cluster.StartAdditionalSiloAsync();
        await grains.Cluster.WaitForLivenessToStabilizeAsync();
        var onJoined = 0;
        var batches = 0;
        var later = new List<string>();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (onJoined < 20 && !deadline.IsCancellationRequested)
        {
            later.AddRange(await StartCallsAsync(grains, "joined-" + batches++, 20));
            onJoined = (await grains.HostsAsync(later)).Values.Count(a => a.Equals(joined.SiloAddress));
            await Task.Delay(250);
        }

        output.WriteLine($"after the join: {onJoined} of {later.Count} new calls on the new silo ({batches} batches)");
        Assert.True(onJoined >= 20, $"the joined silo took {onJoined} of {later.Count} new calls within 20 s");
        var firstNow = await grains.HostsAsync(first);
        Assert.Equal(0, firstNow.Values.Count(a => a.Equals(joined.SiloAddress)));
    }

    private static async Task WarmUpAsync(IngestGrainCluster grains, List<SiloAddress> silos, string prefix)
    {
        var started = new List<string>();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!deadline.IsCancellationRequested)
        {
            started.AddRange(await StartCallsAsync(grains, prefix + "-" + started.Count, 1));
            var hosts = (await grains.HostsAsync(started)).Values.ToHashSet();
            if (silos.All(hosts.Contains))
            {
                return;
            }

            await Task.Delay(100);
        }

        Assert.Fail($"after {started.Count} calls one at a time, not every silo had taken one");
    }

    private static async Task<List<string>> StartCallsAsync(IngestGrainCluster grains, string prefix, int count)
    {
        var ids = Enumerable.Range(1, count).Select(n => $"{prefix}-{n}-{Guid.NewGuid():N}"[..40]).ToList();
        await Task.WhenAll(ids.Select(async (id, n) =>
        {
            var start = new CallStart(CallProtocol.Exotel, id, "call-" + id, "acct", "+911", "+912", "pcm16le", 8000, 1,
                ImmutableDictionary<string, string>.Empty, "conn-" + n);
            var ack = await grains.Cluster.Client.GetGrain<ICallStreamGrain>(id).Start(start);
            Assert.Equal(CallAckStatus.Ok, ack.Status);
        }));
        return ids;
    }
}
