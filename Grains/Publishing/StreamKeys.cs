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
}
