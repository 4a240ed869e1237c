using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Ingest.Grains.Sequencing;
using StackExchange.Redis;

namespace Ingest.Grains.Publishing;

public enum WriteOutcome
{
    /// <summary>Written by the fenced batch script; the cursor in Redis is the caller's, one version on.</summary>
    Written,

    /// <summary>One audio frame appended on its own (no script); the cursor's version is unchanged (see <see cref="CallStreamWriter"/>).</summary>
    Appended,

    /// <summary>Redis holds a newer cursor than the caller: another activation wrote first. Reload and retry.</summary>
    Conflict,

    /// <summary>Written on the master, but fewer replicas than <see cref="IngestOptions.WaitReplicas"/> confirmed it in time.</summary>
    NotReplicated,
}

/// <summary>
/// The one place that knows what a call looks like in Redis (CONTRACT §7): its keys, built once per activation, the
/// fields of every entry, the cursor's encoding and the two scripts. The grain hands it typed entries and cursors.
/// </summary>
/// <remarks>
/// <para>Audio entries carry explicit ids <c>epoch-n</c>: n the call's frame count once the entry is in (1, 2, ...),
/// the epoch a Unix time in milliseconds, and a field <c>i</c> (the owner's gateway index and Exotel chunk of the frame).
/// Each run of the batch script takes a new epoch: now, or above the stream's last id, so every id it writes is above
/// every id in the stream. Between two scripts (at most <see cref="EpochLease"/>) an activation writes audio-only
/// batches whose cursor changes only in its position (index, media sequence, chunk, frames) as bare, pipelined
/// <c>XADD</c>s with the epoch of its last script (<see cref="WriteOutcome.Appended"/>): Redis runs the script for a
/// fraction of the frames (docs/PERFORMANCE.md). So an id's ms part is the write time to within that lease. The fence:
/// an activation appends bare only after its own script wrote; a bare append of another activation (a former one, or a
/// zombie waking from a freeze) carries an older epoch than the last script's and Redis refuses it, whenever it lands
/// after that script; one that landed before it makes the script refuse (the stream already holds that frame number),
/// and the caller settles it from the stream. No clock has to agree with another. The cursor hash lags the stream by the
/// appended frames; whoever loads the cursor applies the stream's last entry to it (<see cref="ReadCursorAsync"/>); the
/// script always rewrites the four position fields.</para>
/// <para>Step one, the fenced batch, runs in the call's own slot: audio entries, the call's lifecycle entries (numbered
/// 1, 2, ... in <c>ingest:lifecycle:{id}</c>, explicit ids <c>0-n</c>) and the new cursor, in one script, only if the
/// cursor in Redis is the one the caller last saw. That fence makes a resend after a silo failure, or a split-brain
/// activation, harmless.</para>
/// <para>Step two, the copy, runs in the slot of <c>ingest:calls</c>: the lifecycle entries not yet copied are appended
/// there by a second script fenced by the call's copied number (<c>{ingest:calls}:copied:id</c>): entry n is appended
/// only when n is the next one, so each lands once and in order per call, whoever copies, however often. What a dead
/// silo left uncopied, the next activation copies from the call's lifecycle stream (<see cref="LoadAsync"/>); a call
/// whose silo and gateway both died is found in <c>{ingest:calls}:open</c> by <see cref="LifecycleSweeper"/>.</para>
/// </remarks>
public sealed class CallStreamWriter
{
    private const int BatchFixedArgs = 7;
    private const int CopyFixedArgs = 7;

