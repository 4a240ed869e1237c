using System.Globalization;
using StackExchange.Redis;

namespace Ingest.Grains.Publishing;

public enum WriteOutcome
{
    /// <summary>Written by the fenced batch script; the cursor in Redis is the caller's, one version on.</summary>
    Written,

    /// <summary>Audio frames appended on their own (no script); the cursor's version is unchanged.</summary>
    Appended,

    /// <summary>Redis holds a newer cursor than the caller: another activation wrote first. Reload and retry.</summary>
    Conflict,

    /// <summary>Written on the master, but fewer replicas than <see cref="IngestOptions.WaitReplicas"/> confirmed it in time.</summary>
    NotReplicated,
}

/// <summary>What one write did, and the lifecycle entries it wrote to the call's own keys (to be copied).</summary>
public readonly record struct WriteResult(WriteOutcome Outcome, List<LifecycleRecord>? Lifecycle);

/// <summary>What a new activation finds of its call: the cursor, and what is known of the copy to <c>ingest:calls</c>.</summary>
/// <param name="Copied">The call's copied number in <c>ingest:calls</c>' slot; null when that slot could not be read.</param>
/// <param name="Floor">The last copy the call's own keys recorded (<see cref="CallStreamWriter.SaveCopyFloorAsync"/>).</param>
public sealed record LoadedCall(CallCursor Cursor, long? Copied, CopyFloor Floor);

/// <summary>A copy known done: lifecycle entry <paramref name="Number"/> landed in <c>ingest:calls</c> as <paramref name="Id"/>.</summary>
public readonly record struct CopyFloor(long Number, string Id)
{
    public static readonly CopyFloor None = new(0, string.Empty);
}

/// <summary>What the copy script did (see <c>Scripts/copy.lua</c>).</summary>
public readonly record struct CopyResult(long Copied, string LastId, long Lost, long Hole, bool Replicated);

/// <summary>
/// The Redis side of one call, and nothing of the call's bookkeeping: it writes whole entries with the cursor they
/// lead to, reads the cursor back, and copies lifecycle entries to <c>ingest:calls</c>. The scripts are
/// <c>Scripts/batch.lua</c> and <c>Scripts/copy.lua</c>; the fields are <see cref="EntryFields"/> and <see cref="CursorCodec"/>.
/// </summary>
/// <remarks>
/// Audio entries carry explicit ids <c>epoch-n</c>: n the call's frame count once the entry is in (1, 2, ...), the epoch
/// a Unix time in milliseconds that each run of the batch script takes anew (above every id in the stream and above the
/// epoch the cursor records). For up to <see cref="EpochLease"/> after its own script an activation writes audio-only
/// batches as bare, pipelined <c>XADD</c>s with that epoch (<see cref="WriteOutcome.Appended"/>): Redis runs the script
/// for a fraction of the frames. Another activation's bare append carries an older epoch and is refused once a newer
/// script wrote audio; one that landed first makes the script refuse (the frame number is taken), and the caller
/// settles it from the stream. The cursor hash lags the stream by the appended frames; whoever loads the cursor applies
/// the stream's last entry to it.
/// </remarks>
public sealed class CallStreamWriter
{
    /// <summary>How long after its last script an activation may append bare: ids' ms part is the write time to within this.</summary>
    internal static readonly TimeSpan EpochLease = TimeSpan.FromSeconds(1);

    private const int BatchFixedArgs = 6;
    private const int CopyFixedArgs = 10;

    private static readonly RedisValue AudioTarget = CursorCodec.Bytes("a"), OutboundTarget = CursorCodec.Bytes("o"), LifecycleTarget = CursorCodec.Bytes("l"), LifecycleMetaTarget = CursorCodec.Bytes("L");

    private readonly CallStreamStore _store;
    private readonly IDatabase _db;
    private readonly TimeProvider _time;
    private readonly Keyspace _keys;
    private readonly RedisKey[] _batchKeys;
    private readonly RedisKey[] _copyKeys;
    private readonly RedisKey _audio;
    private readonly RedisKey _cursor;
    private readonly RedisKey _lifecycle;

