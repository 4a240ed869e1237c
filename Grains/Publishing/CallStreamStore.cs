using Ingest.Grains.Interfaces;
using StackExchange.Redis;

namespace Ingest.Grains.Publishing;

/// <summary>
/// Redis as the grains see it: the one shared multiplexer of the silo (a single node or a Redis Cluster alike), the
/// key scheme of CONTRACT §7, the opt-in replication wait, and the registry of calls whose lifecycle is still open.
/// Each call's activation gets its own <see cref="CallStreamWriter"/> from <see cref="ForStream"/>.
/// </summary>
/// <remarks>
/// Keys. A call's keys carry its stream id as a hash tag (<c>{id}</c>, braces literal), so they share one Redis
/// Cluster slot and calls spread over the cluster: <c>ingest:audio:{id}</c> (consumers), <c>ingest:meta:{id}</c>
/// (consumers, docs/CONSUMERS.md), and internal <c>ingest:cursor:{id}</c> (the fence) and <c>ingest:lifecycle:{id}</c>
/// (the call's lifecycle entries, numbered, waiting to be copied). <c>ingest:calls</c> is one key, so one slot; its
/// companions are tagged <c>{ingest:calls}</c>, which hashes to that same slot: <c>{ingest:calls}:copied:&lt;id&gt;</c>
/// (the number of the call's last entry copied) and <c>{ingest:calls}:open</c> (calls whose lifecycle is not closed,
/// scored by the last time their grain touched it). docs/OPERATIONS.md "Redis Cluster" tells the whole design.
/// </remarks>
public sealed class CallStreamStore
{
    // The warm-up's calls (WarmupCalls): the same scheme under their own namespace, kept for seconds, not minutes.
    private readonly IngestOptions _warmupOptions;
    private long _connectionFailures;

    public CallStreamStore(IConnectionMultiplexer redis, Microsoft.Extensions.Options.IOptions<IngestOptions> options, TimeProvider time)
    {
        Redis = redis;
        Database = redis.GetDatabase();
        Options = options.Value;
        Time = time;
        _warmupOptions = options.Value.ForWarmup();
        redis.ConnectionFailed += (_, _) => Interlocked.Increment(ref _connectionFailures);
    }

    internal IConnectionMultiplexer Redis { get; }

    internal IDatabase Database { get; }

    internal IngestOptions Options { get; }

    internal TimeProvider Time { get; }

    /// <summary>
    /// How many times a connection to a Redis node was lost. A master that restarted or failed over may have lost writes
    /// it acknowledged, so a writer that saw this change no longer trusts that nobody wrote since its last script.
    /// </summary>
    internal long ConnectionFailures => Interlocked.Read(ref _connectionFailures);

    public bool IsConnected => Redis.IsConnected;

    /// <summary>
    /// What the client raises when Redis could not take a command: not connected, timed out, refused it (including
    /// client-side refusals such as a cross-slot command), or shut down. Each becomes a <see cref="StoreUnavailableException"/>.
    /// </summary>
    internal static bool IsFailure(Exception ex) =>
        ex is RedisException or RedisCommandException or TimeoutException or ObjectDisposedException;

    public static string AudioKey(string streamId) => Keyspace.Live.Audio(streamId);

    /// <summary>The writer of one call; a warm-up call's writes its own namespace (<see cref="WarmupCalls"/>).</summary>
    public CallStreamWriter ForStream(string streamId) => WarmupCalls.Is(streamId)
        ? new(this, streamId, Keyspace.Warmup, _warmupOptions)
        : new(this, streamId, Keyspace.Live, Options);

    /// <summary>
    /// Calls whose lifecycle is open and whose grain has not touched it since <paramref name="before"/>: their silo and
    /// their gateway may both be gone, with a lifecycle entry not yet copied or a stop never written.
    /// </summary>
    public async Task<IReadOnlyList<string>> StaleOpenCallsAsync(DateTimeOffset before, int limit)
    {
        try
        {
            var members = await Database.SortedSetRangeByScoreAsync(
                Keyspace.Live.OpenKey, double.NegativeInfinity, before.ToUnixTimeMilliseconds(), Exclude.None, Order.Ascending, 0, limit);
            return Array.ConvertAll(members, m => m.ToString());
        }
        catch (Exception ex) when (CallStreamStore.IsFailure(ex))
        {
            throw new StoreUnavailableException(ex);
        }
    }

    /// <summary>
    /// With <see cref="IngestOptions.WaitReplicas"/> &gt; 0: true once that many replicas of the master holding
    /// <paramref name="key"/> have every write this process sent it so far (Redis WAIT on the same connection).
    /// </summary>
    internal async Task<bool> ReplicatedAsync(RedisKey key)
    {
        if (Options.WaitReplicas <= 0)
        {
            return true;
        }

        var server = Redis.GetServer(key);
        var acknowledged = await server.ExecuteAsync("WAIT", Options.WaitReplicas, (long)Options.WaitTimeout.TotalMilliseconds);
        return (long)acknowledged >= Options.WaitReplicas;
    }
}

/// <summary>
/// Redis could not be reached or did not answer; what was being written may or may not have landed. Serializable by
/// Orleans (the client library's own exceptions are not), so a grain call that fails on it reaches the gateway as this
/// error, with the client's message, instead of as a serialization failure.
/// </summary>
[GenerateSerializer]
public sealed class StoreUnavailableException : Exception
{
    public StoreUnavailableException(Exception inner)
        : base(inner.GetType().Name + ": " + inner.Message)
    {
    }

    public StoreUnavailableException(string message)
        : base(message)
    {
    }
}

/// <summary>The key scheme of CONTRACT §7 (see <see cref="CallStreamStore"/>) under one namespace: real calls' or the warm-up's.</summary>
internal sealed class Keyspace
{
    public static readonly Keyspace Live = new(StreamKeys.Prefix, listsExpire: false);

    public static readonly Keyspace Warmup = new(WarmupCalls.KeyNamespace, listsExpire: true);

    private readonly string _prefix;
    private readonly string _callsTag;

    private Keyspace(string prefix, bool listsExpire)
    {
        _prefix = prefix;
        ListsExpire = listsExpire;
        var calls = prefix + "calls";
        CallsKey = calls;
        _callsTag = "{" + calls + "}";
        OpenKey = _callsTag + ":open";
    }

    public RedisKey CallsKey { get; }

    public RedisKey OpenKey { get; }

    /// <summary>
    /// Whether the calls stream and the open set expire like a call's keys (the warm-up's: every copy renews their
    /// expiry, so an entry copied late cannot leave them behind without one) or live on (ingest:calls, trimmed by length).
    /// </summary>
    public bool ListsExpire { get; }

    public string Audio(string streamId) => StreamKeys.Audio(streamId, _prefix);

    /// <summary>The outbound track of a tracked call (CONTRACT §7): the inbound stream's name and <c>:outbound</c>.</summary>
    public string AudioOutbound(string streamId) => StreamKeys.AudioOutbound(streamId, _prefix);

    public string Cursor(string streamId) => _prefix + "cursor:{" + streamId + "}";

    public string Meta(string streamId) => StreamKeys.Meta(streamId, _prefix);

    public string Lifecycle(string streamId) => _prefix + "lifecycle:{" + streamId + "}";

    public string Copied(string streamId) => _callsTag + ":copied:" + streamId;
}