    // KEYS: audio stream, cursor hash, meta hash, lifecycle stream (one slot: the stream id is their hash tag).
    // ARGV: expected version, audio MAXLEN, TTL seconds of the call's keys (0: leave it), lifecycle MINID to trim below
    //       ('0': none), cursor field count N, entry count M, the epoch to take at least (Unix ms; negative: the caller's
    //       last script ran with this version, so nobody else wrote since, and its value is the epoch, unchecked), then
    //       N name/value pairs for the cursor, then
    //       per entry: 'a' (audio), its frame number n (or '*': a stream begun by an older release), F, F name/value
    //       pairs; or 'l' (lifecycle), its id, F, pairs; or 'L': lifecycle as 'l', then G and G name/value pairs HSET into
    //       the meta hash (start and stop only: nothing goes to meta per frame).
    // The epoch is now, or the stream's last id's ms + 1 if that is not below now: audio entries get ids epoch-n, above
    // every id in the stream. Audio entries come first in a batch; if the stream's last entry already has the first
    // one's frame number or a higher one (a frame another activation appended without the script), the whole batch is
    // refused (0) with nothing written. Returns the epoch (the caller's bare appends use it until its next script).
    // Arguments go to redis.call with unpack(ARGV, from, to): no Lua table is built per entry. SE.Redis sends it as
    // EVALSHA once a node has seen it.
    private const string BatchScript = """
        local current = redis.call('HGET', KEYS[2], 'v')
        if not current then current = '0' end
        if current ~= ARGV[1] then return 0 end
        local epoch = tonumber(ARGV[7])
        local topn = -1
        if epoch < 0 then
          epoch = -epoch
        else
          local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
          if top then
            local ms, n = string.match(top[1], '^(%d+)-(%d+)$')
            topn = tonumber(n)
            if tonumber(ms) >= epoch then epoch = tonumber(ms) + 1 end
          end
        end
        local cursorEnd = 7 + tonumber(ARGV[5]) * 2
        local i = cursorEnd + 1
        local first = true
        for _ = 1, tonumber(ARGV[6]) do
          local target = ARGV[i]
          if target == 'a' then
            local last = i + 2 + tonumber(ARGV[i + 2]) * 2
            local id = '*'
            if ARGV[i + 1] ~= '*' then
              if first and topn >= tonumber(ARGV[i + 1]) then return 0 end
              id = string.format('%d', epoch) .. '-' .. ARGV[i + 1]
            end
            if first then
              local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], id, unpack(ARGV, i + 3, last))
              if type(added) == 'table' and added.err then
                -- The stream's newest entries were deleted: its last generated id is above the last entry's.
                local info = redis.call('XINFO', 'STREAM', KEYS[1])
                for k = 1, #info, 2 do
                  if info[k] == 'last-generated-id' then
                    epoch = tonumber(string.match(info[k + 1], '^(%d+)-')) + 1
                  end
                end
                id = string.format('%d', epoch) .. '-' .. ARGV[i + 1]
                redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], id, unpack(ARGV, i + 3, last))
              end
            else
              redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], id, unpack(ARGV, i + 3, last))
            end
            first = false
            i = last + 1
          else
            first = false
            local last = i + 2 + tonumber(ARGV[i + 2]) * 2
            redis.call('XADD', KEYS[4], ARGV[i + 1], unpack(ARGV, i + 3, last))
            if target == 'L' then
              local metaEnd = last + 1 + tonumber(ARGV[last + 1]) * 2
              redis.call('HSET', KEYS[3], unpack(ARGV, last + 2, metaEnd))
              last = metaEnd
            end
            i = last + 1
          end
        end
        redis.call('HSET', KEYS[2], unpack(ARGV, 8, cursorEnd))
        if ARGV[4] ~= '0' then
          redis.call('XTRIM', KEYS[4], 'MINID', ARGV[4])
        end
        if ARGV[3] ~= '0' then
          redis.call('EXPIRE', KEYS[2], ARGV[3])
          redis.call('EXPIRE', KEYS[1], ARGV[3])
          redis.call('EXPIRE', KEYS[3], ARGV[3])
          redis.call('EXPIRE', KEYS[4], ARGV[3])
        end
        return epoch
        """;

    // KEYS: ingest:calls, {ingest:calls}:copied:<id>, {ingest:calls}:open (one slot).
    // ARGV: calls MAXLEN, TTL seconds, stream id, now (unix ms), close-at (the call is stopped and this is its last
    //       lifecycle number: once copied that far it leaves the open set; 0: live), entry count M, expiry in seconds
    //       of the calls stream and the open set themselves (0: none, as for ingest:calls; the warm-up's have one), then
    //       per entry: its number n, F, F name/value pairs. Entry n is appended only if it is the next after the copied
    //       number.
    // Returns the copied number after the script.
    private const string CopyScript = """
        local c = tonumber(redis.call('GET', KEYS[2]) or '0')
        local i = 8
        for _ = 1, tonumber(ARGV[6]) do
          local n = tonumber(ARGV[i])
          local last = i + 1 + tonumber(ARGV[i + 1]) * 2
          if n == c + 1 then
            redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, i + 2, last))
            c = n
          elseif n > c + 1 then
            break
          end
          i = last + 1
        end
        redis.call('SET', KEYS[2], c, 'EX', ARGV[2])
        local close = tonumber(ARGV[5])
        if close > 0 and c >= close then
          redis.call('ZREM', KEYS[3], ARGV[3])
        else
          redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
        end
        local keep = tonumber(ARGV[7])
        if keep > 0 then
          redis.call('EXPIRE', KEYS[1], keep)
          redis.call('EXPIRE', KEYS[3], keep)
        end
        return c
        """;