    // This activation's script wrote since the cursor was last read: bare appends are fenced (see the remarks).
    private bool _fenced;
    private long _fencedFailures;
    private long _epoch;
    private long _epochAt;

    internal CallStreamWriter(CallStreamStore store, string streamId, Keyspace keys, IngestOptions options)
    {
        _store = store;
        _db = store.Database;
        _time = store.Time;
        StreamId = streamId;
        _keys = keys;
        Options = options;

        // Keys as bytes, encoded once per activation (a string key is encoded again on every command).
        _audio = KeyBytes(keys.Audio(streamId));
        _cursor = KeyBytes(keys.Cursor(streamId));
        _lifecycle = KeyBytes(keys.Lifecycle(streamId));
        _batchKeys = [_audio, _cursor, KeyBytes(keys.Meta(streamId)), _lifecycle, KeyBytes(keys.AudioOutbound(streamId))];
        _copyKeys = [keys.CallsKey, KeyBytes(keys.Copied(streamId)), keys.OpenKey];
    }

    public string StreamId { get; }

    /// <summary>The limits this call's keys are written with (a warm-up call's retention is seconds).</summary>
    public IngestOptions Options { get; }

    public TimeProvider Time => _time;

    public bool IsConnected => _store.IsConnected;

    /// <summary>The cursor, the copy floor the call's keys record, and (best effort) the copied number in <c>ingest:calls</c>' slot.</summary>
    public async Task<LoadedCall> LoadAsync()
    {
        var copied = Guard(() => _db.StringGetAsync(_copyKeys[1]));
        var (cursor, floor) = await ReadCoreAsync();
        long? copiedNumber;
        try
        {
            // That slot may be away while the call's own is not: the call goes on, numbering from what it knows.
            var value = await copied.WaitAsync(Options.WriteTimeout / 2, _time);
            copiedNumber = value.TryParse(out long c) ? c : 0;
        }
        catch (Exception ex) when (ex is StoreUnavailableException or TimeoutException)
        {
            copiedNumber = null;
        }

        return new LoadedCall(cursor, copiedNumber, floor);
    }

    /// <summary>
    /// The cursor Redis holds now, to settle a write that may or may not have landed. With
    /// <paramref name="confirmReplicated"/> (and <see cref="IngestOptions.WaitReplicas"/> &gt; 0) it also waits until the
    /// replicas hold what was read, so what is settled from it survives a failover.
    /// </summary>
    public async Task<CallCursor> ReadCursorAsync(bool confirmReplicated)
    {
        var (cursor, _) = await ReadCoreAsync();
        if (confirmReplicated && !await Guard(() => _store.ReplicatedAsync(_cursor)))
        {
            throw new StoreUnavailableException("the replicas of the call's Redis master did not confirm its writes in time");
        }

        return cursor;
    }

