using System.Globalization;
using Ingest.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Ingest.Tests.Cluster;

/// <summary>
/// Calls end to end on a Redis Cluster (issue 13): each call's audio stream lives on the master its hash tag picks, so
/// calls spread over the masters, while every call's lifecycle entries go to the one <c>ingest:calls</c> stream on
/// whichever master holds that key. Needs a write path that never touches both in one script (CROSSSLOT otherwise).
/// </summary>
[RunsFor(53)]
[Trait("Category", "Slow")]
public sealed class CallsOnRedisClusterTests(ITestOutputHelper output)
{
    private static readonly TimeSpan LandTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Twelve_Exotel_calls_land_exactly_once_in_order_on_several_masters_with_one_start_and_one_stop_each()
    {
        await using var redis = await RedisClusterServer.StartAsync(masters: 3);
        var logs = new CapturingLoggerProvider();
        await using var cluster = await IngestCluster.StartAsync(new IngestClusterOptions
        {
            Silos = 2,
            RedisConnectionString = redis.ConnectionString,
            ConfigureHost = b => b.Logging.AddProvider(logs),
        });

        var calls = await Task.WhenAll(Enumerable.Range(1, 12).Select(async n =>
        {
            var call = await ExotelCallSimulator.ConnectAsync(cluster, new CallOptions
            {
                StreamId = "cluster-" + n.ToString("00", CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..8],
                RealTime = false,
            });
            await call.StartAsync();
            await call.SendAudioAsync(frames: 25);
            await call.StopAsync();
            return call;
        }));

        try
        {
            var landed = await Task.WhenAll(calls.Select(c => LandedStream.ReadAsync(cluster, c.StreamId, LandTimeout)));
            var problems = new List<string>();
            foreach (var (call, stream) in calls.Zip(landed))
            {
                try
                {
                    stream.AssertMatches(call);
                    stream.AssertNoGaps();
                }
                catch (LandedStreamAssertionException ex)
                {
                    problems.Add(ex.Message);
                }

                var starts = stream.Lifecycle.Count(e => e["event"] == "start");
                var stops = stream.Lifecycle.Count(e => e["event"] == "stop");
                if (starts != 1 || stops != 1)
                {
                    problems.Add($"{call.StreamId}: {starts} start and {stops} stop entries in ingest:calls");
                }
            }

            Assert.True(problems.Count == 0, string.Join('\n', problems) + "\nfirst warnings and errors of the hosts:\n" + FirstComplaints(logs));

            // Each audio stream is on the master its hash tag names (that node holds the key itself), and the calls spread.
            var masters = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var call in calls)
            {
                var key = "ingest:audio:{" + call.StreamId + "}";
                var port = await redis.MasterPortForKeyAsync(key);
                masters[call.StreamId] = port;
                var held = (long)await cluster.Redis.GetServer("127.0.0.1", port).ExecuteAsync("CLUSTER", "COUNTKEYSINSLOT", cluster.Redis.HashSlot(key));
                Assert.True(held >= 1, $"{key}: master {port} holds no key of its slot");
            }

            var spread = masters.Values.GroupBy(p => p).ToDictionary(g => g.Key, g => g.Count());
            output.WriteLine("calls per master: " + string.Join(", ", spread.Select(s => $"{s.Key}: {s.Value}")) + $"; ingest:calls on {await redis.MasterPortForKeyAsync("ingest:calls")}");
            Assert.True(spread.Count > 1, "twelve calls all on one master: " + string.Join(", ", spread.Keys));
        }
        finally
        {
            foreach (var call in calls)
            {
                await call.DisposeAsync();
            }
        }
    }

    /// <summary>The hosts' distinct warnings and errors (first line of each), to say why calls did not land.</summary>
    private static string FirstComplaints(CapturingLoggerProvider logs) => string.Join('\n', logs.Entries
        .Where(e => e.Level >= LogLevel.Warning && e.Category is not ("Orleans.Runtime.Silo" or "Orleans.Runtime.Watchdog"))
        .Select(e => $"{e.Level} {e.Category}: {e.Message.Split('\n')[0]}" + (e.Exception is { } ex ? " | " + ex.Split('\n')[0] : string.Empty))
        .Distinct()
        .Take(8));

    [Fact]
    public async Task Kill_9_of_a_silo_mid_call_on_a_Redis_Cluster_loses_and_duplicates_nothing()
    {
        await using var redis = await RedisClusterServer.StartAsync(masters: 3);
        await using var cluster = await ProcessCluster.StartAsync(redis.ConnectionString);
        try
        {
            var silos = new[] { await cluster.StartSiloAsync("silo-a"), await cluster.StartSiloAsync("silo-b") };
            var gateway = await cluster.StartGatewayAsync("gateway");

            var calls = await Task.WhenAll(Enumerable.Range(1, 8).Select(n => LiveCall.StartAsync(gateway.IngestUri, n)));
            var sending = calls.Select(c => c.SendAsync(60)).ToArray();
            await Task.Delay(TimeSpan.FromSeconds(2));

            var published = await Task.WhenAll(silos.Select(s => s.MetricAsync("ingest_frames_published_total")));
            var victim = published[0] >= published[1] ? silos[0] : silos[1];
            output.WriteLine($"frames published before the kill: {silos[0].Name} {published[0]}, {silos[1].Name} {published[1]}; kill -9 {victim.Name}");
            Assert.True(published[0] + published[1] > 0, "nothing landed before the kill, so the kill proves nothing\n" + string.Join('\n', cluster.Children.Select(c => c.Tail(20))));
            victim.Kill();

            await Task.WhenAll(sending);
            await Task.WhenAll(calls.Select(c => c.FinishAsync()));
            var problems = (await Task.WhenAll(calls.Select(c => c.VerifyAsync(cluster.Connection, LandTimeout)))).OfType<string>().ToList();
            Assert.True(problems.Count == 0, string.Join('\n', problems) + "\n" + string.Join('\n', cluster.Children.Select(c => c.Tail(20))));

            var audioMasters = new HashSet<int>();
            foreach (var call in calls)
            {
                audioMasters.Add(await redis.MasterPortForKeyAsync("ingest:audio:{" + call.StreamSid + "}"));
            }

            output.WriteLine($"audio streams on {audioMasters.Count} master(s)");
        }
        catch
        {
            foreach (var child in cluster.Children)
            {
                output.WriteLine(child.Tail(60));
            }

            throw;
        }
    }
}