    // The scripts' SHA1s, to run them by EVALSHA directly: given the script text, the client looks its SHA1 up in a
    // table keyed by the text, hashing all of it on every call (~2 % of a silo's CPU in the profile, docs/PERFORMANCE.md).
    private static readonly byte[] BatchSha = System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(BatchScript));
    private static readonly byte[] CopySha = System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(CopyScript));

    // Names sent with every batch, as bytes: a string RedisValue is encoded to UTF-8 again on every write.
    private static readonly RedisValue Seq = Bytes("seq"), Ts = Bytes("ts"), AudioField = Bytes("audio"), EventField = Bytes("event"), StreamIdField = Bytes("stream_id");
    private static readonly RedisValue AudioTarget = Bytes("a"), LifecycleTarget = Bytes("l"), LifecycleMetaTarget = Bytes("L");
    private static readonly RedisValue PositionField = Bytes("i");

    private readonly CallStreamStore _store;
    private readonly IDatabase _db;
    private readonly string _streamId;
    private readonly Keyspace _keys;
    private readonly RedisKey[] _batchKeys;
    private readonly RedisKey[] _copyKeys;
    private readonly RedisKey _audio;
    private readonly RedisKey _cursor;
    private readonly RedisKey _meta;
    private readonly RedisKey _lifecycle;
    private readonly RedisKey _copied;

    // Lifecycle entries written to the call's slot and not known to be in ingest:calls, in number order.
    private readonly List<(long Number, RedisValue[] Pairs)> _uncopied = [];

    // The number of the call's last lifecycle entry known to be in ingest:calls; -1 before it was read.
    private long _copiedNumber = -1;

    // Numbers above _copiedNumber up to this one are in the call's lifecycle stream but not in _uncopied (a former
    // activation wrote them): read from there before the next copy.
    private long _catchUpTo;
    private long _trimmedBelow;

    // The call's audio stream was begun by a silo of an older release ("*" ids, no i field): it keeps "*" ids and the script.
    private bool _legacyIds;

    // This activation's script wrote since the cursor was last loaded: bare appends are fenced (see the remarks).
    private bool _fenced;

    // The epoch of this activation's last script, and when it ran (Stopwatch ticks).
    private long _epoch;
    private long _epochAt;

    internal CallStreamWriter(CallStreamStore store, string streamId, Keyspace keys, IngestOptions options)
    {
        _store = store;
        _db = store.Database;
        _streamId = streamId;
        _keys = keys;
        Options = options;
        // Keys as bytes, encoded once per activation (a string key is encoded again on every command).
        _audio = KeyBytes(keys.Audio(streamId));
        _cursor = KeyBytes(keys.Cursor(streamId));
        _meta = KeyBytes(keys.Meta(streamId));
        _lifecycle = KeyBytes(keys.Lifecycle(streamId));
        _copied = KeyBytes(keys.Copied(streamId));
        _batchKeys = [_audio, _cursor, _meta, _lifecycle];
        _copyKeys = [keys.CallsKey, _copied, keys.OpenKey];
    }

    /// <summary>The limits this call's keys are written with (a warm-up call's retention is seconds).</summary>
    public IngestOptions Options { get; }

    public bool IsConnected => _store.IsConnected;

    /// <summary>Lifecycle entries wait to be copied to <c>ingest:calls</c>.</summary>
    public bool CopyDue => _uncopied.Count > 0 || (_catchUpTo > 0 && _catchUpTo > _copiedNumber);

    /// <summary>
    /// For a new activation: the cursor Redis holds, and the number above which the call's next lifecycle entries are
    /// numbered: the larger of the cursor's and the copied number (a Redis failover can lose a write of the call's slot
    /// that was already copied; numbering on from the cursor would then skip new entries as already copied). What a
    /// former activation wrote and did not copy is copied by the next <see cref="CopyLifecycleAsync"/>.
    /// </summary>
    public async Task<(CallCursor Cursor, long LifecycleFloor)> LoadAsync()
    {
        try
        {
            var copied = _db.StringGetAsync(_copied);
            var cursor = await EffectiveCursorAsync();
            var copiedValue = await copied;
            _copiedNumber = copiedValue.TryParse(out long c) ? c : 0;
            _uncopied.Clear();
            _catchUpTo = cursor.Lifecycle;
            return (cursor, Math.Max(cursor.Lifecycle, _copiedNumber));
        }
        catch (Exception ex) when (CallStreamStore.IsFailure(ex))
        {
            throw new StoreUnavailableException(ex);
        }
    }

    /// <summary>
    /// The cursor Redis holds now, to settle a write that may or may not have landed. With
    /// <paramref name="confirmReplicated"/> (and <see cref="IngestOptions.WaitReplicas"/> &gt; 0) it also waits until the
    /// replicas hold what was read, so what is settled from it survives a failover.
    /// </summary>
    public async Task<CallCursor> ReadCursorAsync(bool confirmReplicated)
    {
        try
        {
            var cursor = await EffectiveCursorAsync();
            if (confirmReplicated && !await _store.ReplicatedAsync(_cursor))
            {
                throw new StoreUnavailableException("the replicas of the call's Redis master did not confirm its writes in time");
            }

            // Lifecycle entries of an attempt that landed unseen are copied from the call's lifecycle stream.
            _catchUpTo = Math.Max(_catchUpTo, cursor.Lifecycle);
            return cursor;
        }
        catch (Exception ex) when (CallStreamStore.IsFailure(ex))
        {
            throw new StoreUnavailableException(ex);
        }
    }

    /// <summary>
    /// Writes the first <paramref name="count"/> of <paramref name="entries"/> and <paramref name="cursorAfter"/>, if
    /// Redis still holds <paramref name="written"/>. Only the cursor fields that changed since <paramref name="written"/>
    /// are sent (per frame: a handful). <paramref name="ttlSeconds"/> &gt; 0 (re)sets the expiry of the call's keys.
    /// </summary>
    public async Task<WriteOutcome> WriteAsync(CallCursor written, IReadOnlyList<PendingEntry> entries, int count, CallCursor cursorAfter, long ttlSeconds)
    {
        var options = Options;
        if (ttlSeconds == 0 && !_legacyIds && _fenced && Stopwatch.GetElapsedTime(_epochAt) < EpochLease && !(_copiedNumber > _trimmedBelow)
            && AllAudio(entries, count) && OnlyPositionChanged(cursorAfter, written))
        {
            return await AppendAsync(entries, count);
        }

        var cursor = cursorAfter with { Version = written.Version + 1 };
        var cursorFields = CursorChanges(cursor, written);

        // Lifecycle entries (rare) are encoded first, to size the arguments; audio entries are 8 arguments each.
        var size = BatchFixedArgs + cursorFields.Count;
        (RedisValue[] Pairs, RedisValue[]? Meta)[]? lifecycleFields = null;
        for (var e = 0; e < count; e++)
        {
            var entry = entries[e].Entry;
            if (entry is AudioEntry)
            {
                size += 3 + (AudioFieldCount * 2);
                continue;
            }

            lifecycleFields ??= new (RedisValue[], RedisValue[]?)[count];
            var encoded = (LifecycleFields(entry), MetaFields(entry));
            lifecycleFields[e] = encoded;
            size += 3 + encoded.Item1.Length + (encoded.Item2 is { } m ? 1 + m.Length : 0);
        }

        var args = new RedisValue[size];
        var a = 0;
        // Sent as its decimal text, which is what HGET returns for the comparison in the script.
        args[a++] = written.Version;
        args[a++] = options.AudioStreamMaxLength;
        // The grain asks for the expiry at most about once a second and at the stop, not on every frame (CONTRACT §8).
        args[a++] = ttlSeconds;
        var trim = _copiedNumber > _trimmedBelow ? _copiedNumber + 1 : 0;
        args[a++] = trim > 0 ? "0-" + trim.ToString(CultureInfo.InvariantCulture) : "0";
        args[a++] = cursorFields.Count / 2;
        args[a++] = count;
        // Fenced (this activation's last script wrote the version expected now): every id in the stream is at or below
        // its epoch (another activation's bare appends are older and refused), so the script need not read the stream.
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        args[a++] = _fenced ? -Math.Max(now, _epoch + 1) : now;
        foreach (var value in cursorFields)
        {
            args[a++] = value;
        }

        // Audio first (see the script), in order; then the lifecycle entries, in order.
        for (var e = 0; e < count; e++)
        {
            if (entries[e].Entry is AudioEntry audio)
            {
                var after = entries[e].CursorAfter;
                args[a++] = AudioTarget;
                args[a++] = _legacyIds ? "*" : after.Frames;
                args[a++] = AudioFieldCount;
                foreach (var field in AudioFields(audio, after))
                {
                    args[a++] = field.Name;
                    args[a++] = field.Value;
                }
            }
        }

        List<(long, RedisValue[])>? lifecycle = null;
        for (var e = 0; e < count; e++)
        {
            var entry = entries[e];
            if (entry.Entry is AudioEntry)
            {
                continue;
            }

            var number = entry.CursorAfter.Lifecycle;
            var (pairs, meta) = lifecycleFields![e];
            args[a++] = meta is null ? LifecycleTarget : LifecycleMetaTarget;
            args[a++] = "0-" + number.ToString(CultureInfo.InvariantCulture);
            args[a++] = pairs.Length / 2;
            pairs.CopyTo(args, a);
            a += pairs.Length;
            if (meta is not null)
            {
                args[a++] = meta.Length / 2;
                meta.CopyTo(args, a);
                a += meta.Length;
            }

            (lifecycle ??= []).Add((number, pairs));
        }

        RedisResult result;
        try
        {
            result = await EvalAsync(BatchScript, BatchSha, _batchKeys, args);
        }
        catch (Exception ex) when (CallStreamStore.IsFailure(ex))
        {
            throw new StoreUnavailableException(ex);
        }

        if ((long)result == 0)
        {
            _fenced = false;
            return WriteOutcome.Conflict;
        }

        _epoch = (long)result;
        _epochAt = Stopwatch.GetTimestamp();
        _fenced = true;

        if (trim > 0)
        {
            _trimmedBelow = trim - 1;
        }

        if (lifecycle is not null)
        {
            _uncopied.AddRange(lifecycle);
        }

        try
        {
            return await _store.ReplicatedAsync(_cursor) ? WriteOutcome.Written : WriteOutcome.NotReplicated;
        }
        catch (Exception ex) when (CallStreamStore.IsFailure(ex))
        {
            return WriteOutcome.NotReplicated;
        }
    }

    /// <summary>
    /// The common batch without the script: audio frames only, each a bare XADD with its explicit id <c>epoch-n</c> (the
    /// epoch of this activation's last script), pipelined. Redis refuses one if the stream's last id is at or above it
    /// (another activation's script wrote since, with a later epoch): a conflict, as when the script's fence refuses, and
    /// what did land is settled by the caller from the stream's last entry. A failed attempt is settled by reading the
    /// cursor, which ends the lease: its retry goes through the script. The cursor hash is not touched; its version stays.
    /// </summary>
    private async Task<WriteOutcome> AppendAsync(IReadOnlyList<PendingEntry> entries, int count)
    {
        var adds = new Task<RedisValue>[count];
        for (var e = 0; e < count; e++)
        {
            var audio = (AudioEntry)entries[e].Entry;
            var after = entries[e].CursorAfter;
            adds[e] = _db.StreamAddAsync(
                _audio,
                AudioFields(audio, after),
                AudioId(_epoch, after.Frames),
                Options.AudioStreamMaxLength,
                useApproximateMaxLength: true);
        }

        var refused = false;
        Exception? failure = null;
        foreach (var add in adds)
        {
            try
            {
                await add;
            }
            catch (RedisServerException ex) when (ex.Message.Contains("equal or smaller", StringComparison.Ordinal))
            {
                refused = true;
            }
            catch (Exception ex) when (CallStreamStore.IsFailure(ex))
            {
                failure ??= ex;
            }
        }

        if (failure is not null)
        {
            throw new StoreUnavailableException(failure);
        }

        if (refused)
        {
            _fenced = false;
            return WriteOutcome.Conflict;
        }

        try
        {
            return await _store.ReplicatedAsync(_audio) ? WriteOutcome.Appended : WriteOutcome.NotReplicated;
        }
        catch (Exception ex) when (CallStreamStore.IsFailure(ex))
        {
            return WriteOutcome.NotReplicated;
        }
    }

    private static bool AllAudio(IReadOnlyList<PendingEntry> entries, int count)
    {
        for (var e = 0; e < count; e++)
        {
            if (entries[e].Entry is not AudioEntry)
            {
                return false;
            }
        }

        return count > 0;
    }

    /// <summary>How long after its last script an activation may append bare (see the remarks): ids' ms part is the write time to within this.</summary>
    internal static readonly TimeSpan EpochLease = TimeSpan.FromSeconds(1);

    private static RedisValue AudioId(long ms, long frames) =>
        ms.ToString(CultureInfo.InvariantCulture) + "-" + frames.ToString(CultureInfo.InvariantCulture);

    private const int AudioFieldCount = 4;

    /// <summary>The fields of an audio entry (CONTRACT §7's <c>seq</c>, <c>ts</c>, <c>audio</c>, and our <c>i</c>), for the script and the bare XADD alike.</summary>
    private static NameValueEntry[] AudioFields(AudioEntry audio, CallCursor after) =>
        [new(Seq, audio.Seq), new(Ts, audio.TimestampMs), new(AudioField, audio.Audio), new(PositionField, Position(after))];

    /// <summary>The <c>i</c> field of an audio entry: the owner's gateway index, and the chunk after a colon when there is one.</summary>
    private static RedisValue Position(CallCursor after) => after.Sequence.Chunk is { } chunk
        ? after.Index.ToString(CultureInfo.InvariantCulture) + ":" + chunk.ToString(CultureInfo.InvariantCulture)
        : after.Index.ToString(CultureInfo.InvariantCulture);

    /// <summary>True when <paramref name="after"/> differs from <paramref name="written"/> only in the cursor's position fields (<see cref="CursorFields"/>).</summary>
    private static bool OnlyPositionChanged(CallCursor after, CallCursor written)
    {
        for (var i = 1; i < CursorFields.Length; i++)
        {
            if (!CursorFields[i].Position && CursorFields[i].Value(after) != CursorFields[i].Value(written))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// The cursor hash with the frames appended after its last scripted write applied: the stream's last entry gives the
    /// frame count (its id), the media sequence, the gateway index and the chunk.
    /// </summary>
    private async Task<CallCursor> EffectiveCursorAsync()
    {
        var hash = _db.HashGetAllAsync(_cursor);
        var tail = _db.StreamRangeAsync(_audio, "-", "+", 1, Order.Descending);
        var cursor = DecodeCursor(await hash);
        var last = await tail;
        _fenced = false;
        if (last.Length == 0)
        {
            _legacyIds = false;
            return cursor;
        }

        var entry = last[0];
        _legacyIds = entry[PositionField].IsNull;
        if (!TryFrameNumber(entry.Id, out var frames))
        {
            _legacyIds = true;
            return cursor;
        }

        if (_legacyIds || frames <= cursor.Frames)
        {
            return cursor;
        }

        long? seq = entry[Seq].TryParse(out long s) ? s : cursor.Sequence.MediaSeq;
        var position = entry[PositionField].ToString();
        var colon = position.IndexOf(':', StringComparison.Ordinal);
        var index = long.TryParse(colon < 0 ? position : position[..colon], NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) ? i : cursor.Index;
        long? chunk = colon >= 0 && long.TryParse(position[(colon + 1)..], NumberStyles.Integer, CultureInfo.InvariantCulture, out var c) ? c : cursor.Sequence.Chunk;
        return cursor with
        {
            Frames = frames,
            Index = Math.Max(index, cursor.Index),
            Sequence = cursor.Sequence with { MediaSeq = seq, Chunk = chunk },
        };
    }

    /// <summary>The frame number of an audio entry id <c>epoch-n</c>: its part after the dash.</summary>
    private static bool TryFrameNumber(RedisValue id, out long frames)
    {
        var text = id.ToString();
        var dash = text.IndexOf('-', StringComparison.Ordinal);
        frames = 0;
        return dash > 0 && long.TryParse(text.AsSpan(dash + 1), NumberStyles.Integer, CultureInfo.InvariantCulture, out frames);
    }

    /// <summary>
    /// Step two: copies what is due to <c>ingest:calls</c> (fenced, so it never appends an entry twice) and touches the
    /// call in the open set, or removes it from there once <paramref name="stopped"/> and copied through
    /// <paramref name="lastNumber"/>. Returns true when nothing is left to copy.
    /// </summary>
    public async Task<bool> CopyLifecycleAsync(bool stopped, long lastNumber)
    {
        var options = Options;
        try
        {
            for (var attempt = 0; attempt < 3; attempt++)
            {
                if (_copiedNumber < 0)
                {
                    var copied = await _db.StringGetAsync(_copied);
                    _copiedNumber = copied.TryParse(out long c) ? c : 0;
                }

                await CatchUpAsync();
                var size = CopyFixedArgs;
                foreach (var (_, pairs) in _uncopied)
                {
                    size += 2 + pairs.Length;
                }

                var args = new RedisValue[size];
                var a = 0;
                args[a++] = options.CallsStreamMaxLength;
                args[a++] = Math.Max(1, (long)options.StreamTtl.TotalSeconds);
                args[a++] = _streamId;
                args[a++] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                args[a++] = stopped ? Math.Max(1, lastNumber) : 0;
                args[a++] = _uncopied.Count;
                args[a++] = _keys.ListsExpire ? Math.Max(1, (long)options.StreamTtl.TotalSeconds) : 0;
                foreach (var (number, pairs) in _uncopied)
                {
                    args[a++] = number;
                    args[a++] = pairs.Length / 2;
                    pairs.CopyTo(args, a);
                    a += pairs.Length;
                }

                var result = (long)await EvalAsync(CopyScript, CopySha, _copyKeys, args);
                if (!await _store.ReplicatedAsync(_keys.CallsKey))
                {
                    // Appended on the master only: keep the entries; the fence makes the next attempt append nothing twice.
                    return false;
                }

                _copiedNumber = result;
                _uncopied.RemoveAll(u => u.Number <= result);
                if (_uncopied.Count == 0 || _uncopied[0].Number > result + 1)
                {
                    // A hole below what we hold (entries of a former activation): read them from the call's stream.
                    _catchUpTo = _uncopied.Count == 0 ? 0 : _uncopied[0].Number - 1;
                }

                if (!CopyDue)
                {
                    return true;
                }
            }

            return false;
        }
        catch (Exception ex) when (CallStreamStore.IsFailure(ex))
        {
            throw new StoreUnavailableException(ex);
        }
    }

    /// <summary>
    /// Runs a script by its SHA1; a node that does not have it (a restarted Redis, a cluster node not used yet) answers
    /// NOSCRIPT without running anything, and the script is then sent whole, which loads it there.
    /// </summary>
    private async Task<RedisResult> EvalAsync(string script, byte[] sha, RedisKey[] keys, RedisValue[] args)
    {
        try
        {
            return await _db.ScriptEvaluateAsync(sha, keys, args);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            return await _db.ScriptEvaluateAsync(script, keys, args);
        }
    }

    /// <summary>Takes the call off the open set (its keys are gone: nothing is left to copy or end).</summary>
    public async Task ForgetAsync()
    {
        try
        {
            await _db.SortedSetRemoveAsync(_keys.OpenKey, _streamId);
        }
        catch (Exception ex) when (CallStreamStore.IsFailure(ex))
        {
            throw new StoreUnavailableException(ex);
        }
    }

    /// <summary>Pushes the expiry of a quiet live call's keys forward (its gateway still calls; nothing to write).</summary>
    public async Task RefreshExpiryAsync(TimeSpan ttl)
    {
        try
        {
            await Task.WhenAll(
                _db.KeyExpireAsync(_audio, ttl),
                _db.KeyExpireAsync(_cursor, ttl),
                _db.KeyExpireAsync(_meta, ttl),
                _db.KeyExpireAsync(_lifecycle, ttl));
        }
        catch (Exception ex) when (CallStreamStore.IsFailure(ex))
        {
            throw new StoreUnavailableException(ex);
        }
    }

    private async Task CatchUpAsync()
    {
        if (_catchUpTo <= _copiedNumber)
        {
            _catchUpTo = 0;
            return;
        }

        var from = "0-" + (_copiedNumber + 1).ToString(CultureInfo.InvariantCulture);
        var to = "0-" + _catchUpTo.ToString(CultureInfo.InvariantCulture);
        var entries = await _db.StreamRangeAsync(_lifecycle, from, to);
        var found = new List<(long, RedisValue[])>(entries.Length);
        foreach (var entry in entries)
        {
            var id = entry.Id.ToString();
            var number = long.Parse(id.AsSpan(id.IndexOf('-') + 1), CultureInfo.InvariantCulture);
            var pairs = new RedisValue[entry.Values.Length * 2];
            for (var i = 0; i < entry.Values.Length; i++)
            {
                pairs[i * 2] = entry.Values[i].Name;
                pairs[(i * 2) + 1] = entry.Values[i].Value;
            }

            found.Add((number, pairs));
        }

        // Merge with what this activation holds (an attempt may be in both), in number order, each number once.
        found.AddRange(_uncopied);
        var merged = found.DistinctBy(u => u.Item1).OrderBy(u => u.Item1).ToList();
        _uncopied.Clear();
        _uncopied.AddRange(merged);
        _catchUpTo = 0;
    }

    /// <summary>The fields of a lifecycle entry of <c>ingest:calls</c> (CONTRACT §7), as name/value pairs.</summary>
    private RedisValue[] LifecycleFields(CallEntry entry)
    {
        var pairs = new List<RedisValue>(16);
        void Add(RedisValue name, RedisValue value)
        {
            pairs.Add(name);
            pairs.Add(value);
        }

        switch (entry)
        {
            case StartEntry s:
                Add(EventField, "start");
                Add(StreamIdField, _streamId);
                Add("protocol", s.Protocol);
                Add("encoding", s.Encoding);
                Add("sample_rate", s.SampleRate);
                Add("at", s.At);
                if (s.CallSid is { } callSid)
                {
                    Add("call_sid", callSid);
                }

                if (s.AccountSid is { } account)
                {
                    Add("account_sid", account);
                }

                if (s.From is { } from)
                {
                    Add("from", from);
                }

                if (s.To is { } to)
                {
                    Add("to", to);
                }

                if (s.Parameters.Count > 0)
                {
                    Add("parameters", JsonSerializer.Serialize(s.Parameters));
                }

                break;
            case StopEntry s:
                Add(EventField, "stop");
                Add(StreamIdField, _streamId);
                Add("reason", s.Reason);
                Add("frames", s.Frames);
                Add("gaps", s.Gaps);
                Add("missing", s.Missing);
                Add("at", s.At);
                if (!string.IsNullOrEmpty(s.CallSid))
                {
                    Add("call_sid", s.CallSid);
                }

                break;
            case DtmfEntry d:
                Add(EventField, "dtmf");
                Add(StreamIdField, _streamId);
                Add(Seq, d.Seq);
                Add(Ts, d.TimestampMs);
                Add("digit", d.Digit);
                Add("duration_ms", d.DurationMs?.ToString(CultureInfo.InvariantCulture) ?? string.Empty);
                break;
            case MarkEntry m:
                Add(EventField, "mark");
                Add(StreamIdField, _streamId);
                Add(Seq, m.Seq);
                Add(Ts, m.TimestampMs);
                Add("name", m.Name);
                break;
            case GapEntry g:
                Add(EventField, "gap");
                Add(StreamIdField, _streamId);
                Add("from_seq", g.FromSeq);
                Add("to_seq", g.ToSeq);
                Add("missing", g.Missing);
                Add("reason", g.Reason);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(entry), entry.GetType().Name, "not a lifecycle entry");
        }

        return [.. pairs];
    }

    /// <summary>The meta hash's fields written with the start and the stop (docs/CONSUMERS.md); null for other entries.</summary>
    private RedisValue[]? MetaFields(CallEntry entry) => entry switch
    {
        StartEntry s => s.CallSid is { } callSid
            ? [StreamIdField, _streamId, "protocol", s.Protocol, "encoding", s.Encoding, "sample_rate", s.SampleRate, "started_at", s.At, "call_sid", callSid]
            : [StreamIdField, _streamId, "protocol", s.Protocol, "encoding", s.Encoding, "sample_rate", s.SampleRate, "started_at", s.At],
        StopEntry s => ["stopped_at", s.At, "stop_reason", s.Reason, "frames", s.Frames, "gaps", s.Gaps, "missing", s.Missing],
        _ => null,
    };

    // The one list of what the cursor hash holds; "v" first (always written). Position: what a bare append may move
    // (the hash lags the stream by those, so every script writes them).
    private static readonly (RedisValue Name, Func<CallCursor, RedisValue> Value, bool Position)[] CursorFields =
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
        (Bytes("life"), c => c.Lifecycle, false),
        (Bytes("frames"), c => c.Frames, true),
        (Bytes("gaps"), c => c.Gaps, false),
        (Bytes("missing"), c => c.Missing, false),
        (Bytes("call_sid"), c => c.CallSid, false),
        (Bytes("protocol"), c => c.Protocol, false),
        (Bytes("started_at"), c => c.StartedAt, false),
    ];

    /// <summary>
    /// Name/value pairs of the fields whose value differs from <paramref name="previous"/>, and the version always: per
    /// frame that is a handful, written on the hot path, so nothing else is built.
    /// </summary>
    private static List<RedisValue> CursorChanges(CallCursor cursor, CallCursor previous)
    {
        var all = previous.Version == 0;
        var changed = new List<RedisValue>(all ? CursorFields.Length * 2 : 12) { CursorFields[0].Name, cursor.Version };
        for (var i = 1; i < CursorFields.Length; i++)
        {
            var value = CursorFields[i].Value(cursor);
            // The position fields always: the hash may lag the stream by appended frames (see the class remarks).
            if (all || CursorFields[i].Position || value != CursorFields[i].Value(previous))
            {
                changed.Add(CursorFields[i].Name);
                changed.Add(value);
            }
        }

        return changed;
    }

    private static CallCursor DecodeCursor(HashEntry[] entries)
    {
        if (entries.Length == 0)
        {
            return CallCursor.Empty;
        }

        var map = entries.ToDictionary(e => e.Name.ToString(), e => e.Value.ToString(), StringComparer.Ordinal);
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
            Lifecycle = Long(map, "life") ?? 0,
            Frames = Long(map, "frames") ?? 0,
            Gaps = Long(map, "gaps") ?? 0,
            Missing = Long(map, "missing") ?? 0,
            CallSid = map.GetValueOrDefault("call_sid") ?? string.Empty,
            Protocol = map.GetValueOrDefault("protocol") ?? string.Empty,
            StartedAt = Long(map, "started_at") ?? 0,
        };
    }

    private static RedisValue Bytes(string text) => System.Text.Encoding.UTF8.GetBytes(text);

    private static RedisKey KeyBytes(string text) => System.Text.Encoding.UTF8.GetBytes(text);

    private static long? Long(Dictionary<string, string> map, string key) =>
        map.TryGetValue(key, out var s) && long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;
}
