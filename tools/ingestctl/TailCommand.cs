using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Ingest.Grains.Interfaces;
using StackExchange.Redis;

namespace Ingest.Ctl;

/// <summary>
/// Follows a live stream: per second its frames, level (RMS dBFS) and gaps, and the same of its outbound track when it
/// has one (CONTRACT §7); ends at its stop entry or Ctrl+C.
/// </summary>
internal static class TailCommand
{
    public static Command Build()
    {
        var id = new Argument<string>("stream_id") { Description = "the stream id to follow" };
        var redis = Common.RedisOption();
        var from = new Option<string>("--from") { Description = "start: from the stream's first entry (0); now: only what lands from now on ($)", DefaultValueFactory = _ => "start" };
        from.AcceptOnlyFromAmong("start", "now");
        var timeout = Common.OptionalInt("--timeout", "give up after this many seconds without a stop (exit 1)", 1, 86_400);
        var command = new Command("tail", "Follow a live stream: frames/s, level (RMS dBFS of PCM16), gaps; stops at the stream's stop entry or Ctrl+C")
        {
            id, redis, from, timeout,
        };
        command.SetAction(async (p, _) =>
        {
            var streamId = p.GetValue(id)!;
            var ct = Common.CtrlC();
            using var mux = await Common.ConnectRedisAsync(p.GetValue(redis)!);
            var db = mux.GetDatabase();
            var audioKey = Common.AudioKey(streamId);
            var fromStart = p.GetValue(from) == "start";
            var callsFrom = (RedisValue)"$";
            if (fromStart && (await db.StreamRangeAsync(audioKey, "-", "+", 1)) is [var first, ..])
            {
                // The lifecycle entries of this stream are at most a little older than its first frame.
                var ms = long.Parse(first.Id.ToString().Split('-')[0], CultureInfo.InvariantCulture);
                callsFrom = $"{Math.Max(0, ms - 10_000)}-0";
            }
            else if (fromStart)
            {
                // Nothing landed yet: the start entry may still be ahead, or just behind us.
                callsFrom = $"{Math.Max(0, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 10_000)}-0";
            }

            // Two readers, one per key: on a Redis Cluster the audio stream and ingest:calls are in different slots,
            // where one XREAD naming both is refused (CROSSSLOT).
            var audio = await StreamFollower.StartAsync(db, audioKey, fromStart ? "0-0" : "$");
            var agentAudio = await StreamFollower.StartAsync(db, audioKey + ":outbound", fromStart ? "0-0" : "$");
            var calls = await StreamFollower.StartAsync(db, StreamKeys.Calls, callsFrom);

            Console.WriteLine($"following {audioKey} (Ctrl+C to stop)");
            var limit = p.GetValue(timeout) is { } t ? TimeSpan.FromSeconds(t) : (TimeSpan?)null;
            var clock = Stopwatch.StartNew();
            var second = Stopwatch.StartNew();
            long gaps = 0;
            var caller = new Level();
            var agent = new Level();

            while (!ct.IsCancellationRequested)
            {
                if (limit is { } l && clock.Elapsed > l)
                {
                    throw new CtlException($"no stop for '{streamId}' within {l.TotalSeconds:F0} s");
                }

                // Audio first, then the lifecycle: what a frame's writer put before a stop is counted before the stop.
                var audioEntries = await audio.ReadAsync();
                var agentEntries = await agentAudio.ReadAsync();
                var callEntries = await calls.ReadAsync();
                caller.Count(audioEntries);
                agent.Count(agentEntries);
                foreach (var entry in callEntries)
                {
                    if (entry["stream_id"] != streamId)
                    {
                        continue;
                    }

                    var ev = entry["event"].ToString();
                    switch (ev)
                    {
                        case "gap":
                            gaps++;
                            var where = entry["from_chunk"].HasValue ? $"chunk {entry["from_chunk"]}-{entry["to_chunk"]}" : $"seq {entry["from_seq"]}-{entry["to_seq"]}";
                            Console.WriteLine($"  gap{(entry["track"].HasValue ? " " + entry["track"] : "")} {where}: {entry["missing"]} missing ({entry["reason"]})");
                            break;
                        case "start":
                            Console.WriteLine($"  start: {entry["sample_rate"]} Hz {entry["encoding"]}");
                            break;
                        case "dtmf":
                            Console.WriteLine($"  dtmf {entry["digit"]}");
                            break;
                        case "stop":
                            // The two reads are not one snapshot: frames written between them are read now.
                            foreach (var (follower, level) in new[] { (audio, caller), (agentAudio, agent) })
                            {
                                for (var more = await follower.ReadAsync(); more.Length > 0; more = await follower.ReadAsync())
                                {
                                    level.Count(more);
                                }
                            }

                            Report(caller, agent, gaps, second);
                            var outboundFrames = entry["frames_outbound"].HasValue ? $" + {entry["frames_outbound"]} outbound" : "";
                            var seen = agent.Total > 0 ? $"{caller.Total} + {agent.Total} outbound" : caller.Total.ToString(CultureInfo.InvariantCulture);
                            Console.WriteLine($"  stop: {entry["reason"]}, {entry["frames"]}{outboundFrames} frames published; {seen} seen, {gaps} gap(s)");
                            return Program.Ok;
                        default:
                            break;
                    }
                }

                if (audioEntries.Length == 0 && agentEntries.Length == 0 && callEntries.Length == 0)
                {
                    await Task.Delay(100, CancellationToken.None);
                }

                if (second.Elapsed >= TimeSpan.FromSeconds(1))
                {
                    Report(caller, agent, gaps, second);
                }
            }

            Console.WriteLine($"interrupted; {caller.Total + agent.Total} frames seen, {gaps} gap(s)");
            return Program.Interrupted;
        });
        return command;
    }

