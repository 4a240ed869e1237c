using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Ingest.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;

namespace Ingest.Tests.Admin;

/// <summary>
/// Issue 24 item 6: the flags record in Redis is lost (a flushed or failed-over Redis) and written again from version 1.
/// Running gateways held version 3; comparing versions alone they ignored every change from then on. A change is
/// compared by the record's epoch first.
/// </summary>
public sealed class FlagsEpochTests
{
    [Fact]
    public async Task A_flags_record_lost_and_written_again_from_version_1_is_obeyed_by_every_running_gateway()
    {
        await using var stack = await IngestStack.StartAsync();
        var silo = await stack.AddSiloAsync();
        var gateways = new[] { await stack.AddGatewayAsync(), await stack.AddGatewayAsync() };
        foreach (var enabled in new[] { true, false, true })
        {
            await AdminApi.PutSupportExotelAsync(gateways[0], enabled);
        }

        Assert.True(await RedisStreams.WaitUntilAsync(() => Task.FromResult(gateways.All(IngestStack.SupportsExotel)), TimeSpan.FromSeconds(10)));

        // The record goes (and with it its version 3); a silo started with SUPPORT_EXOTEL=false writes it again: version 1.
        var server = stack.Connection.GetServer(stack.Connection.GetEndPoints()[0]);
        var records = server.Keys(pattern: "*flags*").Where(k => !k.ToString().StartsWith("ingest:", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(records);
        foreach (var record in records)
        {
            await stack.Connection.GetDatabase().KeyDeleteAsync(record);
        }

        await stack.AddSiloAsync(new() { ["SUPPORT_EXOTEL"] = "false" });
        await stack.StopSiloAsync(silo);

        // Every gateway follows the new record, pushed or on its next renewal (every 5 s).
        Assert.True(
            await RedisStreams.WaitUntilAsync(() => Task.FromResult(gateways.All(g => !IngestStack.SupportsExotel(g))), TimeSpan.FromSeconds(20)),
            "a gateway kept SUPPORT_EXOTEL on after the record was written again at version 1");

        // And the next change too.
        await AdminApi.PutSupportExotelAsync(gateways[1], true);
        Assert.True(await RedisStreams.WaitUntilAsync(() => Task.FromResult(gateways.All(IngestStack.SupportsExotel)), TimeSpan.FromSeconds(10)));
    }
}
