namespace Ingest.Grains.Publishing;

/// <summary>
/// The Redis keys of CONTRACT §7, plus the per-call cursor that makes resends idempotent. A call's keys carry its
/// stream id as a hash tag (<c>{id}</c>, braces literal) so that they share one Redis Cluster slot and calls spread
/// over a cluster; the same names on a single node, so consumers have one scheme.
/// </summary>
public static class StreamKeys
{
    public const string Calls = "ingest:calls";

    public static string Audio(string streamId) => "ingest:audio:{" + streamId + "}";

    /// <summary>A small hash written atomically with every batch: what of this stream is already in Redis.</summary>
    public static string Cursor(string streamId) => "ingest:cursor:{" + streamId + "}";

    /// <summary>
    /// Per-stream metadata for consumers (docs/CONSUMERS.md): stream_id, protocol, encoding, sample_rate, call_sid,
    /// started_at, and after the stop stopped_at, stop_reason, frames, gaps, missing. Written with the start and stop
    /// lifecycle entries in the same script, expires with the stream's other keys.
    /// </summary>
    public static string Meta(string streamId) => "ingest:meta:{" + streamId + "}";
}
