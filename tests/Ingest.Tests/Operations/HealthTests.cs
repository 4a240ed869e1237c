using System.Diagnostics;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Operations;

/// <summary>
/// CONTRACT §8: /readyz and /healthz answer within one second whatever Redis does; /healthz stays 200 through a Redis
/// outage, so a platform's liveness probe never restarts a gateway holding calls. Both processes, real HTTP ports.
/// </summary>
[Trait("Category", "Slow")]
public sealed class HealthTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task While_Redis_is_paused_readyz_answers_503_within_a_second_and_healthz_stays_200_on_silo_and_gateway()
    {
        await using var cluster = await ProcessCluster.StartAsync();
        var silo = await cluster.StartSiloAsync("silo");
        var gateway = await cluster.StartGatewayAsync("gateway");

        cluster.Redis.Pause();
        try
        {
            foreach (var child in new[] { silo, gateway })
            {
                for (var attempt = 0; attempt < 3; attempt++)
                {
                    var (ready, readyTime) = await TimedStatusAsync(child, "/readyz");
                    var (alive, aliveTime) = await TimedStatusAsync(child, "/healthz");
                    output.WriteLine($"{child.Name}: /readyz {ready} in {readyTime.TotalMilliseconds:F0} ms, /healthz {alive} in {aliveTime.TotalMilliseconds:F0} ms");
                    Assert.Equal(503, ready);
                    Assert.True(readyTime < TimeSpan.FromSeconds(1), $"{child.Name} /readyz took {readyTime}");
                    Assert.Equal(200, alive);
                    Assert.True(aliveTime < TimeSpan.FromSeconds(1), $"{child.Name} /healthz took {aliveTime}");
                }
            }
        }
        finally
        {
            cluster.Redis.Resume();
        }

        // And ready again once Redis answers.
        Assert.True(await RedisStreams.WaitUntilAsync(async () => await gateway.StatusAsync("/readyz") == 200, TimeSpan.FromSeconds(15)), gateway.Tail());
        Assert.True(await RedisStreams.WaitUntilAsync(async () => await silo.StatusAsync("/readyz") == 200, TimeSpan.FromSeconds(15)), silo.Tail());
    }

    private static async Task<(int Status, TimeSpan Elapsed)> TimedStatusAsync(ChildProcess child, string path)
    {
        // A fresh connection each time, timed from the request: what a load balancer's probe sees.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var clock = Stopwatch.StartNew();
        try
        {
            using var response = await http.GetAsync(child.Http(path));
            return ((int)response.StatusCode, clock.Elapsed);
        }
        catch (TaskCanceledException)
        {
            return (0, clock.Elapsed);
        }
    }
}