    /// <summary>Reads one stream onward from a position with plain (non-blocking) XREADs on one key at a time.</summary>
    private sealed class StreamFollower
    {
        private const int Page = 1000;
        private readonly IDatabase _db;
        private readonly RedisKey _key;
        private RedisValue _position;

        private StreamFollower(IDatabase db, RedisKey key, RedisValue position)
        {
            _db = db;
            _key = key;
            _position = position;
        }

        /// <summary><paramref name="from"/> is an entry id, or <c>$</c> for the stream's last entry now (so only newer ones are read).</summary>
        public static async Task<StreamFollower> StartAsync(IDatabase db, RedisKey key, RedisValue from)
        {
            if (from == "$")
            {
                from = (await db.StreamRangeAsync(key, "-", "+", 1, Order.Descending)) is [var last, ..] ? last.Id : "0-0";
            }

            return new StreamFollower(db, key, from);
        }

        /// <summary>The next entries after the last one read (at most one page), or none.</summary>
        public async Task<StreamEntry[]> ReadAsync()
        {
            var entries = await _db.StreamReadAsync(_key, _position, Page);
            if (entries.Length > 0)
            {
                _position = entries[^1].Id;
            }

            return entries;
        }
    }

    /// <summary>One track's frames and level since the last report, and its frames in all.</summary>
    private sealed class Level
    {
        public long Frames { get; private set; }

        public long Total { get; private set; }

        private long _sumSq;
        private long _samples;

        public void Count(StreamEntry[] entries)
        {
            foreach (var entry in entries)
            {
                Frames++;
                Total++;
                var pcm = (byte[]?)entry["audio"];
                for (var i = 0; i + 1 < (pcm?.Length ?? 0); i += 2)
                {
                    long s = (short)(pcm![i] | (pcm[i + 1] << 8));
                    _sumSq += s * s;
                    _samples++;
                }
            }
        }

        public string Describe(double seconds)
        {
            var level = _samples == 0 ? "   -" : $"{(_sumSq == 0 ? -120 : 20 * Math.Log10(Math.Sqrt(_sumSq / (double)_samples) / 32768.0)),6:F1} dBFS";
            var text = $"{Frames / Math.Max(0.001, seconds),6:F1} frames/s  level {level}  total {Total}";
            Frames = _sumSq = _samples = 0;
            return text;
        }
    }

    private static void Report(Level caller, Level agent, long gaps, Stopwatch second)
    {
        var seconds = second.Elapsed.TotalSeconds;
        var outbound = agent.Total > 0 ? "  | outbound " + agent.Describe(seconds) : "";
        Console.WriteLine($"{DateTime.Now:HH:mm:ss}  {caller.Describe(seconds)}{outbound}  gaps {gaps}");
        second.Restart();
    }
}
