using System.Net.WebSockets;
using Ingest.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Ingest.Tests.Failure;

/// <summary>Calls that end without a stop message: an idle caller and a socket that vanished. Both get a stop entry
/// with their reason, and the grains of ended calls do not stay in memory.</summary>
public sealed class LostSocketTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Idle_call_ends_with_idle_timeout_a_vanished_socket_with_disconnected_and_both_grains_deactivate()
    {
        await using var stack = await IngestStack.StartAsync();
        var silo = await stack.AddSiloAsync();
        var gateway = await stack.AddGatewayAsync(new() { ["SUPPORT_EXOTEL"] = "true", ["IDLE_TIMEOUT_SECONDS"] = "2" });
        Assert.True(await RedisStreams.WaitUntilAsync(() => Task.FromResult(IngestStack.SupportsExotel(gateway)), TimeSpan.FromSeconds(10)));

        var idle = await LiveCall.StartAsync(IngestStack.IngestUri(gateway), 1);
        var dropped = await LiveCall.StartAsync(IngestStack.IngestUri(gateway), 2);
        await Task.WhenAll(idle.SendAsync(5), dropped.SendAsync(5));
        Assert.Equal(2, await ActivationsAsync(silo, idle.StreamSid, dropped.StreamSid));

        // One goes quiet; the other's TCP connection is torn down without a close handshake.
        await dropped.Call.AbortAsync();
        var close = await idle.Call.WaitForCloseAsync(TimeSpan.FromSeconds(10));
        output.WriteLine($"idle call closed by the gateway with {close}");
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, close);

        Assert.Null(await idle.VerifyAsync(stack.Connection, TimeSpan.FromSeconds(10), stopReason: "idle_timeout"));
        Assert.Null(await dropped.VerifyAsync(stack.Connection, TimeSpan.FromSeconds(10), stopReason: "disconnected"));

        var gone = await RedisStreams.WaitUntilAsync(
            async () => (await ActivationsAsync(silo, idle.StreamSid, dropped.StreamSid)) == 0,
            TimeSpan.FromSeconds(10));
        Assert.True(gone, "the grains of ended calls are still active");
        await idle.Call.DisposeAsync();
    }

    private static async Task<int> ActivationsAsync(WebApplication silo, params string[] streamIds)
    {
        var management = silo.Services.GetRequiredService<IGrainFactory>().GetGrain<IManagementGrain>(0);
        var stats = await management.GetDetailedGrainStatistics([IngestGrainCluster.CallGrainType]);
        return stats.Count(s => streamIds.Contains(s.GrainId.Key.ToString()));
    }
}
