using Ingest.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Ingest.Tests.Operations;

/// <summary>
/// The warm-up before /readyz (GatewayWarmup, issue 14's cold start): a fresh gateway runs its own calls through the
/// whole path before it says it is ready, and none of them is seen: no key beside real calls', nothing in ingest:calls,
/// no count on /metrics. On gateway and silo processes of their own, with their default warm-up size.
/// </summary>
[RunsFor(65)]
[Trait("Category", "Slow")]
public sealed class WarmupTests
{
    private const string WarmupCallsPrefix = Ingest.Grains.Interfaces.WarmupCalls.Prefix;

    private static readonly Dictionary<string, string> WarmupOn = new()
    {
        ["WARMUP_CALLS"] = "64",
        ["Logging__LogLevel__Ingest.Gateway.Ingest.GatewayWarmup"] = "Information",
    };

    [Fact]
    public async Task A_fresh_gateway_is_ready_only_after_its_warmup_calls_and_they_leave_no_key_entry_or_count()
    {
        await using var cluster = await ProcessCluster.StartAsync();
        var silo = await cluster.StartSiloAsync("silo");
        var gateway = await cluster.StartGatewayAsync("gateway", new Dictionary<string, string>(WarmupOn) { ["Logging__LogLevel__Default"] = "Information" });

        // Ready came after the warm-up, which ran whole rounds of calls through the grains, none failing; none of its
        // calls' lines was written (they are formatted and discarded), though the process logs calls at this level.
        var log = gateway.Tail(5000);
        Assert.DoesNotContain("Start event received", log, StringComparison.Ordinal);
        Assert.DoesNotContain("Call ended", log, StringComparison.Ordinal);
        Assert.DoesNotContain(WarmupCallsPrefix, log, StringComparison.Ordinal);
        Assert.Matches(@"Warm-up done: ([2-8]) round\(s\) of 64 calls in [0-9.]+ s, [0-9]+ methods compiled, 0 call\(s\) failed; ready", log);

        // Nothing beside real calls' keys, nothing for consumers in ingest:calls, nothing in the open-calls set.
        var db = cluster.Connection.GetDatabase();
        var server = cluster.Connection.GetServers()[0];
        Assert.Empty(server.Keys(pattern: "ingest:audio:*").ToList());
        Assert.Empty(server.Keys(pattern: "ingest:meta:*").ToList());
        Assert.False(await db.KeyExistsAsync("ingest:calls"), "warm-up calls reached ingest:calls");
        Assert.False(await db.KeyExistsAsync("{ingest:calls}:open"), "warm-up calls are in the open-calls set");

        // No count on /metrics, and every series is there at 0 (a fresh process used to show none until its first call).
        var text = await new HttpClient().GetStringAsync(gateway.Http("/metrics"));
        Assert.Contains("ingest_frames_received_total{", text, StringComparison.Ordinal);
        Assert.Equal(0, await gateway.MetricAsync("ingest_frames_received_total"));
        Assert.Equal(0, await gateway.MetricAsync("ingest_frames_published_total"));
        Assert.Equal(0, await gateway.MetricAsync("ingest_calls_ended_total"));
        Assert.Contains("ingest_frames_published_total", await new HttpClient().GetStringAsync(silo.Http("/metrics")), StringComparison.Ordinal);
        Assert.Equal(0, await silo.MetricAsync("ingest_frames_published_total"));

        // Its own keys (ingest:warmup:*) expire seconds after the warm-up's last call.
        Assert.True(
            await RedisStreams.WaitUntilAsync(() => Task.FromResult(server.Keys(pattern: "ingest:warmup:*").ToList().Count == 0), TimeSpan.FromSeconds(20)),
            "warm-up keys left: " + string.Join(", ", server.Keys(pattern: "ingest:warmup:*").Take(5)));

        // A real call after it is counted alone.
        var id = "warm-" + Guid.NewGuid().ToString("N");
        await using (var call = await ExotelClient.ConnectAsync(gateway.IngestUri))
        {
            await call.StartAsync(id, "call-" + id);
            for (var chunk = 1; chunk <= 5; chunk++)
            {
                await call.MediaAsync(id, chunk + 1, chunk, ExotelClient.Pcm(chunk, 2));
            }

            await call.StopAsync(id, 7);
            await call.WaitForCloseAsync(TimeSpan.FromSeconds(10));
        }

        Assert.Equal(5, await db.StreamLengthAsync("ingest:audio:{" + id + "}"));
        Assert.True(
            await RedisStreams.WaitUntilAsync(() => Task.FromResult(gateway.Tail(5000).Contains("Start event received: { stream_sid: " + id, StringComparison.Ordinal)), TimeSpan.FromSeconds(5)),
            "the real call's start line was not logged: the check above could not have seen a warm-up line either");
        Assert.Equal(5, await gateway.MetricAsync("ingest_frames_received_total"));
        Assert.Equal(2, await db.StreamLengthAsync("ingest:calls"));
    }