    /// <summary>
    /// Writes the first <paramref name="count"/> of <paramref name="entries"/> and <paramref name="cursorAfter"/>, if Redis
    /// still holds <paramref name="written"/>. <paramref name="ttlSeconds"/> &gt; 0 (re)sets the expiry of the call's keys.
    /// </summary>
    public async Task<WriteResult> WriteAsync(CallCursor written, IReadOnlyList<PendingEntry> entries, int count, CallCursor cursorAfter, long ttlSeconds)
    {
        if (_fenced && _store.ConnectionFailures != _fencedFailures)
        {
            // A connection was lost since the last script: the master may have restarted or failed over and lost
            // acknowledged bare appends, so the script reads the stream again and checks it holds every frame.
            _fenced = false;
        }

        if (ttlSeconds == 0 && _fenced && _time.GetElapsedTime(_epochAt) < EpochLease
            && AllInboundAudio(entries, count) && CursorCodec.OnlyPositionChanged(cursorAfter, written))
        {
            return new(await AppendAsync(entries, count), null);
        }

        var cursorFields = CursorCodec.Changes(cursorAfter with { Version = written.Version + 1 }, written);

        // Lifecycle entries (rare) are encoded first, to size the arguments; audio entries are 11 arguments each.
        var size = BatchFixedArgs + cursorFields.Count;
        List<LifecycleRecord>? lifecycle = null;
        RedisValue[]?[]? meta = null;
        for (var e = 0; e < count; e++)
        {
            var entry = entries[e];
            if (entry.Entry is AudioEntry)
            {
                size += 3 + (EntryFields.AudioFieldCount * 2);
                continue;
            }

            var record = new LifecycleRecord(entry.CursorAfter.Lifecycle, EntryFields.Lifecycle(StreamId, entry.Entry));
            (lifecycle ??= []).Add(record);
            meta ??= new RedisValue[]?[count];
            meta[e] = EntryFields.Meta(StreamId, entry.Entry);
            size += 3 + record.Fields.Length + (meta[e] is { } m ? 1 + m.Length : 0);
        }

        var args = new RedisValue[size];
        var a = 0;
        args[a++] = written.Version;
        args[a++] = ttlSeconds;
        args[a++] = cursorFields.Count / 2;
        args[a++] = count;

        // Fenced (this activation's last script wrote the version expected now): the script need not read the stream.
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        args[a++] = _fenced ? -Math.Max(now, _epoch + 1) : now;

        // The inbound frames the caller knows are in the stream (a stopped call's audio may have expired before its cursor).
        args[a++] = written.Stopped ? 0 : written.Frames;
        foreach (var value in cursorFields)
        {
            args[a++] = value;
        }

        // The inbound track's audio first (see the script), in order; then the outbound track's, in order; then the
        // lifecycle entries, in order. Each goes to its own stream, so only the order within each matters.
        foreach (var outbound in (ReadOnlySpan<bool>)[false, true])
        {
            for (var e = 0; e < count; e++)
            {
                if (entries[e].Entry is AudioEntry audio && audio.Outbound == outbound)
                {
                    var after = entries[e].CursorAfter;
                    args[a++] = outbound ? OutboundTarget : AudioTarget;
                    args[a++] = outbound ? after.FramesOutbound : after.Frames;
                    args[a++] = EntryFields.AudioFieldCount;
                    foreach (var field in EntryFields.Audio(audio, after))
                    {
                        args[a++] = field.Name;
                        args[a++] = field.Value;
                    }
                }
            }
        }

        var next = 0;
        for (var e = 0; e < count && lifecycle is not null; e++)
        {
            if (entries[e].Entry is AudioEntry)
            {
                continue;
            }

            var record = lifecycle[next++];
            var entryMeta = meta![e];
            args[a++] = entryMeta is null ? LifecycleTarget : LifecycleMetaTarget;
            args[a++] = "0-" + record.Number.ToString(CultureInfo.InvariantCulture);
            args[a++] = record.Fields.Length / 2;
            record.Fields.CopyTo(args, a);
            a += record.Fields.Length;
            if (entryMeta is not null)
            {
                args[a++] = entryMeta.Length / 2;
                entryMeta.CopyTo(args, a);
                a += entryMeta.Length;
            }
        }

        var failures = _store.ConnectionFailures;
        var result = await Guard(() => RedisScript.Batch.RunAsync(_db, _batchKeys, args));
        if ((long)result == 0)
        {
            _fenced = false;
            return new(WriteOutcome.Conflict, null);
        }

        _epoch = (long)result;
        _epochAt = _time.GetTimestamp();
        _fenced = true;
        _fencedFailures = failures;
        return new(await ReplicatedOrNotAsync(_cursor) ? WriteOutcome.Written : WriteOutcome.NotReplicated, lifecycle);
    }

