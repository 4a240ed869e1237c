using System.Globalization;
using System.Net;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Operations;

/// <summary>What an operator sees when a process starts: a silo whose Redis cannot be reached (Orleans membership needs
/// it), a gateway joining a running cluster.</summary>
public sealed class StartupTests
{
    [Fact]
    [Trait("Category", "Slow")]
    public async Task A_gateway_joining_a_running_cluster_reads_the_flags_without_a_warning()
    {
        await using var cluster = await ProcessCluster.StartAsync();
        await cluster.StartSiloAsync("silo");
        var gateway = await cluster.StartGatewayAsync("gateway");
        await Task.Delay(TimeSpan.FromSeconds(1));

        // Its client may not have the cluster's grain manifest in its first second: that is retried quietly, not logged as
        // "Could not read the cluster flags" (an operator reads warnings as something to act on).
        var log = gateway.Tail(400);
        Assert.DoesNotContain("Could not read the cluster flags", log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_gateway_started_while_Redis_is_unreachable_answers_healthz_200_and_readyz_503_each_within_a_second()
    {
        var port = RedisServer.FreePort();
        using var gateway = HostRun.Start(HostRun.GatewayDll, new()
        {
            ["REDIS_URL"] = "127.0.0.1:1",
            ["PORT"] = port.ToString(CultureInfo.InvariantCulture),
            ["SUPPORT_EXOTEL"] = "true",
        });
        gateway.OutputDataReceived += (_, _) => { };
        gateway.ErrorDataReceived += (_, _) => { };
        gateway.BeginOutputReadLine();
        gateway.BeginErrorReadLine();
        try
        {
            // CONTRACT §8: both answer within a second whatever Redis does; a platform's liveness probe must not restart
            // a gateway that starts before its Redis (hosting starts while the Orleans client still looks for silos).
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            HttpStatusCode? health = null;
            while (health != HttpStatusCode.OK && DateTime.UtcNow < deadline && !gateway.HasExited)
            {
                try
                {
                    health = (await http.GetAsync($"http://127.0.0.1:{port}/healthz")).StatusCode;
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    await Task.Delay(100);
                }
            }

            Assert.Equal(HttpStatusCode.OK, health);
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"http://127.0.0.1:{port}/healthz")).StatusCode);
                Assert.Equal(HttpStatusCode.ServiceUnavailable, (await http.GetAsync($"http://127.0.0.1:{port}/readyz")).StatusCode);
                await Task.Delay(500);
            }
        }
        finally
        {
            gateway.Kill(entireProcessTree: true);
            await gateway.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task A_silo_that_cannot_reach_Redis_at_start_exits_1_with_one_line_and_no_stack_trace()
    {
        var outcome = await HostRun.RunAsync(HostRun.SiloDll, new()
        {
            ["REDIS_URL"] = "127.0.0.1:1",
            ["SILO_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            ["GATEWAY_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            ["SILO_HTTP_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
        });

        Assert.True(outcome.ExitCode == 1, outcome.ToString());
        Assert.True(outcome.Stderr.Length == 1, outcome.ToString());
        Assert.StartsWith("cannot start: Redis (REDIS_URL) could not be reached", outcome.Stderr[0], StringComparison.Ordinal);
        Assert.DoesNotContain(outcome.Stdout.Concat(outcome.Stderr), l => l.StartsWith("at ", StringComparison.Ordinal));
    }
}