    [Fact]
    public async Task A_warmup_that_cannot_finish_within_WARMUP_MAX_SECONDS_leaves_the_gateway_ready_anyway_and_cleans_up()
    {
        await using var cluster = await ProcessCluster.StartAsync();
        await cluster.StartSiloAsync("silo");

        // Two rounds of 64 paced calls take more than a second however fast the box is (40 frames 10 ms apart, then a wait).
        var gateway = await cluster.StartGatewayAsync("gateway", new Dictionary<string, string>(WarmupOn) { ["WARMUP_MAX_SECONDS"] = "1" });
        Assert.Contains("Warm-up not finished within WARMUP_MAX_SECONDS (1 s", gateway.Tail(400), StringComparison.Ordinal);
        Assert.Equal(200, await gateway.StatusAsync("/readyz"));

        var server = cluster.Connection.GetServers()[0];
        Assert.True(
            await RedisStreams.WaitUntilAsync(() => Task.FromResult(server.Keys(pattern: "ingest:warmup:*").ToList().Count == 0), TimeSpan.FromSeconds(30)),
            "warm-up keys left: " + string.Join(", ", server.Keys(pattern: "ingest:warmup:*").Take(5)));
        Assert.Empty(server.Keys(pattern: "ingest:audio:*").ToList());
    }

    [Fact]
    public async Task The_warmup_header_without_this_process_secret_is_an_ordinary_unauthenticated_upgrade()
    {
        await using var cluster = await ProcessCluster.StartAsync();
        await cluster.StartSiloAsync("silo");
        var gateway = await cluster.StartGatewayAsync("gateway", WarmupOn);

        foreach (var guess in new[] { "", "0", new string('A', 64), "true" })
        {
            Assert.Equal(401, await ExotelClient.TryUpgradeAsync(gateway.IngestUri, new Dictionary<string, string> { ["X-Ingest-Warmup"] = guess }));
        }
    }
}

/// <summary>/readyz while the warm-up runs (in the test process: a gateway of the QA kit with the warm-up turned on).</summary>
public sealed class WarmupReadinessTests
{
    [Fact]
    public async Task Readyz_answers_503_warming_up_while_the_warmup_calls_write_their_own_keys_then_200()
    {
        await using var stack = await IngestStack.StartAsync();
        await stack.AddSiloAsync();
        var gateway = await stack.AddGatewayAsync(new Dictionary<string, string?> { ["WARMUP_CALLS"] = "8" });
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var server = stack.Connection.GetServers()[0];

        using var first = await http.GetAsync(IngestStack.HttpUri(gateway, "/readyz"));
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, first.StatusCode);
        Assert.Contains("warming up", await first.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var sawWarmupKeys = false;
        Assert.True(
            await RedisStreams.WaitUntilAsync(
                async () =>
                {
                    sawWarmupKeys |= server.Keys(pattern: "ingest:warmup:audio:*").Any();
                    using var response = await http.GetAsync(IngestStack.HttpUri(gateway, "/readyz"));
                    return response.IsSuccessStatusCode;
                },
                TimeSpan.FromSeconds(40)),
            "the gateway did not become ready after its warm-up");
        Assert.True(sawWarmupKeys, "no warm-up call wrote under ingest:warmup:");
        Assert.Empty(server.Keys(pattern: "ingest:audio:*").ToList());
        Assert.False(await stack.Connection.GetDatabase().KeyExistsAsync("ingest:calls"), "warm-up calls reached ingest:calls");
    }

    [Fact]
    public async Task A_warmup_larger_than_the_per_address_limit_stays_inside_it_and_records_no_refusal()
    {
        var logs = new CapturingLoggerProvider();
        await using var cluster = await StartWarmedUpAsync(logs, calls: 64, redis: null, ("MAX_CONNECTIONS_PER_IP", "6"));

        // Rounds of 6 calls (the limit), none refused, and no refusal listed. (The refusal counters are not checked here:
        // in the test process they are shared by every test's gateway.)
        AssertEveryRoundOk(logs, calls: 6);
        Assert.Empty(await cluster.RefusalsAsync());
    }

