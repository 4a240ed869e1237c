using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;

namespace Ingest.Tests.Infrastructure;

/// <summary>
/// One Exotel call sent at real-time cadence (one media frame every <see cref="Interval"/>), like a phone call does:
/// start (sequence 1), media frames with sequence 2.. and chunk 1.., then stop. The audio of frame n is
/// <see cref="ExotelClient.Pcm"/>(Number, n), so what lands can be checked byte for byte. A call with
/// <see cref="BothTracks"/> sends each frame as Exotel's track selection <c>both</c> does (CONTRACT §5): an inbound and
/// an outbound message (sequence 2n and 2n+1, both chunk n; the outbound audio is Pcm(Number + 1000, n)).
/// </summary>
public sealed class LiveCall
{
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    private LiveCall(int number, string streamSid, ExotelClient client, bool bothTracks)
    {
        Number = number;
        StreamSid = streamSid;
        Client = client;
        BothTracks = bothTracks;
    }

    public bool BothTracks { get; }

    public int Number { get; }

    public string StreamSid { get; }

    public ExotelClient Client { get; }

    /// <summary>Media frames sent so far.</summary>
    public int Sent { get; private set; }

    public static async Task<LiveCall> StartAsync(Uri ingest, int number, string? streamSid = null, bool bothTracks = false)
    {
        var sid = streamSid ?? "fail-" + number.ToString(CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..10];
        var client = await ExotelClient.ConnectAsync(ingest);
        await client.ConnectedAsync();
        await client.StartAsync(sid, "call-" + sid);
        return new LiveCall(number, sid, client, bothTracks);
    }

    /// <summary>Sends <paramref name="frames"/> more frames at real-time cadence (no drift: paced by a clock).</summary>
    public async Task SendAsync(int frames, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < frames && !cancellationToken.IsCancellationRequested; i++)
        {
            var due = Interval * i;
            var wait = due - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, CancellationToken.None);
            }

            Sent++;
            if (BothTracks)
            {
                await Client.TrackMediaAsync(StreamSid, 2L * Sent, Sent, "inbound", ExotelClient.Pcm(Number, Sent));
                await Client.TrackMediaAsync(StreamSid, (2L * Sent) + 1, Sent, "outbound", ExotelClient.Pcm(Number + 1000, Sent));
            }
            else
            {
                await Client.MediaAsync(StreamSid, Sent + 1, Sent, ExotelClient.Pcm(Number, Sent));
            }
        }
    }

    public Task StopAsync(string reason = "callended") => Client.StopAsync(StreamSid, BothTracks ? (2L * Sent) + 2 : Sent + 2, reason);

    /// <summary>Sends stop and closes the socket the way Exotel does.</summary>
    public async Task FinishAsync()
    {
        await StopAsync();
        await Client.WaitForCloseAsync(TimeSpan.FromSeconds(30));
        await Client.DisposeAsync();
    }

    /// <summary>
    /// Waits until the stop entry is in Redis, then checks the call landed exactly once, in order, byte exact:
    /// sequence 2..Sent+1 in the audio stream, one start and one stop lifecycle entry with the frame count.
    /// Returns a description of what is wrong, or null.
    /// </summary>
    public async Task<string?> VerifyAsync(IConnectionMultiplexer redis, TimeSpan wait, string stopReason = "callended")
    {
        await RedisStreams.WaitUntilAsync(
            async () => (await RedisStreams.ReadLifecycleAsync(redis, StreamSid)).Any(e => e["event"] == "stop"),
            wait);
        foreach (var outbound in BothTracks ? new[] { false, true } : [false])
        {
            var track = BothTracks ? (outbound ? " outbound" : " inbound") : "";
            var audio = await RedisStreams.ReadAudioAsync(redis, StreamSid, outbound);
            var seqs = audio.Select(a => a.Seq).ToList();
            var expected = Enumerable.Range(1, Sent).Select(n => BothTracks ? (2L * n) + (outbound ? 1 : 0) : n + 1L).ToList();
            if (!seqs.SequenceEqual(expected))
            {
                var duplicates = seqs.Count - seqs.Distinct().Count();
                var missing = expected.Except(seqs).Count();
                var outOfOrder = seqs.Zip(seqs.Skip(1)).Count(p => p.Second <= p.First);
                return $"{StreamSid}{track}: {seqs.Count} entries for {Sent} frames (duplicates {duplicates}, missing {missing}, out of order {outOfOrder})";
            }

            for (var i = 0; i < audio.Count; i++)
            {
                if (!audio[i].Audio.AsSpan().SequenceEqual(ExotelClient.Pcm(Number + (outbound ? 1000 : 0), i + 1)))
                {
                    return $"{StreamSid}{track}: audio of frame {i + 1} differs";
                }
            }
        }

        var lifecycle = await RedisStreams.ReadLifecycleAsync(redis, StreamSid);
        var events = string.Join(',', lifecycle.Select(e => e["event"]));
        if (events != "start,stop")
        {
            return $"{StreamSid}: lifecycle {events}";
        }

        if (lifecycle[1]["reason"] != stopReason || lifecycle[1]["frames"] != Sent.ToString(CultureInfo.InvariantCulture)
            || (BothTracks && lifecycle[1].GetValueOrDefault("frames_outbound") != Sent.ToString(CultureInfo.InvariantCulture)))
        {
            return $"{StreamSid}: stop reason {lifecycle[1]["reason"]}, frames {lifecycle[1]["frames"]}, frames_outbound {lifecycle[1].GetValueOrDefault("frames_outbound")} (sent {Sent})";
        }

        return null;
    }

    /// <summary>Millisecond timestamps Redis gave the call's audio entries (the first half of each entry id).</summary>
    public async Task<IReadOnlyList<long>> PublishTimesAsync(IConnectionMultiplexer redis)
    {
        var entries = await redis.GetDatabase().StreamRangeAsync("ingest:audio:{" + StreamSid + "}");
        return entries.Select(e => long.Parse(e.Id.ToString().Split('-')[0], CultureInfo.InvariantCulture)).ToList();
    }

    /// <summary>The longest wait between two consecutive audio entries being written.</summary>
    public async Task<TimeSpan> LongestStallAsync(IConnectionMultiplexer redis)
    {
        var times = await PublishTimesAsync(redis);
        var longest = times.Zip(times.Skip(1)).Select(p => p.Second - p.First).DefaultIfEmpty(0).Max();
        return TimeSpan.FromMilliseconds(longest);
    }
}
