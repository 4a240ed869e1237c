using System.Net.WebSockets;
using Ingest.Grains.Interfaces;
using Microsoft.Extensions.DependencyInjection;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.EndToEnd;

[Collection(EndToEndCollection.Name)]
public sealed class ExotelCallTests(EndToEndFixture fixture)
{
    private static string NewSid() => Guid.NewGuid().ToString("N");

    [Fact]
    public async Task Exotel_call_of_500_frames_lands_byte_exact_in_order_with_start_and_stop()
    {
        var sid = NewSid();
        var sent = new List<byte[]>();
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            await client.ConnectedAsync();
            await client.StartAsync(sid, "call-500");
            for (var chunk = 1; chunk <= 500; chunk++)
            {
                var audio = ExotelClient.Pcm(1, chunk, 1600);
                sent.Add(audio);
                await client.MediaAsync(sid, chunk + 1, chunk, audio);
            }

            await client.StopAsync(sid, 502);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(30)));
        }

        var audioEntries = await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid);
        Assert.Equal(Enumerable.Range(2, 500).Select(i => (long)i), audioEntries.Select(a => a.Seq));
        for (var i = 0; i < 500; i++)
        {
            Assert.Equal(sent[i], audioEntries[i].Audio);
        }

        var lifecycle = await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid);
        Assert.Equal(["start", "stop"], lifecycle.Select(e => e["event"]));
        Assert.Equal("call-500", lifecycle[0]["call_sid"]);
        Assert.Equal("8000", lifecycle[0]["sample_rate"]);
        Assert.Equal("pcm16le", lifecycle[0]["encoding"]);
        Assert.Equal("callended", lifecycle[1]["reason"]);
        Assert.Equal("500", lifecycle[1]["frames"]);
    }

    [Fact]
    public async Task Twenty_concurrent_calls_each_land_complete_and_in_order()
    {
        const int Calls = 20;
        const int Frames = 100;
        var sids = Enumerable.Range(0, Calls).Select(_ => NewSid()).ToArray();
        await Task.WhenAll(sids.Select(async (sid, n) =>
        {
            await using var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main));
            await client.StartAsync(sid, "call-" + n);
            for (var chunk = 1; chunk <= Frames; chunk++)
            {
                await client.MediaAsync(sid, chunk + 1, chunk, ExotelClient.Pcm(n, chunk));
            }

            await client.StopAsync(sid, Frames + 2);
            await client.WaitForCloseAsync(TimeSpan.FromSeconds(30));
        }));

        for (var n = 0; n < Calls; n++)
        {
            var audio = await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sids[n]);
            Assert.Equal(Enumerable.Range(2, Frames).Select(i => (long)i), audio.Select(a => a.Seq));
            Assert.Equal(ExotelClient.Pcm(n, 1), audio[0].Audio);
            Assert.Equal(ExotelClient.Pcm(n, Frames), audio[^1].Audio);
            var lifecycle = await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sids[n]);
            Assert.Equal(["start", "stop"], lifecycle.Select(e => e["event"]));
        }
    }

    [Fact]
    public async Task Protocol_vectors_fed_in_order_give_one_gap_a_dtmf_and_a_callended_stop()
    {
        // Vectors 01, 02, 06, 07, 09, 08, 11: media 2 and 3, dtmf 7, then media 5 after a lost frame, then stop 20.
        var names = new[] { "01-connected", "02-start-strings-8k", "06-media-strings-320B", "07-media-numbers-1600B", "09-dtmf", "08-media-after-gap", "11-stop-callended" };
        var sid = NewSid();
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            foreach (var name in names)
            {
                var text = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "Vectors", name + ".json"));
                await client.SendTextAsync(text.Replace("6f048d2e897a0d2d4029560f3f541947", sid, StringComparison.Ordinal));
            }

            await client.WaitForCloseAsync(TimeSpan.FromSeconds(30));
        }

        var audio = await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid);
        Assert.Equal([2L, 3L, 5L], audio.Select(a => a.Seq));
        Assert.Equal([320, 1600, 320], audio.Select(a => a.Audio.Length));
        var lifecycle = await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid);
        // The stop is numbered 20: 6..19 after the last frame, less the dtmf 7, are a trailing gap of 13 (CONTRACT §7).
        Assert.Equal(["start", "dtmf", "gap", "gap", "stop"], lifecycle.Select(e => e["event"]));
        Assert.Equal("1", lifecycle[2]["missing"]);
        Assert.Equal(("6", "19", "13", "missing"), (lifecycle[3]["from_seq"], lifecycle[3]["to_seq"], lifecycle[3]["missing"], lifecycle[3]["reason"]));
        Assert.Equal("callended", lifecycle[4]["reason"]);
    }

    [Fact]
    public async Task Socket_closed_without_stop_ends_the_call_with_reason_disconnected()
    {
        var sid = NewSid();
        var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main));
        await client.StartAsync(sid, "call-drop");
        for (var chunk = 1; chunk <= 10; chunk++)
        {
            await client.MediaAsync(sid, chunk + 1, chunk, ExotelClient.Pcm(7, chunk));
        }

        client.Socket.Abort();
        client.Socket.Dispose();

        var stopped = await RedisStreams.WaitUntilAsync(
            async () => (await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid)).Any(e => e["event"] == "stop"),
            TimeSpan.FromSeconds(20));
        Assert.True(stopped);
        var stop = Assert.Single(await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid), e => e["event"] == "stop");
        Assert.Equal("disconnected", stop["reason"]);
        Assert.Equal("10", stop["frames"]);
        Assert.Equal(10, (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid)).Count);
    }

    [Fact]
    public async Task Sample_rate_in_the_upgrade_url_wins_over_the_start_message()
    {
        var sid = NewSid();
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main, "?sample-rate=16000")))
        {
            await client.StartAsync(sid, "call-16k", sampleRate: 8000);
            await client.MediaAsync(sid, 2, 1, ExotelClient.Pcm(3, 1, 640));
            await client.StopAsync(sid, 3);
            await client.WaitForCloseAsync(TimeSpan.FromSeconds(30));
        }

        var start = Assert.Single(await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid), e => e["event"] == "start");
        Assert.Equal("16000", start["sample_rate"]);
    }

    [Fact]
    public async Task A_stop_from_another_connection_is_refused_and_the_owners_call_goes_on()
    {
        var sid = NewSid();
        await using var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main));
        await client.StartAsync(sid, "call-owned");
        await client.MediaAsync(sid, 2, 1, ExotelClient.Pcm(4, 1));
        Assert.True(await RedisStreams.WaitUntilAsync(
            async () => (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid)).Count == 1, TimeSpan.FromSeconds(10)));

        // Something other than the owning connection tries to end the call behind the gateway's back.
        var cluster = fixture.Main.Services.GetRequiredService<IClusterClient>();
        var refused = await cluster.GetGrain<ICallStreamGrain>(sid).Stop(new CallStop("operator", null, "test"));
        Assert.Equal(CallAckStatus.Conflict, refused.Status);

        await client.MediaAsync(sid, 3, 2, ExotelClient.Pcm(4, 2));
        await client.StopAsync(sid, 4);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(15)));
        Assert.Equal([2L, 3L], (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid)).Select(a => a.Seq));
        var stop = Assert.Single(await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid), e => e["event"] == "stop");
        Assert.Equal("callended", stop["reason"]);
    }
}
