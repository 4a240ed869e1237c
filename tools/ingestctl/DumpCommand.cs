using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ingest.Grains.Interfaces;
using StackExchange.Redis;

namespace Ingest.Ctl;

/// <summary>A landed stream back to a WAV: its audio entries in order, each gap entry filled with silence, plus a JSON sidecar.</summary>
internal static class DumpCommand
{
    private const int Page = 1000;

    public static Command Build()
    {
        var id = new Argument<string>("stream_id") { Description = "the stream id (Exotel stream_sid, native stream_id)" };
        var redis = Common.RedisOption();
        var output = new Option<string?>("--output", "-o") { Description = "the WAV to write (default <stream_id>.wav); the sidecar is <output>.json" };
        var rate = Common.OptionalInt("--rate", "sample rate to assume when the stream's start entry is gone (trimmed)", 8000, 48_000);
        var command = new Command("dump", "Write a landed stream (ingest:audio:{id} + its ingest:calls entries) to a WAV at its own rate, gaps as silence, and a JSON sidecar")
        {
            id, redis, output, rate,
        };
        command.SetAction(async (p, ct) =>
        {
            var streamId = p.GetValue(id)!;
            var path = p.GetValue(output) ?? streamId + ".wav";
            using var mux = await Common.ConnectRedisAsync(p.GetValue(redis)!);
            var db = mux.GetDatabase();

            RedisKey key = Common.AudioKey(streamId);
            // A stream written before the keys carried their hash tag (ingest:audio:<id>, no braces) is still dumped.
            if (!await db.KeyExistsAsync(key) && await db.KeyExistsAsync("ingest:audio:" + streamId))
            {
                key = "ingest:audio:" + streamId;
            }

            var audio = await ReadAllAsync(db, key, null, "audio", ct);
            var lifecycle = await ReadAllAsync(db, StreamKeys.Calls, e => e["stream_id"] == streamId, "lifecycle", ct);
            Common.ProgressDone();
            if (audio.Count == 0 && lifecycle.Count == 0)
            {
                throw new CtlException($"nothing in Redis for stream '{streamId}' ({key} is empty or expired; keys live INGEST_AUDIO_TTL_SECONDS after stop)");
            }

            var start = lifecycle.FirstOrDefault(e => e.Fields.GetValueOrDefault("event") == "start");
            int sampleRate;
            if (start is not null && int.TryParse(start.Fields.GetValueOrDefault("sample_rate"), NumberStyles.None, CultureInfo.InvariantCulture, out var r))
            {
                sampleRate = r;
            }
            else
            {
                sampleRate = p.GetValue(rate) ?? 8000;
                await Console.Error.WriteLineAsync($"ingestctl: warning: no start entry for '{streamId}' in ingest:calls; writing at {sampleRate} Hz");
            }

            // A call with an outbound track (CONTRACT §7: ingest:audio:{id}:outbound) dumps as two channels: caller, agent.
            var outboundKey = (RedisKey)(key.ToString() + ":outbound");
            var outboundAudio = await db.KeyExistsAsync(outboundKey) ? await ReadAllAsync(db, outboundKey, null, "outbound audio", ct) : [];
            Common.ProgressDone();
            var allGaps = lifecycle.Where(e => e.Fields.GetValueOrDefault("event") == "gap").ToList();
            var inbound = BuildTrack(audio, allGaps.Where(e => e.Fields.GetValueOrDefault("track") is null or "inbound"), sampleRate);
            var outbound = outboundAudio.Count > 0 ? BuildTrack(outboundAudio, allGaps.Where(e => e.Fields.GetValueOrDefault("track") == "outbound"), sampleRate) : null;
            if (outbound is null)
            {
                Wav.Write(path, sampleRate, inbound.Pcm);
            }
            else
            {
                Wav.WriteStereo(path, sampleRate, inbound.Pcm, outbound.Pcm);
            }

            var samplesWritten = Math.Max(inbound.Pcm.Length, outbound?.Pcm.Length ?? 0) / 2;
            object Describe(Track t) => t.Gaps.Select(g => new { id = g.Id, track = g.TrackName, from_seq = g.FromSeq, to_seq = g.ToSeq, from_chunk = g.FromChunk, to_chunk = g.ToChunk, missing = g.Missing, reason = g.Reason, at_sample = g.AtSample, silence_samples = g.SilenceSamples });
            var sidecar = new
            {
                stream_id = streamId,
                key = key.ToString(),
                sample_rate = sampleRate,
                channels = outbound is null ? 1 : 2,
                frames = inbound.Frames,
                frames_outbound = outbound?.Frames,
                frame_bytes = inbound.FrameBytes,
                audio_bytes = inbound.AudioBytes + (outbound?.AudioBytes ?? 0),
                samples = samplesWritten,
                duration_seconds = Math.Round(samplesWritten / (double)sampleRate, 3),
                gaps = Describe(inbound),
                gaps_outbound = outbound is null ? null : Describe(outbound),
                lifecycle = lifecycle.Select(e => new Dictionary<string, string?>(e.Fields) { ["id"] = e.Id }),
            };
            await File.WriteAllTextAsync(path + ".json", JsonSerializer.Serialize(sidecar, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }), ct);

            var stop = lifecycle.LastOrDefault(e => e.Fields.GetValueOrDefault("event") == "stop");
            var tracks = outbound is null ? "" : $" (caller), {outbound.Frames} frames (agent), two channels";
            Console.WriteLine($"{path}: {inbound.Frames} frames{tracks}, {samplesWritten / (double)sampleRate:F2} s at {sampleRate} Hz, {inbound.Gaps.Count + (outbound?.Gaps.Count ?? 0)} gap(s){(stop is null ? ", no stop yet (live or cut off)" : $", stopped: {stop.Fields.GetValueOrDefault("reason")}")}");
            foreach (var g in inbound.Gaps.Concat(outbound?.Gaps ?? []))
            {
                var where = g.FromChunk is { } fc ? $"chunk {fc}-{g.ToChunk}" : $"seq {g.FromSeq}-{g.ToSeq}";
                Console.WriteLine($"  gap{(g.TrackName is { } tn ? " " + tn : "")} {where}: {g.Missing} missing ({g.Reason}), {g.SilenceSamples} samples of silence at {g.AtSample / (double)sampleRate:F2} s");
            }

            Console.WriteLine($"{path}.json: {lifecycle.Count} lifecycle entries and the gaps");
            return Program.Ok;
        });
        return command;
    }

    /// <summary>A gap entry of one track, and where its silence went.</summary>
    private sealed class Gap(string id, string? track, long fromSeq, long toSeq, long? fromChunk, long? toChunk, long missing, string reason)
    {
        public string Id { get; } = id;

        public string? TrackName { get; } = track;

        public long FromSeq { get; } = fromSeq;

        public long ToSeq { get; } = toSeq;

        public long? FromChunk { get; } = fromChunk;

        public long? ToChunk { get; } = toChunk;

        public long Missing { get; } = missing;

        public string Reason { get; } = reason;

        /// <summary>Where it falls among the track's frames: its first chunk when judged by chunk, else its first sequence number.</summary>
        public long Position => FromChunk ?? FromSeq;

        /// <summary>Its silence goes before the frame numbered <paramref name="seq"/> (chunk <paramref name="chunk"/>, null: unknown, so before).</summary>
        public bool ComesBefore(long seq, long? chunk) => FromChunk is { } from ? from < (chunk ?? long.MaxValue) : FromSeq < seq;

        public long AtSample { get; set; }

        public long SilenceSamples { get; set; }
    }

    private sealed record Track(byte[] Pcm, int Frames, int FrameBytes, long AudioBytes, List<Gap> Gaps);

    /// <summary>
    /// One track's frames in order, each gap filled with its frames' worth of silence where it falls: by sequence number,
    /// or by chunk for a gap judged by chunk (the frame's chunk is in its <c>i</c> field, after the colon).
    /// </summary>
    private static Track BuildTrack(List<Entry> audio, IEnumerable<Entry> gapEntries, int sampleRate)
    {
        var frames = audio.Select(e => (Seq: long.Parse(e.Fields["seq"]!, CultureInfo.InvariantCulture), Chunk: ChunkOf(e.Fields.GetValueOrDefault("i")), Audio: (byte[])e.Raw["audio"]!)).ToList();
        var frameBytes = frames.Count == 0 ? sampleRate / 10 * 2 : Median(frames.Select(f => f.Audio.Length));
        frameBytes -= frameBytes & 1;
        var gaps = gapEntries
            .Select(e =>
            {
                var from = Long(e.Fields.GetValueOrDefault("from_seq"));
                var to = Long(e.Fields.GetValueOrDefault("to_seq"));
                var fromChunk = Long(e.Fields.GetValueOrDefault("from_chunk"));
                var toChunk = Long(e.Fields.GetValueOrDefault("to_chunk"));
                var missing = Long(e.Fields.GetValueOrDefault("missing")) ?? (from is { } f && to is { } t ? t - f + 1 : 0);
                return new Gap(e.Id, e.Fields.GetValueOrDefault("track"), from ?? 0, to ?? from ?? 0, fromChunk, toChunk ?? fromChunk, missing, e.Fields.GetValueOrDefault("reason") ?? "");
            })
            .OrderBy(g => g.Position)
            .ToList();

        // A gap entry is text in Redis: its "missing" is believed only up to what the longest call can hold, and the
        // silence is written from one small buffer, so a hostile or corrupt entry cannot make the dump allocate gigabytes.
        var longestGap = MaxGapSeconds * (long)sampleRate * 2 / Math.Max(2, frameBytes);
        var silenceLeft = longestGap;
        var zeros = new byte[64 * 1024];
        using var pcm = new MemoryStream();
        var gapIndex = 0;
        void FillUpTo(long seq, long? chunk)
        {
            while (gapIndex < gaps.Count && gaps[gapIndex].ComesBefore(seq, chunk))
            {
                var g = gaps[gapIndex++];
                g.AtSample = pcm.Length / 2;
                var frames = Math.Clamp(g.Missing, 0, silenceLeft);
                silenceLeft -= frames;
                if (frames != g.Missing)
                {
                    Console.Error.WriteLine(DumpInvariant($"ingestctl: warning: gap entry {g.Id} claims {g.Missing} missing frames; written as {frames} (a track's gaps add up to at most {MaxGapSeconds / 3600} h of silence, the longest call)"));
                }

                g.SilenceSamples = frames * frameBytes / 2;
                for (var left = frames * frameBytes; left > 0; left -= zeros.Length)
                {
                    pcm.Write(zeros, 0, (int)Math.Min(left, zeros.Length));
                }
            }
        }

        foreach (var (seq, chunk, bytes) in frames)
        {
            FillUpTo(seq, chunk);
            pcm.Write(bytes);
        }

        FillUpTo(long.MaxValue, long.MaxValue);
        return new Track(pcm.ToArray(), frames.Count, frameBytes, frames.Sum(f => (long)f.Audio.Length), gaps);
    }

    /// <summary>The most silence one gap entry may stand for: MAX_CALL_SECONDS' default, the longest a call lasts.</summary>
    private const long MaxGapSeconds = 4 * 3600;

    private static string DumpInvariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private static long? ChunkOf(string? position) =>
        position?.IndexOf(':', StringComparison.Ordinal) is int colon and >= 0 ? Long(position[(colon + 1)..]) : null;

    public sealed record Entry(string Id, Dictionary<string, string?> Fields, Dictionary<string, RedisValue> Raw);

    private static long? Long(string? text) => long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) ? v : null;

    private static int Median(IEnumerable<int> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    /// <summary>XRANGE in pages of 1000 (exclusive start after the first page), binary-safe: the raw values are kept.</summary>
    public static async Task<List<Entry>> ReadAllAsync(IDatabase db, RedisKey key, Func<Dictionary<string, string?>, bool>? filter, string what, CancellationToken ct)
    {
        var result = new List<Entry>();
        RedisValue from = "-";
        long scanned = 0;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var page = await db.StreamRangeAsync(key, from, "+", Page);
            foreach (var e in page)
            {
                var raw = e.Values.ToDictionary(v => v.Name.ToString(), v => v.Value, StringComparer.Ordinal);
                var fields = raw.Where(kv => kv.Key != "audio").ToDictionary(kv => kv.Key, kv => (string?)kv.Value, StringComparer.Ordinal);
                if (filter is null || filter(fields))
                {
                    result.Add(new Entry(e.Id!, fields, raw));
                }
            }

            scanned += page.Length;
            if (page.Length < Page)
            {
                return result;
            }

            from = "(" + page[^1].Id;
            Common.Progress($"reading {what}: {scanned} entries");
        }
    }
}
