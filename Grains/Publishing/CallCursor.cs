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

    public HashEntry[] ToHashEntries() =>
    [
        new("v", Version),
        new("started", Started ? 1 : 0),
        new("stopped", Stopped ? 1 : 0),
        new("baseline", Baseline.HasValue ? Baseline.Value.ToString(CultureInfo.InvariantCulture) : string.Empty),
        new("media_seq", MediaSeq),
        new("chunk", Chunk.HasValue ? Chunk.Value.ToString(CultureInfo.InvariantCulture) : string.Empty),
        new("event_seq", EventSeq),
        new("evs", EventsAfterMedia),
        new("frames", Frames),
        new("gaps", Gaps),
        new("missing", Missing),
    ];

    /// <summary>The fields whose value differs from <paramref name="previous"/>; the version always.</summary>
    public HashEntry[] ChangedSince(CallCursor previous)
    {
        var all = ToHashEntries();
        if (previous.Version == 0)
        {
            return all;
        }

        var before = previous.ToHashEntries();
        var changed = new List<HashEntry>(all.Length);
        for (var i = 0; i < all.Length; i++)
        {
            if (i == 0 || all[i].Value != before[i].Value)
            {
                changed.Add(all[i]);
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
