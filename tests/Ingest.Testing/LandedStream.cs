using System.Globalization;
using StackExchange.Redis;

namespace Ingest.Testing;

/// <summary>One audio entry of <c>ingest:audio:{id}</c>.</summary>
/// <param name="Seq">The sequence number the frame carried.</param>
/// <param name="Ts">The call-relative timestamp in milliseconds.</param>
/// <param name="Audio">The audio bytes as written.</param>
public sealed record LandedFrame(long Seq, long Ts, byte[] Audio);

/// <summary>A dtmf or mark entry of the call, with all its fields (<c>seq</c>, <c>digit</c> or <c>name</c>, …).</summary>
/// <param name="Event">The entry's <c>event</c> field.</param>
/// <param name="Fields">Every field of the entry as text.</param>
public sealed record LandedEvent(string Event, IReadOnlyDictionary<string, string> Fields);

/// <summary>A <c>gap</c> entry in <c>ingest:calls</c>.</summary>
/// <param name="FromSeq">The <c>from_seq</c> field (0 for a gap of a track judged by chunk).</param>
/// <param name="ToSeq">The <c>to_seq</c> field.</param>
/// <param name="Missing">How many frames the gap stands for.</param>
/// <param name="Reason">Why (CONTRACT §7's reasons, e.g. <c>sequence_gap</c>).</param>
/// <param name="Track">The <c>track</c> of a tracked call's gap (<c>inbound</c>, <c>outbound</c>); null for a one-track call.</param>
/// <param name="FromChunk">The <c>from_chunk</c> field of a gap judged by chunk.</param>
/// <param name="ToChunk">The <c>to_chunk</c> field.</param>
public sealed record LandedGap(long FromSeq, long ToSeq, long Missing, string Reason, string? Track = null, long? FromChunk = null, long? ToChunk = null);

/// <summary>A check on what landed did not hold; the message says what differed.</summary>
public sealed class LandedStreamAssertionException(string message) : Exception(message);

/// <summary>
/// What a call left in Redis, read the way a consumer reads it: the audio stream <c>ingest:audio:{id}</c> and the
/// call's entries in the lifecycle stream <c>ingest:calls</c>. The <c>Assert…</c> methods throw
/// <see cref="LandedStreamAssertionException"/> naming the first difference.
/// </summary>
public sealed class LandedStream
{
    private LandedStream(string streamId, IReadOnlyList<LandedFrame> frames, IReadOnlyList<LandedFrame> outboundFrames, IReadOnlyList<LandedEvent> events, IReadOnlyList<IReadOnlyDictionary<string, string>> lifecycle)
    {
        StreamId = streamId;
        Frames = frames;
        OutboundFrames = outboundFrames;
        Lifecycle = lifecycle;
        Events = events
            .Concat(lifecycle.Where(e => e.GetValueOrDefault("event") is "dtmf" or "mark")
                .Select(e => new LandedEvent(e["event"], e)))
            .OrderBy(e => Long(e.Fields, "seq"))
            .ToList();
        Gaps = lifecycle.Where(e => e.GetValueOrDefault("event") == "gap")
            .Select(e => new LandedGap(Long(e, "from_seq"), Long(e, "to_seq"), Long(e, "missing"), e.GetValueOrDefault("reason") ?? string.Empty,
                e.GetValueOrDefault("track"), e.ContainsKey("from_chunk") ? Long(e, "from_chunk") : null, e.ContainsKey("to_chunk") ? Long(e, "to_chunk") : null))
            .ToList();
    }

    /// <summary>The stream id read.</summary>
    public string StreamId { get; }

    /// <summary>The audio entries of the inbound (or only) track, in stream order.</summary>
    public IReadOnlyList<LandedFrame> Frames { get; }

    /// <summary>The audio entries of the outbound track (<c>ingest:audio:{id}:outbound</c>), in stream order; empty for a one-track call.</summary>
    public IReadOnlyList<LandedFrame> OutboundFrames { get; }

