using System.Globalization;
using System.Net;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Operations;

/// <summary>What an operator sees when a process starts: a silo whose Redis cannot be reached (Orleans membership needs
/// it), a gateway joining a running cluster.</summary>
[RunsFor(34)]
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
            Assert.Equal(HttpStatusCode.OK, await HealthOnceServingAsync(http, gateway, port));
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
    public async Task A_gateway_that_has_not_reached_the_cluster_answers_an_Exotel_upgrade_503_starting_with_Retry_After_never_401()
    {
        // A real Redis, but no silo: the gateway's Orleans client never finds the cluster, so it never learns the flags.
        await using var redis = await RedisServer.StartAsync();
        var port = RedisServer.FreePort();
        using var gateway = HostRun.Start(HostRun.GatewayDll, new()
        {
            ["REDIS_URL"] = redis.ConnectionString,
            ["PORT"] = port.ToString(CultureInfo.InvariantCulture),
            ["SUPPORT_EXOTEL"] = "true",
            ["EXOTEL_BASIC_AUTH_USER"] = IngestStack.ExotelUser,
            ["EXOTEL_BASIC_AUTH_PASS"] = IngestStack.ExotelPassword,
            ["JWT_SECRET"] = IngestStack.JwtSecret,
            ["WARMUP_CALLS"] = "0",
        });
        gateway.OutputDataReceived += (_, _) => { };
        gateway.ErrorDataReceived += (_, _) => { };
        gateway.BeginOutputReadLine();
        gateway.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            Assert.Equal(HttpStatusCode.OK, await HealthOnceServingAsync(http, gateway, port));
            using var ready = await http.GetAsync($"http://127.0.0.1:{port}/readyz");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            Assert.Contains("starting", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);

            using var socket = Ingest.Testing.ExotelClient.NewSocket(new Dictionary<string, string>
            {
                ["Authorization"] = Ingest.Testing.ExotelClient.BasicHeader(IngestStack.ExotelUser, IngestStack.ExotelPassword),
            });
            await Assert.ThrowsAsync<System.Net.WebSockets.WebSocketException>(() => socket.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/v1/ingest"), CancellationToken.None));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, socket.HttpStatusCode);
            var headers = socket.HttpResponseHeaders ?? new Dictionary<string, IEnumerable<string>>();
            Assert.True(headers.TryGetValue("Retry-After", out var retryAfter), "no Retry-After: " + string.Join(", ", headers.Keys));
            Assert.True(int.Parse(retryAfter.Single(), CultureInfo.InvariantCulture) >= 1);
            Assert.False(headers.ContainsKey("WWW-Authenticate"), "a 503 starting must not challenge for credentials");

            using var refusals = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{port}/v1/admin/refusals");
            refusals.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", IngestCluster.AdminToken());
            var listed = await (await http.SendAsync(refusals)).Content.ReadAsStringAsync();
            Assert.Contains("\"reason\":\"starting\"", listed, StringComparison.Ordinal);
        }
        finally
        {
            gateway.Kill(entireProcessTree: true);
            await gateway.WaitForExitAsync();
        }
    }

    /// <summary>The first <c>/healthz</c> answer of a process that is starting (within 20 s; null if none came or it exited).</summary>
    private static async Task<HttpStatusCode?> HealthOnceServingAsync(HttpClient http, System.Diagnostics.Process process, int port)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        HttpStatusCode? health = null;
        while (health != HttpStatusCode.OK && DateTime.UtcNow < deadline && !process.HasExited)
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

        return health;
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
