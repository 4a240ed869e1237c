namespace Ingest.Tests.Security;

/// <summary>MAX_MESSAGE_BYTES is the one limit on a message's size, whatever it is set to (CONTRACT §2, §6).</summary>
public sealed class LargeMessageTests
{
    [Fact]
    public async Task A_media_message_above_one_mebibyte_under_a_larger_max_message_bytes_lands_and_one_above_it_closes_1009()
    {
        const int limit = 3 * 1024 * 1024;
        await using var cluster = await IngestCluster.StartAsync(new IngestClusterOptions
        {
            Silos = 1,
            GatewaySettings = { ["MAX_MESSAGE_BYTES"] = limit.ToString(System.Globalization.CultureInfo.InvariantCulture) },
        });

        // 1.2 MB of PCM is ~1.6 MB of JSON: above the parser's old 1 MiB limit, below the setting.
        var large = new byte[1_200_000];
        Random.Shared.NextBytes(large);
        await using (var call = await ExotelCallSimulator.ConnectAsync(cluster, new CallOptions { RealTime = false }))
        {
            await call.StartAsync();
            await call.SendAudioAsync(frames: 2);
            await call.SendAudioAsync([large]);
            await call.SendAudioAsync(frames: 2);
            await call.StopAsync();

            var landed = await LandedStream.ReadAsync(cluster, call.StreamId, waitForStop: TimeSpan.FromSeconds(30));
            landed.AssertMatches(call);
            landed.AssertNoGaps();
        }

        // Above the setting: closed 1009, the call ended message_too_large.
        var tooLarge = new byte[(limit / 4 * 3) + 1024];
        await using (var call = await ExotelCallSimulator.ConnectAsync(cluster, new CallOptions { RealTime = false }))
        {
            await call.StartAsync();
            await call.SendAudioAsync([tooLarge]);
            Assert.Equal(System.Net.WebSockets.WebSocketCloseStatus.MessageTooBig, await call.WaitForCloseAsync(TimeSpan.FromSeconds(15)));
            var landed = await LandedStream.ReadAsync(cluster, call.StreamId, waitForStop: TimeSpan.FromSeconds(15));
            Assert.Equal("message_too_large", landed.Stop?.GetValueOrDefault("reason"));
        }
    }
}
