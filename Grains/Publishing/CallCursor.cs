using System.Globalization;
using StackExchange.Redis;

namespace Ingest.Grains.Publishing;

/// <summary>
/// What of one stream is durably in Redis, and who owns it. Written in the same atomic script as the entries it
/// describes, so a grain that reactivates on another silo resumes exactly where Redis is, never writes twice, and
/// still knows which connection owns the stream (CONTRACT §7: one connection owns a live stream id across failover).
/// </summary>
public sealed record CallCursor
{
    public long Version { get; init; }

    /// <summary>The gateway connection that owns the stream; empty before the start is written.</summary>
    public string Owner { get; init; } = string.Empty;

    /// <summary>The owner's gateway index of the last item settled: a resend at or below it is recognised exactly.</summary>
    public long Index { get; init; }

    public bool Started { get; init; }

    public bool Stopped { get; init; }

    public long? Baseline { get; init; }

    /// <summary>Sequence number of the last media frame; null when none yet (a frame numbered 0 is a frame).</summary>
    public long? MediaSeq { get; init; }

    public long? Chunk { get; init; }

    /// <summary>dtmf/mark events above <see cref="MediaSeq"/>: how many, and the highest number.</summary>
    public long EventsAbove { get; init; }

    public long EventMax { get; init; }

    public long Frames { get; init; }

    public long Gaps { get; init; }

    public long Missing { get; init; }

    public string CallSid { get; init; } = string.Empty;

    public string Protocol { get; init; } = string.Empty;

    /// <summary>Unix milliseconds of the start.</summary>
    public long StartedAt { get; init; }

    public static readonly CallCursor Empty = new();

    // The one list of what the cursor hash holds; "v" first (always written).
    private static readonly (RedisValue Name, Func<CallCursor, RedisValue> Value)[] Fields =
    [
        ("v", c => c.Version),
        ("owner", c => c.Owner),
        ("idx", c => c.Index),
        ("started", c => c.Started ? 1 : 0),
        ("stopped", c => c.Stopped ? 1 : 0),
        ("baseline", c => c.Baseline is { } b ? b : RedisValue.EmptyString),
        ("media_seq", c => c.MediaSeq is { } m ? m : RedisValue.EmptyString),
        ("chunk", c => c.Chunk is { } n ? n : RedisValue.EmptyString),
        ("ev_n", c => c.EventsAbove),
        ("ev_max", c => c.EventMax),
        ("frames", c => c.Frames),
        ("gaps", c => c.Gaps),
        ("missing", c => c.Missing),
        ("call_sid", c => c.CallSid),
        ("protocol", c => c.Protocol),
        ("started_at", c => c.StartedAt),
    ];

    public HashEntry[] ToHashEntries() => Array.ConvertAll(Fields, f => new HashEntry(f.Name, f.Value(this)));

    /// <summary>
    /// The fields whose value differs from <paramref name="previous"/>, and the version always: per frame that is a
    /// handful, written on the hot path, so nothing else is built.
    /// </summary>
    public HashEntry[] ChangedSince(CallCursor previous)
    {
        if (previous.Version == 0)
        {
            return ToHashEntries();
        }

        var changed = new List<HashEntry>(6) { new(Fields[0].Name, Version) };
        for (var i = 1; i < Fields.Length; i++)
        {
            var value = Fields[i].Value(this);
            if (value != Fields[i].Value(previous))
            {
                changed.Add(new HashEntry(Fields[i].Name, value));
            }
        }

        return [.. changed];
    }

    public static CallCursor FromHash(HashEntry[] entries)
    {
        if (entries.Length == 0)
        {
            return Empty;
        }

        var map = entries.ToDictionary(e => e.Name.ToString(), e => e.Value.ToString(), StringComparer.Ordinal);
        return new CallCursor
        {
            Version = Long(map, "v") ?? 0,
            Owner = map.GetValueOrDefault("owner") ?? string.Empty,
            Index = Long(map, "idx") ?? 0,
            Started = Long(map, "started") == 1,
            Stopped = Long(map, "stopped") == 1,
            Baseline = Long(map, "baseline"),
            MediaSeq = Long(map, "media_seq"),
            Chunk = Long(map, "chunk"),
            EventsAbove = Long(map, "ev_n") ?? 0,
            EventMax = Long(map, "ev_max") ?? 0,
            Frames = Long(map, "frames") ?? 0,
            Gaps = Long(map, "gaps") ?? 0,
            Missing = Long(map, "missing") ?? 0,
            CallSid = map.GetValueOrDefault("call_sid") ?? string.Empty,
            Protocol = map.GetValueOrDefault("protocol") ?? string.Empty,
            StartedAt = Long(map, "started_at") ?? 0,
        };
    }

    private static long? Long(Dictionary<string, string> map, string key) =>
        map.TryGetValue(key, out var s) && long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;
}
