using System.Collections.Immutable;
using System.Diagnostics;
using Ingest.Gateway;
using Ingest.Gateway.Ingest;
using Ingest.Grains.Interfaces;
using Ingest.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace Ingest.Tests.Failure;

/// <summary>
/// Three silos; the silo hosting live calls is killed (no graceful shutdown) mid-stream. The gateway's own
/// <see cref="CallForwarder"/> drives every call, so the resend after the failure is exactly what the gateway does.
/// </summary>
[Trait("Category", "Slow")]
public sealed class SiloCrashTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Killing_the_silo_that_hosts_live_calls_keeps_every_frame_exactly_once_in_order()
    {
        await using var three = await IngestGrainCluster.StartAsync(silos: 3, serviceIdPrefix: "three");
        const int Calls = 12;
        const int Frames = 60;
        var ids = Enumerable.Range(1, Calls).Select(n => "crash-" + n + "-" + Guid.NewGuid().ToString("N")[..8]).ToArray();
        var forwarders = new CallForwarder[Calls];
        for (var n = 0; n < Calls; n++)
        {
            var start = new CallStart(CallProtocol.Exotel, ids[n], "call-" + ids[n], "acct", "+911", "+912", "pcm16le", 8000, 1,
                ImmutableDictionary<string, string>.Empty, "conn-" + n);
            forwarders[n] = new CallForwarder(three.Cluster.Client.GetGrain<ICallStreamGrain>(ids[n]), start, new GatewayLimits(), NullLogger.Instance);
            forwarders[n].Begin();
        }

        async Task SendAsync(int from, int to)
        {
            for (var chunk = from; chunk <= to; chunk++)
            {
                for (var n = 0; n < Calls; n++)
                {
                    await forwarders[n].EnqueueAsync(CallItem.Media(chunk + 1, chunk, chunk * 100, ExotelClient.Pcm(n, chunk)));
                }

                await Task.Delay(20);
            }
        }

        await SendAsync(1, 20);

        // The silo to kill: the non-primary one hosting the most of these calls (the primary holds the test membership).
        var hosts = await three.HostsAsync(ids);
        var victim = three.Cluster.SecondarySilos
            .OrderByDescending(s => hosts.Values.Count(a => a.Equals(s.SiloAddress)))
            .First();
        var moved = hosts.Where(h => h.Value.Equals(victim.SiloAddress)).Select(h => h.Key).ToList();
        output.WriteLine($"placement: {string.Join(", ", hosts.Values.GroupBy(a => a).Select(g => $"{g.Key}: {g.Count()}"))}; killing {victim.SiloAddress} with {moved.Count} call(s)");
        Assert.NotEmpty(moved);

        var sending = SendAsync(21, Frames);
        var clock = Stopwatch.StartNew();
        await three.Cluster.KillSiloAsync(victim);
        await sending;

        for (var n = 0; n < Calls; n++)
        {
            forwarders[n].Complete("callended", Frames + 2, "conn-" + n);
        }

        var completions = await Task.WhenAll(forwarders.Select(f => f.WaitAsync(TimeSpan.FromSeconds(60))));
        output.WriteLine($"all calls completed {clock.ElapsedMilliseconds} ms after the kill");
        foreach (var forwarder in forwarders)
        {
            await forwarder.DisposeAsync();
        }

        Assert.All(completions, c => Assert.Equal(CallAckStatus.Ok, c));
        var after = await three.HostsAsync(moved);
        Assert.DoesNotContain(after.Values, a => a.Equals(victim.SiloAddress));

        for (var n = 0; n < Calls; n++)
        {
            var audio = await RedisStreams.ReadAudioAsync(three.Connection, ids[n]);
            Assert.Equal(Enumerable.Range(2, Frames).Select(i => (long)i), audio.Select(a => a.Seq));
            for (var i = 0; i < audio.Count; i++)
            {
                Assert.Equal(ExotelClient.Pcm(n, i + 1), audio[i].Audio);
            }

            var lifecycle = await RedisStreams.ReadLifecycleAsync(three.Connection, ids[n]);
            Assert.Equal(["start", "stop"], lifecycle.Select(e => e["event"]));
            Assert.Equal(Frames.ToString(System.Globalization.CultureInfo.InvariantCulture), lifecycle[1]["frames"]);
        }
    }
}
