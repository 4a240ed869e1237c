using System.Diagnostics;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Operations;

/// <summary>
/// CONTRACT §8: /readyz and /healthz answer within one second whatever Redis does; /healthz stays 200 through a Redis
/// outage, so a platform's liveness probe never restarts a process holding calls. A gateway's /readyz means "send me
/// calls": it stays 200 through the outage (a call that starts then is kept) and shows the dependency beside it, in a
/// gauge and a line of its body; a silo's /readyz is 503 while it cannot reach Redis. Both processes, real HTTP ports.
/// </summary>
[Trait("Category", "Slow")]
public sealed class HealthTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string RedisGauge = "ingest_gateway_dependency_up";

    [Fact]
    public async Task Through_a_Redis_pause_and_a_restart_the_gateway_stays_ready_within_a_second_its_gauge_goes_to_0_and_back_and_the_silo_is_not_ready()
    {
        await using var cluster = await ProcessCluster.StartAsync();
        var silo = await cluster.StartSiloAsync("silo");
        var gateway = await cluster.StartGatewayAsync("gateway");
        Assert.Equal(1, await DependencyUpAsync(gateway, "redis"));

        cluster.Redis.Pause();
        try
        {
            Assert.True(await RedisStreams.WaitUntilAsync(async () => await DependencyUpAsync(gateway, "redis") == 0, TimeSpan.FromSeconds(10)), "the redis gauge did not go to 0 while Redis was paused");
            for (var attempt = 0; attempt < 3; attempt++)
            {
                foreach (var child in new[] { silo, gateway })
                {
                    var (ready, readyTime, body) = await TimedStatusAsync(child, "/readyz");
                    var (alive, aliveTime, _) = await TimedStatusAsync(child, "/healthz");
                    output.WriteLine($"{child.Name}: /readyz {ready} in {readyTime.TotalMilliseconds:F0} ms ({body.ReplaceLineEndings(" | ")}), /healthz {alive} in {aliveTime.TotalMilliseconds:F0} ms");
                    Assert.Equal(child == gateway ? 200 : 503, ready);
                    Assert.True(readyTime < TimeSpan.FromSeconds(1), $"{child.Name} /readyz took {readyTime}");
                    Assert.Equal(200, alive);
                    Assert.True(aliveTime < TimeSpan.FromSeconds(1), $"{child.Name} /healthz took {aliveTime}");
                    if (child == gateway)
                    {
                        Assert.Contains("redis: Degraded", body, StringComparison.Ordinal);
                    }
                }
            }
        }
        finally
        {
            cluster.Redis.Resume();
        }

        Assert.True(await RedisStreams.WaitUntilAsync(async () => await DependencyUpAsync(gateway, "redis") == 1, TimeSpan.FromSeconds(15)), "the redis gauge did not come back to 1");
        Assert.True(await RedisStreams.WaitUntilAsync(async () => await silo.StatusAsync("/readyz") == 200, TimeSpan.FromSeconds(15)), silo.Tail());

        // A restart: Redis stops (saving what it has) and comes back on the same port.
        await cluster.Redis.ShutdownSaveAsync();
        try
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            var sawZero = false;
            while (DateTime.UtcNow < deadline && !sawZero)
            {
                var (ready, readyTime, _) = await TimedStatusAsync(gateway, "/readyz");
                Assert.Equal(200, ready);
                Assert.True(readyTime < TimeSpan.FromSeconds(1), $"gateway /readyz took {readyTime} while Redis was stopped");
                sawZero = await DependencyUpAsync(gateway, "redis") == 0;
                await Task.Delay(200);
            }

            Assert.True(sawZero, "the redis gauge did not go to 0 while Redis was stopped");
        }
        finally
        {
            await cluster.Redis.StartProcessAsync();
        }

        Assert.True(await RedisStreams.WaitUntilAsync(async () => await DependencyUpAsync(gateway, "redis") == 1, TimeSpan.FromSeconds(20)), "the redis gauge did not come back after the restart\n" + gateway.Tail());
        Assert.Equal(200, (await TimedStatusAsync(gateway, "/readyz")).Status);
        Assert.True(await RedisStreams.WaitUntilAsync(async () => await silo.StatusAsync("/readyz") == 200, TimeSpan.FromSeconds(20)), silo.Tail());
    }

    /// <summary>The gateway's <c>ingest_gateway_dependency_up</c> for one dependency (-1 when the series is missing).</summary>
    private static async Task<double> DependencyUpAsync(ChildProcess gateway, string dependency)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var text = await http.GetStringAsync(gateway.Http("/metrics"));
        var line = text.Split('\n').FirstOrDefault(l =>
            l.StartsWith(RedisGauge + "{", StringComparison.Ordinal) && l.Contains($"dependency=\"{dependency}\"", StringComparison.Ordinal));
        return line is null ? -1 : double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task<(int Status, TimeSpan Elapsed, string Body)> TimedStatusAsync(ChildProcess child, string path)
    {
        // A fresh connection each time, timed from the request: what a load balancer's probe sees.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var clock = Stopwatch.StartNew();
        try
        {
            using var response = await http.GetAsync(child.Http(path));
            var elapsed = clock.Elapsed;
            return ((int)response.StatusCode, elapsed, await response.Content.ReadAsStringAsync());
        }
        catch (TaskCanceledException)
        {
            return (0, clock.Elapsed, "");
        }
    }
}