    /// <summary>
    /// Copies <paramref name="entries"/> (numbered, in order) to <c>ingest:calls</c> after the call's copied number; see
    /// <c>Scripts/copy.lua</c> for <paramref name="floor"/>, <paramref name="goneBelow"/> and <paramref name="closeAt"/>.
    /// </summary>
    public async Task<CopyResult> CopyAsync(IReadOnlyList<LifecycleRecord> entries, CopyFloor floor, long goneBelow, long closeAt)
    {
        var size = CopyFixedArgs;
        foreach (var entry in entries)
        {
            size += 2 + entry.Fields.Length;
        }

        var ttl = Math.Max(1, (long)Options.StreamTtl.TotalSeconds);
        var args = new RedisValue[size];
        var a = 0;
        args[a++] = Options.CallsStreamMaxLength;
        args[a++] = ttl;
        args[a++] = StreamId;
        args[a++] = _time.GetUtcNow().ToUnixTimeMilliseconds();
        args[a++] = closeAt;
        args[a++] = _keys.ListsExpire ? ttl : 0;
        args[a++] = floor.Number;
        args[a++] = floor.Id;
        args[a++] = goneBelow;
        args[a++] = entries.Count;
        foreach (var entry in entries)
        {
            args[a++] = entry.Number;
            args[a++] = entry.Fields.Length / 2;
            entry.Fields.CopyTo(args, a);
            a += entry.Fields.Length;
        }

        var result = (RedisResult[])(await Guard(() => RedisScript.Copy.RunAsync(_db, _copyKeys, args)))!;
        var replicated = await ReplicatedOrNotAsync(_keys.CallsKey);
        return new CopyResult((long)result[0], result[1].ToString() ?? string.Empty, (long)result[2], (long)result[3], replicated);
    }

    /// <summary>Lifecycle entries <paramref name="from"/>..<paramref name="to"/> as the call's own keys hold them.</summary>
    public async Task<List<LifecycleRecord>> ReadLifecycleAsync(long from, long to)
    {
        var entries = await Guard(() => _db.StreamRangeAsync(
            _lifecycle, "0-" + from.ToString(CultureInfo.InvariantCulture), "0-" + to.ToString(CultureInfo.InvariantCulture)));
        var found = new List<LifecycleRecord>(entries.Length);
        foreach (var entry in entries)
        {
            var id = entry.Id.ToString();
            var pairs = new RedisValue[entry.Values.Length * 2];
            for (var i = 0; i < entry.Values.Length; i++)
            {
                pairs[i * 2] = entry.Values[i].Name;
                pairs[(i * 2) + 1] = entry.Values[i].Value;
            }

            found.Add(new LifecycleRecord(long.Parse(id.AsSpan(id.IndexOf('-') + 1), CultureInfo.InvariantCulture), pairs));
        }

        return found;
    }

    /// <summary>Records in the call's own keys the last copy known done: after a rollback of <c>ingest:calls</c> it tells what that lacks.</summary>
    public Task SaveCopyFloorAsync(CopyFloor floor) => Guard(() => _db.HashSetAsync(
        _cursor, [new(CursorCodec.FloorNumberField, floor.Number), new(CursorCodec.FloorIdField, floor.Id)]));

    /// <summary>Sets the expiry of the call's own keys (a quiet live call, or one whose lifecycle copy waits).</summary>
    public Task RefreshExpiryAsync(TimeSpan ttl) => Guard(() => Task.WhenAll(
        _batchKeys.Select(key => _db.KeyExpireAsync(key, ttl))));

    /// <summary>Keeps the cursor and the lifecycle entries of a stopped call whose copy waits, for the sweeper to finish it.</summary>
    public Task ParkAsync(TimeSpan keep) => Guard(() => Task.WhenAll(_db.KeyExpireAsync(_cursor, keep), _db.KeyExpireAsync(_lifecycle, keep)));

    /// <summary>Takes the call off the open set (its keys are gone: nothing is left to copy or end).</summary>
    public Task ForgetAsync() => Guard(() => _db.SortedSetRemoveAsync(_keys.OpenKey, StreamId));

