using System.Collections.Concurrent;
using System.Globalization;
using Ingest.Grains.Interfaces;
using StackExchange.Redis;

namespace Ingest.SampleWorker;

/// <summary>
/// Claims calls through a consumer group on <c>ingest:calls</c> (one pending start entry = one call owned by this
/// consumer), processes each claimed call's audio from its start or from its checkpoint, and acknowledges the start
/// entry only when the call is finished. A worker that dies leaves its start entries pending; another worker of the
/// group takes them over with XAUTOCLAIM once they have been idle for <see cref="WorkerOptions.ClaimIdleMs"/>, and
/// continues from the checkpoint. Every chunk and its checkpoint are written in one script fenced by the chunk count,
/// so nothing is emitted twice even if two workers briefly both think they own a call. A two-track Exotel call
/// (CONTRACT §7: <c>ingest:audio:{id}:outbound</c>) is two tracks processed side by side, each with its own chunks
/// (<c>samples:chunks:{id}:outbound</c>) and checkpoint; the call is finished when both are.
/// </summary>
public sealed class CallWorker(IDatabase db, WorkerOptions options)
{
    public const string Calls = StreamKeys.Calls;

    // KEYS: chunks stream, checkpoint hash. ARGV: expected chunk index, audio, gap_seqs, final (0/1), worker,
    // last_id, offset, last_seq, checkpoint TTL seconds.
    private const string EmitScript = """
        local n = tonumber(redis.call('HGET', KEYS[2], 'chunks_emitted') or '0')
        if n ~= tonumber(ARGV[1]) then return 0 end
        redis.call('XADD', KEYS[1], '*', 'index', ARGV[1], 'audio', ARGV[2], 'gap_seqs', ARGV[3], 'final', ARGV[4], 'worker', ARGV[5])
        redis.call('HSET', KEYS[2], 'chunks_emitted', n + 1, 'last_id', ARGV[6], 'offset', ARGV[7], 'last_seq', ARGV[8], 'done', ARGV[4], 'worker', ARGV[5])
        redis.call('EXPIRE', KEYS[1], ARGV[9])
        redis.call('EXPIRE', KEYS[2], ARGV[9])
        return 1
        """;

    private readonly ConcurrentDictionary<string, Task> _calls = new();
    private RedisValue _autoClaimCursor = "0-0";

    /// <summary>The key suffix of the outbound track, on the audio stream and on this worker's own keys.</summary>
    public const string Outbound = StreamKeys.OutboundSuffix;

    public static string AudioKey(string id, string track = "") => StreamKeys.Audio(id) + track;

    public static string MetaKey(string id) => StreamKeys.Meta(id);

    /// <summary>The worker's own checkpoint (not a platform key): chunks_emitted, last_id, offset, last_seq, done.</summary>
    public static string CheckpointKey(string id, string track = "") => "ingest:worker:{" + id + "}" + track;

    public static string ChunksKey(string id, string track = "") => "samples:chunks:{" + id + "}" + track;

    public async Task RunAsync(CancellationToken ct)
    {
        try
        {
            // From 0, not $: a group created while calls are live must still see their start entries.
            await db.StreamCreateConsumerGroupAsync(Calls, options.Group, "0", createStream: true);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal))
        {
        }

        Log.Write(options.Name, $"started: group {options.Group}, claim idle {options.ClaimIdleMs} ms");
        while (!ct.IsCancellationRequested)
        {
            var busy = await TakeOverAsync(ct);
            var room = options.MaxCalls - _calls.Count;
            if (room > 0)
            {
                var entries = await db.StreamReadGroupAsync(Calls, options.Group, options.Name, ">", count: Math.Min(room, 50));
                foreach (var entry in entries)
                {
                    await HandleAsync(entry, takeover: false, ct);
                }

                busy |= entries.Length > 0;
            }

            if (!busy)
            {
                await Task.Delay(options.PollMs * 2, ct);
            }
        }

