using System.Globalization;
using StackExchange.Redis;

namespace Ingest.Grains.Publishing;

/// <summary>
/// What of one stream is durably in Redis. Written in the same atomic script as the entries it describes,
/// so a grain that reactivates on another silo resumes exactly where Redis is and never writes twice.
/// </summary>
public sealed record CallCursor
{
    public long Version { get; init; }

    public bool Started { get; init; }

    public bool Stopped { get; init; }

    public long? Baseline { get; init; }

    public long MediaSeq { get; init; }

    public long? Chunk { get; init; }

    public long EventSeq { get; init; }

    /// <summary>dtmf/mark sequence numbers above <see cref="MediaSeq"/>, comma-separated (nearly always empty).</summary>
    public string EventsAfterMedia { get; init; } = string.Empty;

    public long Frames { get; init; }

    public long Gaps { get; init; }

    public long Missing { get; init; }

    public static readonly CallCursor Empty = new();

    // The one list of what the cursor hash holds; "v" first (always written).
    private static readonly (RedisValue Name, Func<CallCursor, RedisValue> Value)[] Fields =
    [
        ("v", c => c.Version),
        ("started", c => c.Started ? 1 : 0),
        ("stopped", c => c.Stopped ? 1 : 0),
        ("baseline", c => c.Baseline is { } b ? b : RedisValue.EmptyString),
        ("media_seq", c => c.MediaSeq),
        ("chunk", c => c.Chunk is { } n ? n : RedisValue.EmptyString),
        ("event_seq", c => c.EventSeq),
        ("evs", c => c.EventsAfterMedia),
        ("frames", c => c.Frames),
        ("gaps", c => c.Gaps),
        ("missing", c => c.Missing),
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
            Started = Long(map, "started") == 1,
            Stopped = Long(map, "stopped") == 1,
            Baseline = Long(map, "baseline"),
            MediaSeq = Long(map, "media_seq") ?? 0,
            Chunk = Long(map, "chunk"),
            EventSeq = Long(map, "event_seq") ?? 0,
            EventsAfterMedia = map.GetValueOrDefault("evs") ?? string.Empty,
            Frames = Long(map, "frames") ?? 0,
            Gaps = Long(map, "gaps") ?? 0,
            Missing = Long(map, "missing") ?? 0,
        };
    }

    public IEnumerable<long> ParseEventsAfterMedia() =>
        EventsAfterMedia.Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(s => long.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture));

    private static long? Long(Dictionary<string, string> map, string key) =>
        map.TryGetValue(key, out var s) && long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;
}