    /// <summary>
    /// The common batch without the script: audio frames only, each a bare XADD with its explicit id, pipelined. A refused
    /// one (the stream's last id is at or above it: another activation's script wrote since) is a conflict.
    /// </summary>
    private async Task<WriteOutcome> AppendAsync(IReadOnlyList<PendingEntry> entries, int count)
    {
        var adds = new Task<RedisValue>[count];
        for (var e = 0; e < count; e++)
        {
            var after = entries[e].CursorAfter;
            adds[e] = _db.StreamAddAsync(_audio, EntryFields.Audio((AudioEntry)entries[e].Entry, after), AudioId(_epoch, after.Frames));
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

        return await ReplicatedOrNotAsync(_audio) ? WriteOutcome.Appended : WriteOutcome.NotReplicated;
    }

    /// <summary>The cursor hash with the frames appended after its last scripted write applied (the stream's last entry).</summary>
    private async Task<(CallCursor Cursor, CopyFloor Floor)> ReadCoreAsync()
    {
        var hash = Guard(() => _db.HashGetAllAsync(_cursor));
        var tail = Guard(() => _db.StreamRangeAsync(_audio, "-", "+", 1, Order.Descending));
        var map = CursorCodec.Map(await hash);
        var last = await tail;
        _fenced = false;
        var cursor = CursorCodec.Decode(map);
        var floor = new CopyFloor(CursorCodec.Long(map, CursorCodec.FloorNumberField) ?? 0, map.GetValueOrDefault(CursorCodec.FloorIdField) ?? string.Empty);
        // The stream's last entry numbers the frames it holds: more than the hash says (bare appends since its last
        // script), or fewer (its newest entries were deleted): either way the stream, not the hash, is what was written.
        if (last.Length == 0 || !TryFrameNumber(last[0].Id, out var frames) || frames == cursor.Frames)
        {
            return (cursor, floor);
        }

        var entry = last[0];
        long? seq = entry[EntryFields.SeqName].TryParse(out long s) ? s : cursor.Sequence.MediaSeq;
        var position = entry[EntryFields.PositionName].ToString();
        var colon = position.IndexOf(':', StringComparison.Ordinal);
        var index = long.TryParse(colon < 0 ? position : position[..colon], NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) ? i : cursor.Index;
        long? chunk = colon >= 0 && long.TryParse(position[(colon + 1)..], NumberStyles.Integer, CultureInfo.InvariantCulture, out var c) ? c : cursor.Sequence.Chunk;
        return (cursor with
        {
            Frames = frames,
            Index = Math.Max(index, cursor.Index),
            Sequence = cursor.Sequence with { MediaSeq = seq, Chunk = chunk },
        }, floor);
    }

    private async Task<bool> ReplicatedOrNotAsync(RedisKey key)
    {
        try
        {
            return await _store.ReplicatedAsync(key);
        }
        catch (Exception ex) when (CallStreamStore.IsFailure(ex))
        {
            return false;
        }
    }

    /// <summary>Runs a Redis command; the client's failures become <see cref="StoreUnavailableException"/>.</summary>
    private static async Task<T> Guard<T>(Func<Task<T>> command)
    {
        try
        {
            return await command();
        }
        catch (Exception ex) when (CallStreamStore.IsFailure(ex))
        {
            throw new StoreUnavailableException(ex);
        }
    }

    private static async Task Guard(Func<Task> command)
    {
        try
        {
            await command();
        }
        catch (Exception ex) when (CallStreamStore.IsFailure(ex))
        {
            throw new StoreUnavailableException(ex);
        }
    }

    /// <summary>Only the inbound track's audio: the outbound track is written by the script alone, so its cursor never lags.</summary>
    private static bool AllInboundAudio(IReadOnlyList<PendingEntry> entries, int count)
    {
        for (var e = 0; e < count; e++)
        {
            if (entries[e].Entry is not AudioEntry { Outbound: false })
            {
                return false;
            }
        }

        return count > 0;
    }

    /// <summary>The frame number of an audio entry id <c>epoch-n</c>: its part after the dash.</summary>
    private static bool TryFrameNumber(RedisValue id, out long frames)
    {
        var text = id.ToString();
        var dash = text.IndexOf('-', StringComparison.Ordinal);
        frames = 0;
        return dash > 0 && long.TryParse(text.AsSpan(dash + 1), NumberStyles.Integer, CultureInfo.InvariantCulture, out frames);
    }

    private static RedisValue AudioId(long ms, long frames) =>
        ms.ToString(CultureInfo.InvariantCulture) + "-" + frames.ToString(CultureInfo.InvariantCulture);

    private static RedisKey KeyBytes(string text) => System.Text.Encoding.UTF8.GetBytes(text);
}