    /// <summary>The call's dtmf and mark entries, by sequence number.</summary>
    public IReadOnlyList<LandedEvent> Events { get; }

    /// <summary>This call's entries in <c>ingest:calls</c> (start, dtmf, mark, gap, stop), in order, every field as text.</summary>
    public IReadOnlyList<IReadOnlyDictionary<string, string>> Lifecycle { get; }

    /// <summary>The start entry, or null.</summary>
    public IReadOnlyDictionary<string, string>? Start => Lifecycle.FirstOrDefault(e => e.GetValueOrDefault("event") == "start");

    /// <summary>The stop entry (fields <c>reason</c>, <c>frames</c>, <c>gaps</c>, <c>missing</c>, …), or null if the call has not ended.</summary>
    public IReadOnlyDictionary<string, string>? Stop => Lifecycle.FirstOrDefault(e => e.GetValueOrDefault("event") == "stop");

    /// <summary>The gap entries, in order.</summary>
    public IReadOnlyList<LandedGap> Gaps { get; }

    /// <summary>
    /// Reads the call <paramref name="streamId"/>. With <paramref name="waitForStop"/> (default 30 s) it first waits for
    /// the stop entry, then reads; pass <see cref="TimeSpan.Zero"/> to read at once. If no stop comes in time it reads
    /// anyway, and <see cref="AssertMatches"/> reports the missing stop.
    /// </summary>
    public static Task<LandedStream> ReadAsync(IngestCluster cluster, string streamId, TimeSpan? waitForStop = null)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return ReadAsync(cluster.Redis, streamId, waitForStop);
    }

    /// <summary>As <see cref="ReadAsync(IngestCluster, string, TimeSpan?)"/>, from any Redis connection.</summary>
    public static async Task<LandedStream> ReadAsync(IConnectionMultiplexer redis, string streamId, TimeSpan? waitForStop = null)
    {
        ArgumentNullException.ThrowIfNull(redis);
        var wait = waitForStop ?? TimeSpan.FromSeconds(30);
        if (wait > TimeSpan.Zero)
        {
            await RedisStreams.WaitUntilAsync(async () => (await LifecycleAsync(redis, streamId)).Any(e => e.GetValueOrDefault("event") == "stop"), wait);
        }

        var entries = await redis.GetDatabase().StreamRangeAsync("ingest:audio:{" + streamId + "}");
        var outbound = (await redis.GetDatabase().StreamRangeAsync("ingest:audio:{" + streamId + "}:outbound"))
            .Select(e => new LandedFrame(long.Parse(e["seq"].ToString(), CultureInfo.InvariantCulture), long.Parse(e["ts"].ToString(), CultureInfo.InvariantCulture), (byte[])e["audio"]!))
            .ToList();
        var frames = new List<LandedFrame>();
        var events = new List<LandedEvent>();
        foreach (var entry in entries)
        {
            var audio = entry["audio"];
            if (!audio.IsNull)
            {
                frames.Add(new LandedFrame(long.Parse(entry["seq"].ToString(), CultureInfo.InvariantCulture), long.Parse(entry["ts"].ToString(), CultureInfo.InvariantCulture), (byte[])audio!));
            }
            else
            {
                var fields = entry.Values.ToDictionary(v => v.Name.ToString(), v => v.Value.ToString(), StringComparer.Ordinal);
                events.Add(new LandedEvent(fields.GetValueOrDefault("event") ?? string.Empty, fields));
            }
        }

        return new LandedStream(streamId, frames, outbound, events, await LifecycleAsync(redis, streamId));
    }

    /// <summary>
    /// Every frame of <paramref name="sent"/> landed exactly once, in ascending sequence order, byte for byte, and
    /// nothing else landed. The message names duplicates, missing and unexpected sequence numbers, the first place the
    /// order breaks, or the first frame whose bytes differ.
    /// </summary>
    public void AssertExactlyOnceInOrder(IReadOnlyDictionary<long, byte[]> sent) => AssertExactlyOnceInOrder(sent, Frames, string.Empty);

    /// <summary>
    /// A two-track call (<see cref="ExotelCallSimulator.SendBothTracksAsync(int)"/>): each track landed exactly once, in
    /// order, byte for byte, in its own stream; one start and one stop whose <c>frames</c> and <c>frames_outbound</c> are
    /// the frames sent of each track.
    /// </summary>
    public void AssertTracksMatch(ExotelCallSimulator call)
    {
        ArgumentNullException.ThrowIfNull(call);
        AssertExactlyOnceInOrder(call.SentFrames, Frames, " (inbound track)");
        AssertExactlyOnceInOrder(call.SentOutboundFrames, OutboundFrames, " (outbound track)");
        var starts = Lifecycle.Count(e => e.GetValueOrDefault("event") == "start");
        if (starts != 1 || Stop is not { } stop)
        {
            throw new LandedStreamAssertionException($"{StreamId}: {starts} start entries and {(Stop is null ? "no" : "a")} stop entry");
        }

        if (stop.GetValueOrDefault("frames") != call.SentFrames.Count.ToString(CultureInfo.InvariantCulture)
            || stop.GetValueOrDefault("frames_outbound") != call.SentOutboundFrames.Count.ToString(CultureInfo.InvariantCulture))
        {
            throw new LandedStreamAssertionException($"{StreamId}: stop says frames {stop.GetValueOrDefault("frames")}, frames_outbound {stop.GetValueOrDefault("frames_outbound")}; sent {call.SentFrames.Count} and {call.SentOutboundFrames.Count}");
        }
    }

    private void AssertExactlyOnceInOrder(IReadOnlyDictionary<long, byte[]> sent, IReadOnlyList<LandedFrame> frames, string track)
    {
        ArgumentNullException.ThrowIfNull(sent);
        var landed = frames.Select(f => f.Seq).ToList();
        var problems = new List<string>();
        var duplicates = landed.GroupBy(s => s).Where(g => g.Count() > 1).Select(g => $"{g.Key}×{g.Count()}").ToList();
        if (duplicates.Count > 0)
        {
            problems.Add("duplicates " + List(duplicates));
        }

        var missing = sent.Keys.Except(landed).Order().ToList();
        if (missing.Count > 0)
        {
            problems.Add($"missing {missing.Count} ({Ranges(missing)})");
        }

        var unexpected = landed.Except(sent.Keys).Order().ToList();
        if (unexpected.Count > 0)
        {
            problems.Add($"not sent but landed {Ranges(unexpected)}");
        }

        for (var i = 1; i < landed.Count; i++)
        {
            if (landed[i] < landed[i - 1])
            {
                problems.Add($"out of order: seq {landed[i]} landed after seq {landed[i - 1]} (entry {i})");
                break;
            }
        }

        foreach (var frame in frames)
        {
            if (sent.TryGetValue(frame.Seq, out var bytes) && !bytes.AsSpan().SequenceEqual(frame.Audio))
            {
                problems.Add($"first differing seq {frame.Seq}: sent {bytes.Length} bytes, landed {frame.Audio.Length}, first difference at byte {FirstDifference(bytes, frame.Audio)}");
                break;
            }
        }

        if (problems.Count > 0)
        {
            throw new LandedStreamAssertionException($"{StreamId}{track}: {landed.Count} audio entries for {sent.Count} frames sent; " + string.Join("; ", problems));
        }
    }

    /// <summary>
    /// What <paramref name="call"/> sent landed exactly once, in order, byte for byte; one start entry; and when the call
    /// sent its stop, one stop entry whose <c>frames</c> count equals the frames sent.
    /// </summary>
    public void AssertMatches(CallSimulator call)
    {
        ArgumentNullException.ThrowIfNull(call);
        AssertExactlyOnceInOrder(call.SentFrames);
        var starts = Lifecycle.Count(e => e.GetValueOrDefault("event") == "start");
        var stops = Lifecycle.Count(e => e.GetValueOrDefault("event") == "stop");
        if (starts != 1 || stops > 1)
        {
            throw new LandedStreamAssertionException($"{StreamId}: lifecycle {Describe()} (wanted one start and at most one stop)");
        }

        if (call.Ended && !call.Aborted)
        {
            if (Stop is null)
            {
                throw new LandedStreamAssertionException($"{StreamId}: the call stopped but no stop entry landed; lifecycle {Describe()}");
            }

            var frames = Stop.GetValueOrDefault("frames");
            if (frames != call.SentFrames.Count.ToString(CultureInfo.InvariantCulture))
            {
                throw new LandedStreamAssertionException($"{StreamId}: stop entry counts {frames} frames, the call sent {call.SentFrames.Count}");
            }
        }
    }

    /// <summary>No gap entry landed.</summary>
    public void AssertNoGaps()
    {
        if (Gaps.Count > 0)
        {
            throw new LandedStreamAssertionException($"{StreamId}: expected no gaps, got {string.Join(", ", Gaps.Select(Describe))}");
        }
    }

    /// <summary>
    /// Exactly these gaps landed, in this order: each given as the sequence numbers it covers (inclusive) and, when not
    /// null, its reason.
    /// </summary>
    public void AssertGaps(params (long FromSeq, long ToSeq, string? Reason)[] expected)
    {
        ArgumentNullException.ThrowIfNull(expected);
        var matches = expected.Length == Gaps.Count && expected.Zip(Gaps).All(p =>
            p.First.FromSeq == p.Second.FromSeq && p.First.ToSeq == p.Second.ToSeq && (p.First.Reason is null || p.First.Reason == p.Second.Reason));
        if (!matches)
        {
            var wanted = string.Join(", ", expected.Select(g => $"{g.FromSeq}..{g.ToSeq} ({g.Reason ?? "any reason"})"));
            var got = Gaps.Count == 0 ? "none" : string.Join(", ", Gaps.Select(Describe));
            throw new LandedStreamAssertionException($"{StreamId}: expected gaps {wanted}; got {got}");
        }
    }

    private string Describe() => Lifecycle.Count == 0
        ? "empty"
        : string.Join(", ", Lifecycle.Select(e => e.GetValueOrDefault("event") + (e.TryGetValue("reason", out var r) ? "(" + r + ")" : string.Empty)));

    private static string Describe(LandedGap g) => $"{g.FromSeq}..{g.ToSeq} ({g.Missing} missing, {g.Reason})";

    private static async Task<IReadOnlyList<IReadOnlyDictionary<string, string>>> LifecycleAsync(IConnectionMultiplexer redis, string streamId) =>
        (await RedisStreams.ReadLifecycleAsync(redis, streamId)).Cast<IReadOnlyDictionary<string, string>>().ToList();

    private static long Long(IReadOnlyDictionary<string, string> entry, string field) =>
        long.TryParse(entry.GetValueOrDefault(field), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : 0;

    private static int FirstDifference(byte[] a, byte[] b)
    {
        var length = Math.Min(a.Length, b.Length);
        for (var i = 0; i < length; i++)
        {
            if (a[i] != b[i])
            {
                return i;
            }
        }

        return length;
    }

    private static string List(IReadOnlyList<string> items) =>
        items.Count <= 10 ? string.Join(", ", items) : string.Join(", ", items.Take(10)) + $", … ({items.Count} in all)";

    private static string Ranges(IReadOnlyList<long> sorted)
    {
        var ranges = new List<string>();
        var i = 0;
        while (i < sorted.Count)
        {
            var j = i;
            while (j + 1 < sorted.Count && sorted[j + 1] == sorted[j] + 1)
            {
                j++;
            }

            ranges.Add(i == j ? sorted[i].ToString(CultureInfo.InvariantCulture) : $"{sorted[i]}..{sorted[j]}");
            i = j + 1;
        }

        return List(ranges);
    }
}
