using System.Globalization;
using System.Text.Json;
using StackExchange.Redis;

namespace Ingest.Grains.Publishing;

/// <summary>One lifecycle entry of a call, numbered (1, 2, ...), as the name/value pairs it has in <c>ingest:calls</c>.</summary>
public sealed record LifecycleRecord(long Number, RedisValue[] Fields);

/// <summary>The fields of every entry a call writes (CONTRACT §7 and docs/CONSUMERS.md): the one place that spells them.</summary>
internal static class EntryFields
{
    public const int AudioFieldCount = 4;

    // Names sent with every batch, as bytes: a string RedisValue is encoded to UTF-8 again on every write.
    private static readonly RedisValue Seq = CursorCodec.Bytes("seq"), Ts = CursorCodec.Bytes("ts"), AudioField = CursorCodec.Bytes("audio"),
        EventField = CursorCodec.Bytes("event"), StreamIdField = CursorCodec.Bytes("stream_id"), PositionField = CursorCodec.Bytes("i");

    public static RedisValue SeqName => Seq;

    public static RedisValue PositionName => PositionField;

    /// <summary>An audio entry: CONTRACT §7's <c>seq</c>, <c>ts</c>, <c>audio</c>, and our <c>i</c> (gateway index, and the chunk after a colon).</summary>
    public static NameValueEntry[] Audio(AudioEntry audio, CallCursor after) =>
        [new(Seq, audio.Seq), new(Ts, audio.TimestampMs), new(AudioField, audio.Audio), new(PositionField, Position(after, audio.Outbound))];

    private static RedisValue Position(CallCursor after, bool outbound) => (outbound ? after.Outbound : after.Sequence).Chunk is { } chunk
        ? after.Index.ToString(CultureInfo.InvariantCulture) + ":" + chunk.ToString(CultureInfo.InvariantCulture)
        : after.Index.ToString(CultureInfo.InvariantCulture);

    /// <summary>The fields of a lifecycle entry of <c>ingest:calls</c>, as name/value pairs.</summary>
    public static RedisValue[] Lifecycle(string streamId, CallEntry entry)
    {
        var pairs = new List<RedisValue>(18);
        void Add(RedisValue name, RedisValue value)
        {
            pairs.Add(name);
            pairs.Add(value);
        }

        switch (entry)
        {
            case StartEntry s:
                Add(EventField, "start");
                Add(StreamIdField, streamId);
                Add("protocol", s.Protocol);
                Add("encoding", s.Encoding);
                AddIf("source_encoding", s.SourceEncoding);
                Add("sample_rate", s.SampleRate);
                Add("at", s.At);
                AddIf("call_sid", s.CallSid);
                AddIf("account_sid", s.AccountSid);
                AddIf("from", s.From);
                AddIf("to", s.To);
                if (s.Parameters.Count > 0)
                {
                    Add("parameters", JsonSerializer.Serialize(s.Parameters));
                }

                break;
            case StopEntry s:
                Add(EventField, "stop");
                Add(StreamIdField, streamId);
                Add("reason", s.Reason);
                Add("frames", s.Frames);
                Add("gaps", s.Gaps);
                Add("missing", s.Missing);
                Add("events_dropped", s.EventsDropped);
                if (s.FramesOutbound is { } outbound)
                {
                    Add("frames_outbound", outbound);
                }

                Add("at", s.At);
                AddIf("call_sid", string.IsNullOrEmpty(s.CallSid) ? null : s.CallSid);
                break;
            case DtmfEntry d:
                Add(EventField, "dtmf");
                Add(StreamIdField, streamId);
                Add(Seq, d.Seq);
                Add(Ts, d.TimestampMs);
                Add("digit", d.Digit);
                Add("duration_ms", d.DurationMs?.ToString(CultureInfo.InvariantCulture) ?? string.Empty);
                break;
            case MarkEntry m:
                Add(EventField, "mark");
                Add(StreamIdField, streamId);
                Add(Seq, m.Seq);
                Add(Ts, m.TimestampMs);
                Add("name", m.Name);
                break;
            case GapEntry g:
                Add(EventField, "gap");
                Add(StreamIdField, streamId);
                if (g.ByChunk)
                {
                    Add("from_chunk", g.FromChunk!.Value);
                    Add("to_chunk", g.ToChunk ?? g.FromChunk.Value);
                }
                else if (g.Track is null || g.FromSeq > 0 || g.ToSeq > 0)
                {
                    Add("from_seq", g.FromSeq);
                    Add("to_seq", g.ToSeq);
                }

                Add("missing", g.Missing);
                Add("reason", g.Reason);
                AddIf("track", g.Track);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(entry), entry.GetType().Name, "not a lifecycle entry");
        }

        return [.. pairs];

        void AddIf(string name, string? value)
        {
            if (value is not null)
            {
                Add(name, value);
            }
        }
    }

    /// <summary>The meta hash's fields written with the start and the stop; null for other entries.</summary>
    public static RedisValue[]? Meta(string streamId, CallEntry entry) => entry switch
    {
        StartEntry s => s.CallSid is { } callSid
            ? [StreamIdField, streamId, "protocol", s.Protocol, "encoding", s.Encoding, "sample_rate", s.SampleRate, "started_at", s.At, "call_sid", callSid]
            : [StreamIdField, streamId, "protocol", s.Protocol, "encoding", s.Encoding, "sample_rate", s.SampleRate, "started_at", s.At],
        StopEntry s => [
            "stopped_at", s.At, "stop_reason", s.Reason, "frames", s.Frames, "gaps", s.Gaps, "missing", s.Missing, "events_dropped", s.EventsDropped,
            .. s.FramesOutbound is { } outbound ? (RedisValue[])["frames_outbound", outbound] : []],
        _ => null,
    };

    /// <summary>Estimated bytes an entry holds while it waits (for the byte budgets: every entry counts, not only audio).</summary>
    public static int HeldBytes(CallEntry entry) => entry switch
    {
        AudioEntry a => a.Audio.Length,
        DtmfEntry d => 96 + (d.Digit.Length * 2),
        MarkEntry m => 96 + (m.Name.Length * 2),
        StartEntry s => 512 + s.Parameters.Sum(p => (p.Key.Length + p.Value.Length) * 2),
        _ => 96,
    };
}
