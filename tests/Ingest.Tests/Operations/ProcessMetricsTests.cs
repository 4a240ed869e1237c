using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Operations;

/// <summary>
/// Kestrel's meters on a gateway's <c>/metrics</c>, checked on a gateway process of its own, as it is deployed. In the
/// test process (MetricsTests, where this was checked before) several stacks' hosts share one process, and about one
/// full run in eight showed no kestrel_ metric in 5 s of scrapes. The likely cause, not proven: each host's meter
/// provider also sees the other hosts' same-named Kestrel meters, and a disposed host takes the merged stream with it.
/// </summary>
[Trait("Category", "Slow")]
public sealed class ProcessMetricsTests
{
    [Fact]
    public async Task A_gateway_process_exports_kestrels_meters_after_a_call()
    {
        await using var cluster = await ProcessCluster.StartAsync();
        await cluster.StartSiloAsync("silo");
        var gateway = await cluster.StartGatewayAsync("gateway");

        var id = "pmetrics-" + Guid.NewGuid().ToString("N");
        await using (var call = await ExotelClient.ConnectAsync(gateway.IngestUri))
        {
            await call.StartAsync(id, "call-" + id);
            await call.MediaAsync(id, 2, 1, ExotelClient.Pcm(7, 2));
            await call.StopAsync(id, 3);
            await call.WaitForCloseAsync(TimeSpan.FromSeconds(10));
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var text = string.Empty;
        Assert.True(
            await RedisStreams.WaitUntilAsync(
                async () => (text = await http.GetStringAsync(gateway.Http("/metrics"))).Contains("kestrel_", StringComparison.Ordinal),
                TimeSpan.FromSeconds(5)),
            "no kestrel_ metric in /metrics\n" + text);
        Assert.Contains("kestrel_active_connections", text, StringComparison.Ordinal);
    }
}
