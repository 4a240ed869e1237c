using System.Text.Json;
using Orleans.GrainDirectory;
using StackExchange.Redis;

namespace Ingest.Grains.Publishing;

/// <summary>
/// The grain directory of the call grains (CallStreamGrain.DirectoryName): each call's registration is one Redis hash,
/// <c>ingest:directory:{id}</c>, in the call's own slot. Orleans' default directory is spread over the silos, and a silo
/// that leaves takes the registrations it held with it, so every call registered there is deactivated wherever it runs
/// and moves; a registration in Redis outlives any silo. One that points at a dead silo is replaced when the call is
/// next reached (Orleans passes it as the previous address). Kept in the call's slot, a registration is away exactly
/// when the call's own keys are, so a Redis Cluster shard that is down stops no call whose data it does not hold.
/// </summary>
public sealed class CallDirectory(IConnectionMultiplexer redis) : IGrainDirectory
{
    /// <summary>
    /// A registration expires this long after it was written, so one left by a crashed silo does not stay for ever;
    /// it is longer than the longest call MAX_CALL_SECONDS allows (7 days).
    /// </summary>
    public static readonly TimeSpan Expiry = TimeSpan.FromDays(8);

    /// <summary>Longest one directory operation may take: well inside the call path's grain-call timeout.</summary>
    public static readonly TimeSpan OperationTimeout = TimeSpan.FromSeconds(1);

    // KEYS[1] the registration. ARGV: address (JSON), previous activation id ("" for none), this activation id, expiry s.
    // Taken when there is none, or when the one there is the previous activation; otherwise the one there is returned.
    private const string RegisterScript = """
        local held = redis.call('HGET', KEYS[1], 'activation')
        if held and held ~= ARGV[2] then
          return redis.call('HGET', KEYS[1], 'address')
        end
        redis.call('HSET', KEYS[1], 'address', ARGV[1], 'activation', ARGV[3])
        redis.call('EXPIRE', KEYS[1], ARGV[4])
        return false
        """;

    // KEYS[1] the registration. ARGV[1] the activation id: removed only if it is still that activation's.
    private const string UnregisterScript = """
        if redis.call('HGET', KEYS[1], 'activation') == ARGV[1] then
          return redis.call('DEL', KEYS[1])
        end
        return 0
        """;

    private readonly IDatabase _db = redis.GetDatabase();

    public async Task<GrainAddress?> Lookup(GrainId grainId)
    {
        var address = await RunAsync(_db.HashGetAsync(Key(grainId), "address"), grainId, "look up");
        return address.IsNullOrEmpty ? null : JsonSerializer.Deserialize<GrainAddress>(address.ToString());
    }

    public Task<GrainAddress?> Register(GrainAddress address) => Register(address, null);

    public async Task<GrainAddress?> Register(GrainAddress address, GrainAddress? previousAddress)
    {
        ArgumentNullException.ThrowIfNull(address);
        var held = await RunAsync(
            _db.ScriptEvaluateAsync(RegisterScript, [Key(address.GrainId)],
                [JsonSerializer.Serialize(address), previousAddress?.ActivationId.ToString() ?? string.Empty, address.ActivationId.ToString(), (long)Expiry.TotalSeconds]),
            address.GrainId,
            "register");
        return held.IsNull ? address : JsonSerializer.Deserialize<GrainAddress>(held.ToString());
    }

    public async Task Unregister(GrainAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        await RunAsync(_db.ScriptEvaluateAsync(UnregisterScript, [Key(address.GrainId)], [address.ActivationId.ToString()]), address.GrainId, "unregister");
    }

    /// <summary>Nothing to do: a registration that points at a dead silo is ignored by Orleans and replaced when reached.</summary>
    public Task UnregisterSilos(List<SiloAddress> siloAddresses) => Task.CompletedTask;

    private static RedisKey Key(GrainId grainId) => Keyspace.Live.Directory(grainId.Key.ToString()!);

    /// <summary>Bounded, and a Redis failure as an exception Orleans can carry back to the caller (Redis' own cannot be serialized).</summary>
    private static async Task<T> RunAsync<T>(Task<T> command, GrainId grainId, string what)
    {
        try
        {
            return await command.WaitAsync(OperationTimeout);
        }
        catch (Exception ex) when (CallStreamStore.IsFailure(ex))
        {
            throw new OrleansException($"could not {what} {grainId} in the call directory: {ex.GetType().Name}: {ex.Message}");
        }
    }
}