    [Fact]
    public async Task Under_the_smallest_MAX_MESSAGE_BYTES_the_warmup_sends_frames_that_fit_and_no_call_fails()
    {
        // 1,024 bytes is the least MAX_MESSAGE_BYTES allows, and right for 20 ms frames (320 B of PCM, ~0.6 KB of JSON).
        // A 100 ms warm-up frame (1,600 B, ~2.3 KB of JSON) would be refused with 1009 on every call, leaving the
        // gateway ready on cold code.
        var logs = new CapturingLoggerProvider();
        await using var cluster = await StartWarmedUpAsync(logs, calls: 8, redis: null, ("MAX_MESSAGE_BYTES", "1024"));
        AssertEveryRoundOk(logs, calls: 8);
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task On_a_Redis_Cluster_the_warmup_calls_write_and_copy_their_lifecycle_in_their_own_namespace()
    {
        await using var redis = await RedisClusterServer.StartAsync(masters: 3);
        var logs = new CapturingLoggerProvider();
        await using var cluster = await StartWarmedUpAsync(logs, calls: 8, redis.ConnectionString);
        AssertEveryRoundOk(logs, calls: 8);

        // The two-step write worked across slots: each call's start, mark and stop reached the warm-up's calls stream
        // (its own slot), which lives 10 s more; nothing reached ingest:calls.
        var db = cluster.Redis.GetDatabase();
        Assert.True(await db.StreamLengthAsync("ingest:warmup:calls") >= 3 * 8 * 2, "the warm-up's lifecycle entries were not copied");
        Assert.False(await db.KeyExistsAsync("ingest:calls"), "warm-up calls reached ingest:calls");
    }

    /// <summary>
    /// Every round the warm-up finished had all its <paramref name="calls"/> calls end normally (its Debug round lines).
    /// Not its "done" line: in the test process the JIT is shared with every other test running, so the warm-up's
    /// "JIT gone quiet" end may not come before WARMUP_MAX_SECONDS, and it is then ready by that bound instead.
    /// </summary>
    private static void AssertEveryRoundOk(CapturingLoggerProvider logs, int calls)
    {
        var rounds = logs.Entries
            .Select(e => System.Text.RegularExpressions.Regex.Match(e.Message, @"^Warm-up round (\d+): (\d+) of (\d+) calls ended normally"))
            .Where(m => m.Success)
            .ToList();
        Assert.NotEmpty(rounds);
        Assert.All(rounds, m => Assert.Equal((calls.ToString(System.Globalization.CultureInfo.InvariantCulture), calls.ToString(System.Globalization.CultureInfo.InvariantCulture)), (m.Groups[2].Value, m.Groups[3].Value)));
        Assert.DoesNotContain(logs.Entries, e => e.Message.Contains("none of its calls got through", StringComparison.Ordinal));
    }

    /// <summary>
    /// A one-silo QA cluster whose gateway warms up with <paramref name="calls"/> calls per round (its warm-up log lines
    /// captured in <paramref name="logs"/>), returned once its /readyz says 200.
    /// </summary>
    private static async Task<IngestCluster> StartWarmedUpAsync(CapturingLoggerProvider logs, int calls, string? redis, params (string Key, string Value)[] settings)
    {
        var options = new IngestClusterOptions { Silos = 1, RedisConnectionString = redis, ConfigureHost = b => b.Logging.AddProvider(logs) };
        options.GatewaySettings["WARMUP_CALLS"] = calls.ToString(System.Globalization.CultureInfo.InvariantCulture);
        options.GatewaySettings["Logging:LogLevel:Ingest.Gateway.Ingest.GatewayWarmup"] = "Debug";
        foreach (var (key, value) in settings)
        {
            options.GatewaySettings[key] = value;
        }

        var cluster = await IngestCluster.StartAsync(options);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var ready = await RedisStreams.WaitUntilAsync(
            async () =>
            {
                using var response = await http.GetAsync(cluster.GatewayHttpUri("/readyz"));
                return response.IsSuccessStatusCode;
            },
            TimeSpan.FromSeconds(40));
        if (!ready)
        {
            await cluster.DisposeAsync();
            Assert.Fail("the gateway did not become ready after its warm-up");
        }

        return cluster;
    }
}

/// <summary>Where the warm-up calls its own gateway, from the addresses Kestrel listens on.</summary>
public sealed class WarmupAddressTests
{
    [Theory]
    [InlineData("http://0.0.0.0:8080", "ws://127.0.0.1:8080/v1/ingest")]
    [InlineData("http://[::]:8080", "ws://127.0.0.1:8080/v1/ingest")]
    [InlineData("http://+:8080", "ws://127.0.0.1:8080/v1/ingest")]
    [InlineData("http://*:8080", "ws://127.0.0.1:8080/v1/ingest")]
    [InlineData("http://localhost:8080", "ws://127.0.0.1:8080/v1/ingest")]
    [InlineData("http://127.0.0.1:5000", "ws://127.0.0.1:5000/v1/ingest")]
    [InlineData("http://[::1]:5000", "ws://[::1]:5000/v1/ingest")]
    [InlineData("http://10.1.2.3:8080", "ws://10.1.2.3:8080/v1/ingest")]
    public void The_warmup_calls_the_first_plain_http_address_it_listens_on(string listening, string expected)
    {
        Assert.Equal(new Uri(expected), Ingest.Gateway.Ingest.GatewayWarmup.LoopbackUri(["https://0.0.0.0:8443", listening]));
    }

    [Fact]
    public void A_gateway_listening_on_https_alone_has_no_address_to_warm_up_on()
    {
        Assert.Null(Ingest.Gateway.Ingest.GatewayWarmup.LoopbackUri(["https://0.0.0.0:8443"]));
        Assert.Null(Ingest.Gateway.Ingest.GatewayWarmup.LoopbackUri([]));
    }
}
