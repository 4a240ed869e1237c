using System.Diagnostics;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Operations;

/// <summary>CONTRACT §8: a silo or gateway whose Redis is gone still exits within 60 s of SIGTERM.</summary>
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
}
