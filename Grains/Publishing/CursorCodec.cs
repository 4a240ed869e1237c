using System.Globalization;
using Ingest.Grains.Sequencing;
using StackExchange.Redis;

namespace Ingest.Grains.Publishing;

/// <summary>How a <see cref="CallCursor"/> is held in the call's cursor hash: the one list of its fields.</summary>
internal static class CursorCodec
{
    // "v" first (always written). Position: what a bare append may move (the hash lags the stream by those, so every
    // script writes them). The outbound track's ("o_…") is written by scripts only, so it never lags. "ep" (the epoch) is the script's own; "cp"/"cpid" the copy's floor (LifecycleCopy).
    private static readonly (RedisValue Name, Func<CallCursor, RedisValue> Value, bool Position)[] Fields =
    [
        (Bytes("v"), c => c.Version, false),
        (Bytes("owner"), c => c.Owner, false),
        (Bytes("idx"), c => c.Index, true),
        (Bytes("started"), c => c.Started ? 1 : 0, false),
        (Bytes("stopped"), c => c.Stopped ? 1 : 0, false),
        (Bytes("baseline"), c => c.Sequence.Baseline is { } b ? b : RedisValue.EmptyString, false),
        (Bytes("media_seq"), c => c.Sequence.MediaSeq is { } m ? m : RedisValue.EmptyString, true),
        (Bytes("chunk"), c => c.Sequence.Chunk is { } n ? n : RedisValue.EmptyString, true),
        (Bytes("ev_n"), c => c.Sequence.EventsAbove, false),
        (Bytes("ev_max"), c => c.Sequence.EventMax, false),
        (Bytes("o_seq"), c => c.Outbound.MediaSeq is { } m ? m : RedisValue.EmptyString, false),
        (Bytes("o_chunk"), c => c.Outbound.Chunk is { } n ? n : RedisValue.EmptyString, false),
        (Bytes("o_frames"), c => c.FramesOutbound, false),
        (Bytes("tracks"), c => (int)c.Tracks, false),
        (Bytes("life"), c => c.Lifecycle, false),
        (Bytes("frames"), c => c.Frames, true),
        (Bytes("gaps"), c => c.Gaps, false),
        (Bytes("missing"), c => c.Missing, false),
        (Bytes("events"), c => c.Events, false),
        (Bytes("events_dropped"), c => c.EventsDropped, false),
        (Bytes("call_sid"), c => c.CallSid, false),
        (Bytes("protocol"), c => c.Protocol, false),
        (Bytes("started_at"), c => c.StartedAt, false),
    ];

    public const string FloorNumberField = "cp";

    public const string FloorIdField = "cpid";

    public static int MaxFieldValues => Fields.Length * 2;

    /// <summary>
    /// Name/value pairs of the fields whose value differs from <paramref name="previous"/>, and the version always: per
    /// frame that is a handful, written on the hot path, so nothing else is built.
    /// </summary>
    public static List<RedisValue> Changes(CallCursor cursor, CallCursor previous)
    {
        var all = previous.Version == 0;
        var changed = new List<RedisValue>(all ? Fields.Length * 2 : 12) { Fields[0].Name, cursor.Version };
        for (var i = 1; i < Fields.Length; i++)
        {
            var value = Fields[i].Value(cursor);
            if (all || Fields[i].Position || value != Fields[i].Value(previous))
            {
                changed.Add(Fields[i].Name);
                changed.Add(value);
            }
        }

        return changed;
    }

    /// <summary>True when <paramref name="after"/> differs from <paramref name="written"/> only in the position fields.</summary>
    public static bool OnlyPositionChanged(CallCursor after, CallCursor written)
    {
        for (var i = 1; i < Fields.Length; i++)
        {
            if (!Fields[i].Position && Fields[i].Value(after) != Fields[i].Value(written))
            {
                return false;
            }
        }

        return true;
    }

    public static Dictionary<string, string> Map(HashEntry[] entries) =>
        entries.ToDictionary(e => e.Name.ToString(), e => e.Value.ToString(), StringComparer.Ordinal);

    public static CallCursor Decode(Dictionary<string, string> map)
    {
        if (map.Count == 0 || !map.ContainsKey("v"))
        {
            return CallCursor.Empty;
        }

        return new CallCursor
        {
            Version = Long(map, "v") ?? 0,
            Owner = map.GetValueOrDefault("owner") ?? string.Empty,
            Index = Long(map, "idx") ?? 0,
            Started = Long(map, "started") == 1,
            Stopped = Long(map, "stopped") == 1,
            Sequence = new SequenceState(
                Long(map, "baseline"),
                Long(map, "media_seq"),
                Long(map, "chunk"),
                Long(map, "ev_n") ?? 0,
                Long(map, "ev_max") ?? 0),
            Outbound = new SequenceState(null, Long(map, "o_seq"), Long(map, "o_chunk"), 0, 0),
            FramesOutbound = Long(map, "o_frames") ?? 0,
            Tracks = (CallTracks)(Long(map, "tracks") ?? 0),
            Lifecycle = Long(map, "life") ?? 0,
            Frames = Long(map, "frames") ?? 0,
            Gaps = Long(map, "gaps") ?? 0,
            Missing = Long(map, "missing") ?? 0,
            Events = Long(map, "events") ?? 0,
            EventsDropped = Long(map, "events_dropped") ?? 0,
            CallSid = map.GetValueOrDefault("call_sid") ?? string.Empty,
            Protocol = map.GetValueOrDefault("protocol") ?? string.Empty,
            StartedAt = Long(map, "started_at") ?? 0,
        };
    }

    public static long? Long(Dictionary<string, string> map, string key) =>
        map.TryGetValue(key, out var s) && long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;

    public static RedisValue Bytes(string text) => System.Text.Encoding.UTF8.GetBytes(text);
}