        await Task.WhenAll(_calls.Values);
    }

    /// <summary>XAUTOCLAIM: start entries a dead worker left pending for longer than the claim idle time become ours.</summary>
    private async Task<bool> TakeOverAsync(CancellationToken ct)
    {
        var room = options.MaxCalls - _calls.Count;
        if (room <= 0)
        {
            return false;
        }

        var result = await db.StreamAutoClaimAsync(Calls, options.Group, options.Name, options.ClaimIdleMs, _autoClaimCursor, Math.Min(room, 50));
        _autoClaimCursor = result.NextStartId;
        foreach (var entry in result.ClaimedEntries)
        {
            await HandleAsync(entry, takeover: true, ct);
        }

        return result.ClaimedEntries.Length > 0;
    }

    private async Task HandleAsync(StreamEntry entry, bool takeover, CancellationToken ct)
    {
        if (entry.IsNull)
        {
            return;
        }

        var streamId = (string?)entry["stream_id"];
        if (entry["event"] != "start" || streamId is null)
        {
            // Not a call to claim (stop/gap/dtmf/mark entries go to whichever worker reads them): acknowledge it so
            // it does not stay pending. The worker that owns the call learns the end from the meta hash.
            await db.StreamAcknowledgeAsync(Calls, options.Group, entry.Id);
            return;
        }

        if (_calls.ContainsKey(streamId))
        {
            return;
        }

        Log.Write(options.Name, (takeover ? "took over " : "claimed ") + streamId);
        _calls[streamId] = Task.Run(
            async () =>
            {
                try
                {
                    await ProcessCallAsync(entry, streamId, ct);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    // Left pending: this worker or another takes it over after the claim idle time.
                    Log.Write(options.Name, $"{streamId}: {ex.GetType().Name}: {ex.Message}; left for takeover");
                }
                catch (Exception ex) when (ex is InvalidCastException or FormatException or OverflowException or ArgumentException)
                {
                    // Data this worker cannot read would fail every worker that takes it over, forever: given up, said once.
                    Log.Write(options.Name, $"{streamId}: cannot process ({ex.GetType().Name}: {ex.Message}); acknowledged, not retried");
                    await db.StreamAcknowledgeAsync(Calls, options.Group, entry.Id);
                }
                finally
                {
                    _calls.TryRemove(streamId, out _);
                }
            },
            CancellationToken.None);
    }

    private async Task ProcessCallAsync(StreamEntry start, string streamId, CancellationToken ct)
    {
        var meta = (await db.HashGetAllAsync(MetaKey(streamId))).ToDictionary(e => e.Name.ToString(), e => e.Value);
        var rateValue = meta.GetValueOrDefault("sample_rate", start["sample_rate"]);
        if (!rateValue.TryParse(out int rate) || rate is < 8000 or > 48000)
        {
            Log.Write(options.Name, $"{streamId}: sample_rate '{rateValue}' is not one the platform writes; reading it as 8000 Hz");
            rate = 8000;
        }

        var chunkBytes = rate * 2 / 2; // PCM16 mono: 2 bytes a sample, 500 ms.

        // The claim is kept alive on its own timer, not between reads: catching up a backlog must not make a live call
        // look abandoned to the other workers.
        var claim = new Claim();
        using var stopKeepAlive = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var keepAlive = KeepAliveAsync(start.Id, streamId, claim, stopKeepAlive.Token);
        try
        {
            var done = await Task.WhenAll(
                ProcessTrackAsync(new CallState(streamId, "", chunkBytes, claim), ct),
                ProcessTrackAsync(new CallState(streamId, Outbound, chunkBytes, claim), ct));
            if (done.All(d => d))
            {
                await db.StreamAcknowledgeAsync(Calls, options.Group, start.Id);
            }
        }
        finally
        {
            await stopKeepAlive.CancelAsync();
            await keepAlive;
        }
    }

    /// <summary>One track of the call, from its checkpoint to the call's end; true when the track is finished.</summary>
    private async Task<bool> ProcessTrackAsync(CallState state, CancellationToken ct)
    {
        var streamId = state.StreamId;
        var checkpoint = (await db.HashGetAllAsync(CheckpointKey(streamId, state.Track))).ToDictionary(e => e.Name.ToString(), e => e.Value);
        if (checkpoint.GetValueOrDefault("done") == "1")
        {
            return true;
        }

        state.Chunks = (long)checkpoint.GetValueOrDefault("chunks_emitted", 0);
        state.LastSeq = (long)checkpoint.GetValueOrDefault("last_seq", 0);
        RedisValue position = "0-0";
        if (checkpoint.TryGetValue("last_id", out var lastId))
        {
            // Resume inside the entry the last chunk ended in: its first `offset` bytes are in chunks already.
            var offset = (int)checkpoint["offset"];
            var at = await db.StreamRangeAsync(AudioKey(streamId, state.Track), lastId, lastId, 1);
            if (at.Length == 1 && !await ConsumeAsync(state, at[0], offset))
            {
                return false;
            }

            position = lastId;
            Log.Write(options.Name, $"{streamId}{state.Track}: resuming at chunk {state.Chunks} (entry {lastId}, byte {offset})");
        }

        return await ReadTrackAsync(state, position, ct);
    }

    private async Task<bool> ReadTrackAsync(CallState state, RedisValue position, CancellationToken ct)
    {
        var streamId = state.StreamId;
        var audioKey = AudioKey(streamId, state.Track);
        while (!ct.IsCancellationRequested && !state.Claim.Lost)
        {
            var entries = await db.StreamReadAsync(audioKey, position, count: 100);
            foreach (var entry in entries)
            {
                if (state.Claim.Lost || !await ConsumeAsync(state, entry, 0))
                {
                    return false;
                }

                position = entry.Id;
                state.Seen = true;
            }

            if (entries.Length > 0)
            {
                continue;
            }

            // Nothing new. The stop (and the meta hash's stopped_at) is written in the same script as, or after,
            // the call's last audio: once it is there, what was just read to the end is the whole call.
            var ended = await db.HashGetAsync(MetaKey(streamId), ["stopped_at", "stop_reason"]);
            if (!ended[0].IsNull)
            {
                var rest = await db.StreamReadAsync(audioKey, position, count: 100);
                if (rest.Length > 0)
                {
                    continue;
                }

                if (state.Track == Outbound && !state.Seen && state.Chunks == 0)
                {
                    // A one-track call: there is no outbound track to emit.
                    return true;
                }

                if (await EmitAsync(state, final: true))
                {
                    Log.Write(options.Name, $"{streamId}{state.Track}: ended ({ended[1]}), {state.Chunks} chunks");
                    return true;
                }

                return false;
            }

            if (!await db.KeyExistsAsync(MetaKey(streamId)) && !await db.KeyExistsAsync(audioKey))
            {
                // Past retention (CONTRACT §8), or a track the call never had: nothing left to read.
                if (state.Track == "" || state.Seen)
                {
                    Log.Write(options.Name, $"{streamId}{state.Track}: expired before it was processed; dropped");
                }

                return true;
            }

            await Task.Delay(options.PollMs, ct);
        }

        return false;
    }

    /// <summary>Adds one audio entry (from byte <paramref name="skip"/>) to the call; emits every whole chunk.</summary>
    private async Task<bool> ConsumeAsync(CallState state, StreamEntry entry, int skip)
    {
        byte[]? audio = entry["audio"]; // bytes, never a string: audio is not UTF-8
        if (!entry["seq"].TryParse(out long seq) || audio is null)
        {
            // Not an entry the platform writes (CONTRACT §7): said once and passed over, never retried forever.
            Log.Write(options.Name, $"{state.StreamId}{state.Track}: entry {entry.Id} has no integer seq or no audio; skipped");
            state.EndId = entry.Id;
            state.EndOffset = 0;
            return true;
        }

        if (skip == 0 && state.LastSeq > 0 && seq > state.LastSeq + 1)
        {
            // Marked, not filled: the chunk says how many sequence numbers are missing before its audio (for Exotel
            // these include dtmf/mark numbers; the exact gaps are the gap entries in ingest:calls).
            state.GapSeqs += seq - state.LastSeq - 1;
        }

        state.LastSeq = seq;
        var pos = skip;
        while (pos < audio.Length)
        {
            var take = Math.Min(state.ChunkBytes - (int)state.Buffer.Length, audio.Length - pos);
            state.Buffer.Write(audio, pos, take);
            pos += take;
            if (state.Buffer.Length == state.ChunkBytes)
            {
                state.EndId = entry.Id;
                state.EndOffset = pos;
                if (!await EmitAsync(state, final: false))
                {
                    return false;
                }
            }
        }

        state.EndId = entry.Id;
        state.EndOffset = audio.Length;
        return true;
    }

    private async Task<bool> EmitAsync(CallState state, bool final)
    {
        var result = await db.ScriptEvaluateAsync(
            EmitScript,
            [ChunksKey(state.StreamId, state.Track), CheckpointKey(state.StreamId, state.Track)],
            [
                state.Chunks,
                state.Buffer.ToArray(),
                state.GapSeqs,
                final ? 1 : 0,
                options.Name,
                state.EndId,
                state.EndOffset,
                state.LastSeq,
                options.CheckpointTtlSeconds,
            ]);
        if ((int)result != 1)
        {
            Log.Write(options.Name, $"{state.StreamId}{state.Track}: chunk {state.Chunks} already written by another worker; letting go");
            return false;
        }

        state.Chunks++;
        state.GapSeqs = 0;
        state.Buffer.SetLength(0);
        return true;
    }

    private async Task KeepAliveAsync(RedisValue entryId, string streamId, Claim claim, CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await Task.Delay(options.ClaimIdleMs / 3, ct);
                if (!await KeepClaimAsync(entryId))
                {
                    Log.Write(options.Name, $"{streamId}: claimed by another worker; letting go");
                    claim.Lost = true;
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // Cannot prove the claim is still ours: stop; the fence keeps the output exact either way.
            claim.Lost = true;
        }
    }

    /// <summary>Resets the idle time of our pending start entry, so a live call is not taken over; false if another worker has it.</summary>
    /// <remarks>
    /// Checked and claimed in one script: checked first and claimed after, another worker's takeover in between was
    /// taken back, and two workers then emitted the same call.
    /// </remarks>
    private async Task<bool> KeepClaimAsync(RedisValue entryId) =>
        (int)await db.ScriptEvaluateAsync(KeepClaimScript, [Calls], [options.Group, options.Name, entryId]) == 1;

    private const string KeepClaimScript = """
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
        if #pending == 0 or pending[1][2] ~= ARGV[2] then return 0 end
        redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
        return 1
        """;

    /// <summary>Whether this worker still holds the call's claim (shared by its tracks).</summary>
    private sealed class Claim
    {
        /// <summary>Set by the keep-alive when another worker has taken the call over.</summary>
        public volatile bool Lost;
    }

    /// <summary>One track of a claimed call: "" the inbound (or only) track, <see cref="Outbound"/> the other.</summary>
    private sealed class CallState(string streamId, string track, int chunkBytes, Claim claim)
    {
        public string StreamId { get; } = streamId;

        public string Track { get; } = track;

        public Claim Claim { get; } = claim;

        /// <summary>At least one entry of this track was read.</summary>
        public bool Seen { get; set; }

        public int ChunkBytes { get; } = chunkBytes;

        public MemoryStream Buffer { get; } = new();

        public long Chunks { get; set; }

        public long LastSeq { get; set; }

        public long GapSeqs { get; set; }

        public RedisValue EndId { get; set; } = "0-0";

        public int EndOffset { get; set; }
    }
}
