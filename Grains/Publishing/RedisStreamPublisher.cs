using StackExchange.Redis;

namespace Ingest.Grains.Publishing;

public enum WriteOutcome
{
    Written,
    /// <summary>Redis holds a newer cursor than the caller: another activation wrote first. Reload and retry.</summary>
    Conflict,
}

/// <summary>
/// Writes a call's entries to Redis Streams. A batch (audio entries, lifecycle entries and the new cursor) goes in one
/// Lua script, so it lands whole or not at all, and only if the cursor in Redis is the one the caller last saw.
/// That fence is what makes a resend after a silo failure or a split-brain activation harmless.
/// One shared <see cref="IConnectionMultiplexer"/> per silo; concurrent calls pipeline on it.
/// </summary>
public sealed class RedisStreamPublisher(IConnectionMultiplexer redis)
{
    private const int FixedArgs = 6;

    // KEYS: audio stream, calls stream, cursor hash, meta hash (all but the calls stream share the stream's hash tag).
    // ARGV: expected version, audio MAXLEN, calls MAXLEN, TTL seconds of the stream's keys (0: leave it), cursor field count N, entry count M,
    //       then N name/value pairs for the cursor, then per entry: target ('a' audio, 'c' calls, or 'C': calls and
    //       meta), field count F, F name/value pairs; a 'C' entry then has G, G name/value pairs HSET into the meta hash.
    // Only the start and stop entries are 'C': nothing is written to the meta hash per frame.
    // Arguments go to redis.call with unpack(ARGV, from, to): no Lua table is built per entry, which made this script
    // cost ~44 us of Redis CPU per one-frame batch (INFO commandstats, bench/run.sh) against ~6 us for a bare XADD.
    // SE.Redis already sends it as EVALSHA after the first call, so the script text is not resent.
    private const string WriteBatchScript = """
        local current = redis.call('HGET', KEYS[3], 'v')
        if not current then current = '0' end
        if current ~= ARGV[1] then return 0 end
        local cursorEnd = 6 + tonumber(ARGV[5]) * 2
        local i = cursorEnd + 1
        for _ = 1, tonumber(ARGV[6]) do
          local last = i + 1 + tonumber(ARGV[i + 1]) * 2
          local target = ARGV[i]
          if target == 'a' then
            redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, i + 2, last))
          else
            redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, i + 2, last))
          end
          if target == 'C' then
            local metaEnd = last + 1 + tonumber(ARGV[last + 1]) * 2
            redis.call('HSET', KEYS[4], unpack(ARGV, last + 2, metaEnd))
            last = metaEnd
          end
          i = last + 1
        end
        redis.call('HSET', KEYS[3], unpack(ARGV, 7, cursorEnd))
        if ARGV[4] ~= '0' then
          redis.call('EXPIRE', KEYS[3], ARGV[4])
          redis.call('EXPIRE', KEYS[1], ARGV[4])
          redis.call('EXPIRE', KEYS[4], ARGV[4])
        end
        return 1
        """;

    private readonly IDatabase _db = redis.GetDatabase();

    public bool IsConnected => redis.IsConnected;

    public async Task<CallCursor> LoadCursorAsync(string streamId)
    {
        var entries = await _db.HashGetAllAsync(StreamKeys.Cursor(streamId));
        return CallCursor.FromHash(entries);
    }

    /// <summary>
    /// Writes the first <paramref name="count"/> of <paramref name="entries"/> and <paramref name="cursorAfter"/>, if
    /// Redis still holds <paramref name="written"/>. Only the cursor fields that changed since <paramref name="written"/>
    /// are sent (per frame: a handful). <paramref name="ttlSeconds"/> &gt; 0 (re)sets the expiry of the stream's keys.
    /// </summary>
    public async Task<WriteOutcome> WriteAsync(
        string streamId,
        CallCursor written,
        IReadOnlyList<PendingEntry> entries,
        int count,
        CallCursor cursorAfter,
        long ttlSeconds,
        IngestOptions options)
    {
        var expectedVersion = written.Version;
        var cursor = cursorAfter with { Version = expectedVersion + 1 };
        var cursorFields = cursor.ChangedSince(written);

        var size = FixedArgs + cursorFields.Length * 2;
        for (var e = 0; e < count; e++)
        {
            size += 2 + entries[e].Fields.Length * 2;
            if (entries[e].Meta is { } meta)
            {
                size += 1 + meta.Length * 2;
            }
        }

        var args = new RedisValue[size];
        var a = 0;
        // Sent as its decimal text, which is what HGET returns for the comparison in the script.
        args[a++] = expectedVersion;
        args[a++] = options.AudioStreamMaxLength;
        args[a++] = options.CallsStreamMaxLength;
        // The grain asks for the expiry at most about once a second and at the stop, not on every frame: two commands
        // less per frame is Redis CPU saved (CONTRACT §8 retention).
        args[a++] = ttlSeconds;
        args[a++] = cursorFields.Length;
        args[a++] = count;
        foreach (var field in cursorFields)
        {
            args[a++] = field.Name;
            args[a++] = field.Value;
        }

        for (var e = 0; e < count; e++)
        {
            var entry = entries[e];
            args[a++] = entry.Audio ? "a" : entry.Meta is null ? "c" : "C";
            args[a++] = entry.Fields.Length;
            foreach (var field in entry.Fields)
            {
                args[a++] = field.Name;
                args[a++] = field.Value;
            }

            if (entry.Meta is { } meta)
            {
                args[a++] = meta.Length;
                foreach (var field in meta)
                {
                    args[a++] = field.Name;
                    args[a++] = field.Value;
                }
            }
        }

        RedisKey[] keys = [StreamKeys.Audio(streamId), StreamKeys.Calls, StreamKeys.Cursor(streamId), StreamKeys.Meta(streamId)];
        var result = await _db.ScriptEvaluateAsync(WriteBatchScript, keys, args);
        return (int)result == 1 ? WriteOutcome.Written : WriteOutcome.Conflict;
    }

    /// <summary>Pushes the expiry of a quiet live stream's keys forward (its gateway still calls; nothing to write).</summary>
    public Task RefreshExpiryAsync(string streamId, TimeSpan ttl)
    {
        var audio = _db.KeyExpireAsync(StreamKeys.Audio(streamId), ttl);
        var cursor = _db.KeyExpireAsync(StreamKeys.Cursor(streamId), ttl);
        var meta = _db.KeyExpireAsync(StreamKeys.Meta(streamId), ttl);
        return Task.WhenAll(audio, cursor, meta);
    }
}
