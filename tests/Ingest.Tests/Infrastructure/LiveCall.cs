using System.Globalization;
using Ingest.Testing;
using StackExchange.Redis;

namespace Ingest.Tests.Infrastructure;

/// <summary>
/// One Exotel call at real-time cadence for the process-level and failure tests, on the QA kit's own
/// <see cref="ExotelCallSimulator"/> (start sequence 1, media sequence 2.. and chunk 1.., stop) and checked with its
/// <see cref="LandedStream"/>. The audio of frame n is <see cref="ExotelClient.Pcm"/>(Number, n), so a failure message
/// names a frame a person can find. A call with <see cref="BothTracks"/> sends each frame as Exotel's track selection
/// <c>both</c> does (CONTRACT §5): an inbound and an outbound message (<see cref="ExotelCallSimulator.SendBothTracksAsync"/>).
/// </summary>
public sealed class LiveCall
{
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    private LiveCall(int number, ExotelCallSimulator call, bool bothTracks)
    {
        Number = number;
        Call = call;
        BothTracks = bothTracks;
    }

    public bool BothTracks { get; }

    public int Number { get; }

    /// <summary>The kit's simulator behind this call (its socket state, close, abort).</summary>
    public ExotelCallSimulator Call { get; }

    public string StreamSid => Call.StreamId;

    /// <summary>Media frames sent so far (of each track, for a call with both).</summary>
    public int Sent => Call.SentFrames.Count;

    public static async Task<LiveCall> StartAsync(Uri ingest, int number, string? streamSid = null, bool bothTracks = false)
    {
        var sid = streamSid ?? "fail-" + number.ToString(CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..10];
        var call = await ExotelCallSimulator.ConnectAsync(ingest, new CallOptions { StreamId = sid, FrameInterval = Interval, User = IngestStack.ExotelUser, Password = IngestStack.ExotelPassword });
        await call.StartAsync();
        return new LiveCall(number, call, bothTracks);
    }

    /// <summary>Sends <paramref name="frames"/> more frames at real-time cadence (no drift: paced by a clock); a cancelled token ends it early.</summary>
    public Task SendAsync(int frames, CancellationToken cancellationToken = default)
    {
        if (BothTracks)
        {
            return Call.SendBothTracksAsync(frames);
        }

        var first = Sent + 1;
        return Call.SendAudioAsync(Enumerable.Range(first, frames).Select(n => ExotelClient.Pcm(Number, n)), cancellationToken);
    }

    /// <summary>Sends stop and waits for the gateway's close, the way Exotel ends a call.</summary>
    public Task StopAsync() => Call.StopAsync();

    /// <summary>Sends stop, waits for the close and lets the socket go.</summary>
    public async Task FinishAsync()
    {
        await Call.StopAsync();
        await Call.DisposeAsync();
    }

    /// <summary>
    /// Waits until the stop entry is in Redis, then checks the call landed exactly once, in order, byte exact (each track
    /// in its own stream), and that its lifecycle is one start and one stop with <paramref name="stopReason"/> and the
    /// frame count. Returns a description of what is wrong, or null.
    /// </summary>
    public async Task<string?> VerifyAsync(IConnectionMultiplexer redis, TimeSpan wait, string stopReason = "callended")
    {
        var landed = await LandedStream.ReadAsync(redis, StreamSid, wait);
        try
        {
            if (BothTracks)
            {
                landed.AssertTracksMatch(Call);
            }
            else
            {
                landed.AssertExactlyOnceInOrder(Call.SentFrames);
            }
        }
        catch (LandedStreamAssertionException ex)
        {
            return ex.Message;
        }

        var events = string.Join(',', landed.Lifecycle.Select(e => e.GetValueOrDefault("event")));
        if (events != "start,stop")
        {
            return $"{StreamSid}: lifecycle {events}";
        }

        var stop = landed.Stop!;
        var sent = Sent.ToString(CultureInfo.InvariantCulture);
        if (stop.GetValueOrDefault("reason") != stopReason || stop.GetValueOrDefault("frames") != sent
            || (BothTracks && stop.GetValueOrDefault("frames_outbound") != sent))
        {
            return $"{StreamSid}: stop reason {stop.GetValueOrDefault("reason")}, frames {stop.GetValueOrDefault("frames")}, frames_outbound {stop.GetValueOrDefault("frames_outbound")} (sent {sent})";
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
