using System.Net.WebSockets;
using Ingest.Gateway.Protocol;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.EndToEnd;

/// <summary>
/// CONTRACT §5 and §7, tracks: Exotel's track selection <c>both</c> interleaves the caller (inbound) and the agent
/// (outbound) on one socket, <c>sequence_number</c> counting the messages of both and <c>chunk</c> each track's own.
/// Each track lands in its own stream, sequenced on its own, through real Kestrel, a real silo and Redis.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class TwoTrackCallTests(EndToEndFixture fixture)
{
    private static string NewSid() => Guid.NewGuid().ToString("N");

    [Fact]
    public async Task A_both_call_of_40_and_40_frames_lands_each_track_in_its_own_stream_in_order()
    {
        var sid = NewSid();
        var sent = new Dictionary<bool, List<(long Seq, byte[] Audio)>> { [false] = [], [true] = [] };
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            await client.StartAsync(sid, "both");
            long seq = 1;
            for (var chunk = 1; chunk <= 40; chunk++)
            {
                foreach (var outbound in new[] { false, true })
                {
                    var audio = ExotelClient.Pcm(outbound ? 2 : 1, chunk);
                    sent[outbound].Add((++seq, audio));
                    await client.TrackMediaAsync(sid, seq, chunk, outbound ? "outbound" : "inbound", audio);
                }
            }

            await client.StopAsync(sid, seq + 1);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(30)));
        }

        foreach (var outbound in new[] { false, true })
        {
            var landed = await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid, outbound);
            Assert.Equal(sent[outbound].Select(s => s.Seq), landed.Select(a => a.Seq));
            Assert.Equal(sent[outbound].Select(s => s.Audio), landed.Select(a => a.Audio));
        }

        var lifecycle = await StoppedLifecycleAsync(sid);
        Assert.Equal(["start", "stop"], lifecycle.Select(e => e["event"]));
        Assert.Equal("40", lifecycle[1]["frames"]);
        Assert.Equal("40", lifecycle[1]["frames_outbound"]);
        Assert.Equal("0", lifecycle[1]["missing"]);
    }

    [Fact]
    public async Task A_duplicate_and_a_missing_chunk_of_the_outbound_track_leave_the_inbound_track_untouched()
    {
        var sid = NewSid();
        var inbound = new List<byte[]>();
        var outboundSent = new List<byte[]>();
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            await client.StartAsync(sid, "dup-gap");
            long seq = 1;
            for (var chunk = 1; chunk <= 20; chunk++)
            {
                var inAudio = ExotelClient.Pcm(1, chunk);
                inbound.Add(inAudio);
                await client.TrackMediaAsync(sid, ++seq, chunk, "inbound", inAudio);
                if (chunk == 12)
                {
                    // Lost on the way: its number is used, its chunk never arrives.
                    seq++;
                    continue;
                }

                var outAudio = ExotelClient.Pcm(2, chunk);
                outboundSent.Add(outAudio);
                await client.TrackMediaAsync(sid, ++seq, chunk, "outbound", outAudio);
                if (chunk == 7)
                {
                    // The same chunk again under a new message number: a duplicate of the outbound track.
                    await client.TrackMediaAsync(sid, ++seq, chunk, "outbound", outAudio);
                }
            }

            await client.StopAsync(sid, seq + 1);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(30)));
        }

        Assert.Equal(inbound, (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid)).Select(a => a.Audio));
        Assert.Equal(outboundSent, (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid, outbound: true)).Select(a => a.Audio));

        var lifecycle = await StoppedLifecycleAsync(sid);
        var gap = Assert.Single(lifecycle, e => e["event"] == "gap");
        Assert.Equal("outbound", gap["track"]);
        Assert.Equal("12", gap["from_chunk"]);
        Assert.Equal("12", gap["to_chunk"]);
        Assert.Equal("1", gap["missing"]);
        Assert.Equal("missing", gap["reason"]);
        var stop = lifecycle.Single(e => e["event"] == "stop");
        Assert.Equal("20", stop["frames"]);
        Assert.Equal("19", stop["frames_outbound"]);
        Assert.Equal("1", stop["gaps"]);
    }

    [Fact]
    public async Task Two_track_media_without_chunk_are_deduplicated_by_sequence_number_and_make_no_gap()
    {
        var sid = NewSid();
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            await client.StartAsync(sid, "no-chunk");
            for (var n = 0; n < 10; n++)
            {
                var seq = 2 + (n * 2);
                await client.TrackMediaAsync(sid, seq, null, "inbound", ExotelClient.Pcm(1, n));
                await client.TrackMediaAsync(sid, seq + 1, null, "outbound", ExotelClient.Pcm(2, n));
                if (n == 4)
                {
                    await client.TrackMediaAsync(sid, seq + 1, null, "outbound", ExotelClient.Pcm(2, n));
                }
            }

            await client.StopAsync(sid, 22);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(30)));
        }

        Assert.Equal(Enumerable.Range(0, 10).Select(n => (long)(2 + (n * 2))), (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid)).Select(a => a.Seq));
        Assert.Equal(Enumerable.Range(0, 10).Select(n => (long)(3 + (n * 2))), (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid, outbound: true)).Select(a => a.Seq));
        var lifecycle = await StoppedLifecycleAsync(sid);
        Assert.DoesNotContain(lifecycle, e => e["event"] == "gap");
        Assert.Equal("10", lifecycle.Single(e => e["event"] == "stop")["frames_outbound"]);
    }

    [Fact]
    public async Task An_outbound_only_call_has_only_the_outbound_stream()
    {
        var sid = NewSid();
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            await client.StartAsync(sid, "outbound-only");
            for (var chunk = 1; chunk <= 5; chunk++)
            {
                await client.TrackMediaAsync(sid, chunk + 1, chunk, "outbound", ExotelClient.Pcm(3, chunk));
            }

            await client.StopAsync(sid, 7);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(30)));
        }

        Assert.False(await fixture.Stack.Connection.GetDatabase().KeyExistsAsync("ingest:audio:{" + sid + "}"));
        Assert.Equal(5, (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid, outbound: true)).Count);
        var stop = (await StoppedLifecycleAsync(sid)).Single(e => e["event"] == "stop");
        Assert.Equal("0", stop["frames"]);
        Assert.Equal("5", stop["frames_outbound"]);
    }

    [Fact]
    public async Task A_two_track_mulaw_call_lands_each_track_as_the_exact_PCM16LE_decode()
    {
        var sid = NewSid();
        var sent = new Dictionary<bool, List<byte[]>> { [false] = [], [true] = [] };
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            await client.SendJsonAsync(new
            {
                @event = "start",
                sequence_number = "1",
                stream_sid = sid,
                start = new { stream_sid = sid, call_sid = "mulaw-both", media_format = new { encoding = "audio/x-mulaw;rate=8000", sample_rate = "8000" } },
            });
            long seq = 1;
            for (var chunk = 1; chunk <= 10; chunk++)
            {
                foreach (var outbound in new[] { false, true })
                {
                    var payload = Enumerable.Range(0, 800).Select(i => (byte)((i * 3) + (chunk * 17) + (outbound ? 101 : 0))).ToArray();
                    sent[outbound].Add(payload);
                    await client.TrackMediaAsync(sid, ++seq, chunk, outbound ? "outbound" : "inbound", payload);
                }
            }

            await client.StopAsync(sid, seq + 1);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(30)));
        }

        await StoppedLifecycleAsync(sid);
        foreach (var outbound in new[] { false, true })
        {
            var landed = await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid, outbound);
            Assert.Equal(sent[outbound].Select(p => G711.ToPcm16(p, SourceEncoding.MuLaw)), landed.Select(a => a.Audio));
        }
    }

    [Fact]
    public async Task A_track_that_names_neither_is_the_inbound_track()
    {
        var sid = NewSid();
        await using (var client = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            await client.StartAsync(sid, "odd-track");
            await client.TrackMediaAsync(sid, 2, 1, "caller_side", ExotelClient.Pcm(4, 1));
            await client.TrackMediaAsync(sid, 3, 2, "inbound_track", ExotelClient.Pcm(4, 2));
            await client.TrackMediaAsync(sid, 4, 1, "outbound_track", ExotelClient.Pcm(5, 1));
            await client.StopAsync(sid, 5);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await client.WaitForCloseAsync(TimeSpan.FromSeconds(30)));
        }

        await StoppedLifecycleAsync(sid);
        Assert.Equal([ExotelClient.Pcm(4, 1), ExotelClient.Pcm(4, 2)], (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid)).Select(a => a.Audio));
        Assert.Equal([ExotelClient.Pcm(5, 1)], (await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, sid, outbound: true)).Select(a => a.Audio));
    }

    private async Task<IReadOnlyList<Dictionary<string, string>>> StoppedLifecycleAsync(string sid)
    {
        Assert.True(await RedisStreams.WaitUntilAsync(
            async () => (await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid)).Any(e => e["event"] == "stop"), TimeSpan.FromSeconds(20)));
        return await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, sid);
    }
}
