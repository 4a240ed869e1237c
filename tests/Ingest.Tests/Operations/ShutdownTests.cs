using System.Diagnostics;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Operations;

/// <summary>CONTRACT §8: a silo or gateway whose Redis is gone still exits within 60 s of SIGTERM.</summary>
[RunsFor(98)]
[Trait("Category", "Slow")]
public sealed class ShutdownTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task Silo_and_gateway_exit_within_60_seconds_of_SIGTERM_when_Redis_is_gone()
    {
        await using var cluster = await ProcessCluster.StartAsync();
        var silo = await cluster.StartSiloAsync("silo");
        var gateway = await cluster.StartGatewayAsync("gateway");

        await cluster.Redis.StopProcessAsync();
        await Task.Delay(TimeSpan.FromSeconds(1));

        var clock = Stopwatch.StartNew();
        silo.Terminate();
        gateway.Terminate();
        async Task<bool> ExitAsync(ChildProcess child)
        {
            var exited = await child.WaitForExitAsync(TimeSpan.FromSeconds(60));
            output.WriteLine($"{child.Name} exited: {exited} after {clock.ElapsedMilliseconds} ms\n{child.Tail(10)}");
            return exited;
        }

        var exits = await Task.WhenAll(ExitAsync(silo), ExitAsync(gateway));
        Assert.True(exits[0], "silo still running 60 s after SIGTERM\n" + silo.Tail());
        Assert.True(exits[1], "gateway still running 60 s after SIGTERM\n" + gateway.Tail());
    }

    [Fact]
    public async Task A_draining_gateway_with_a_call_in_progress_exits_within_60_seconds_when_Redis_is_gone()
    {
        await using var cluster = await ProcessCluster.StartAsync();
        await cluster.StartSiloAsync("silo");

        // The Kubernetes files' long drain: without Redis nothing can land, so the gateway must not wait for it.
        var gateway = await cluster.StartGatewayAsync("gateway", new() { ["DRAIN_GRACE_SECONDS"] = "3000" });
        var call = await LiveCall.StartAsync(gateway.IngestUri, 1);
        await call.SendAsync(5);

        await cluster.Redis.StopProcessAsync();
        var sending = call.SendAsync(600);
        var clock = Stopwatch.StartNew();
        gateway.Terminate();
        var exited = await gateway.WaitForExitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine($"gateway exited: {exited} after {clock.ElapsedMilliseconds} ms\n{gateway.Tail(10)}");
        Assert.True(exited, "gateway still draining 60 s after SIGTERM with Redis gone\n" + gateway.Tail());
        await Task.WhenAny(sending, Task.Delay(TimeSpan.FromSeconds(5)));
    }
}
