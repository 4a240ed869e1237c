namespace Ingest.Grains.Interfaces;

/// <summary>
/// The Redis keys a consumer reads (CONTRACT §7), spelled once. The grains write them (their Keyspace), and ingestctl,
/// the sample worker, the bench and the relay read or write them through this file (linked into the ones that do not
/// reference this project). A call's keys carry its stream id as a hash tag (<c>{id}</c>, braces literal), so they share
/// one Redis Cluster slot. The tests and the QA kit spell the keys themselves, from the contract, so that a mistake
/// here cannot hide behind the same mistake in the check.
/// </summary>
public static class StreamKeys
{
    /// <summary>The platform's key prefix; the gateway's warm-up writes under a namespace of its own instead.</summary>
    public const string Prefix = "ingest:";

    /// <summary>The shared lifecycle stream: every call's start, dtmf, mark, gap and stop.</summary>
    public const string Calls = Prefix + "calls";

    /// <summary>The suffix of a tracked call's outbound (agent) stream.</summary>
    public const string OutboundSuffix = ":outbound";

    /// <summary>A call's audio stream (its inbound track when it has two): <c>ingest:audio:{id}</c>.</summary>
    public static string Audio(string streamId, string prefix = Prefix) => prefix + "audio:{" + streamId + "}";

    /// <summary>A tracked call's outbound stream: <c>ingest:audio:{id}:outbound</c>.</summary>
    public static string AudioOutbound(string streamId, string prefix = Prefix) => Audio(streamId, prefix) + OutboundSuffix;

    /// <summary>A call's metadata hash (rate, encoding, start and stop): <c>ingest:meta:{id}</c>.</summary>
    public static string Meta(string streamId, string prefix = Prefix) => prefix + "meta:{" + streamId + "}";
}
