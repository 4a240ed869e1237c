using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;

namespace Ingest.Ctl;

/// <summary>Follows a live stream: per second its frames, level (RMS dBFS) and gaps; ends at its stop entry or Ctrl+C.</summary>
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
            var audioId = fromStart ? "0-0" : "$";
            var callsId = "$";
            if (fromStart && (await db.StreamRangeAsync(audioKey, "-", "+", 1)) is [var first, ..])
            {
                // The lifecycle entries of this stream are at most a little older than its first frame.
                var ms = long.Parse(first.Id.ToString().Split('-')[0], CultureInfo.InvariantCulture);
                callsId = $"{Math.Max(0, ms - 10_000)}-0";
            }
            else if (fromStart)
            {
                // Nothing landed yet: the start entry may still be ahead, or just behind us.
                callsId = $"{Math.Max(0, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 10_000)}-0";
            }

            Console.WriteLine($"following {audioKey} (Ctrl+C to stop)");
            var limit = p.GetValue(timeout) is { } t ? TimeSpan.FromSeconds(t) : (TimeSpan?)null;
            var clock = Stopwatch.StartNew();
            var second = Stopwatch.StartNew();
            long frames = 0, total = 0, gaps = 0, sumSq = 0, samples = 0;
            while (!ct.IsCancellationRequested)
            {
                if (limit is { } l && clock.Elapsed > l)
                {
                    throw new CtlException($"no stop for '{streamId}' within {l.TotalSeconds:F0} s");
                }

                var reply = await db.ExecuteAsync("XREAD", "COUNT", 1000, "BLOCK", 500, "STREAMS", audioKey, "ingest:calls", audioId, callsId);
                if (!reply.IsNull)
                {
                    foreach (var stream in (RedisResult[])reply!)
                    {
                        var parts = (RedisResult[])stream!;
                        var key = parts[0].ToString();
                        foreach (var entry in (RedisResult[])parts[1]!)
                        {
                            var e = (RedisResult[])entry!;
                            var entryId = e[0].ToString()!;
                            var kv = (RedisResult[])e[1]!;
                            var fields = new Dictionary<string, RedisValue>(StringComparer.Ordinal);
                            for (var i = 0; i + 1 < kv.Length; i += 2)
                            {
                                fields[kv[i].ToString()!] = (RedisValue)kv[i + 1];
                            }

                            if (key == audioKey)
                            {
                                audioId = entryId;
                                frames++;
                                total++;
                                var pcm = (byte[])fields.GetValueOrDefault("audio")!;
                                for (var i = 0; i + 1 < (pcm?.Length ?? 0); i += 2)
                                {
                                    long s = (short)(pcm![i] | (pcm[i + 1] << 8));
                                    sumSq += s * s;
                                    samples++;
                                }

                                continue;
                            }

                            callsId = entryId;
                            if (fields.GetValueOrDefault("stream_id") != streamId)
                            {
                                continue;
                            }

                            var ev = fields.GetValueOrDefault("event").ToString();
                            switch (ev)
                            {
                                case "gap":
                                    gaps++;
                                    Console.WriteLine($"  gap seq {fields.GetValueOrDefault("from_seq")}-{fields.GetValueOrDefault("to_seq")}: {fields.GetValueOrDefault("missing")} missing ({fields.GetValueOrDefault("reason")})");
                                    break;
                                case "start":
                                    Console.WriteLine($"  start: {fields.GetValueOrDefault("sample_rate")} Hz {fields.GetValueOrDefault("encoding")}");
                                    break;
                                case "dtmf":
                                    Console.WriteLine($"  dtmf {fields.GetValueOrDefault("digit")}");
                                    break;
                                case "stop":
                                    Report(ref frames, ref sumSq, ref samples, total, gaps, second);
                                    Console.WriteLine($"  stop: {fields.GetValueOrDefault("reason")}, {fields.GetValueOrDefault("frames")} frames published; {total} seen, {gaps} gap(s)");
                                    return Program.Ok;
                                default:
                                    break;
                            }
                        }
                    }
                }

                if (second.Elapsed >= TimeSpan.FromSeconds(1))
                {
                    Report(ref frames, ref sumSq, ref samples, total, gaps, second);
                }
            }

            Console.WriteLine($"interrupted; {total} frames seen, {gaps} gap(s)");
            return Program.Interrupted;
        });
        return command;
    }

    private static void Report(ref long frames, ref long sumSq, ref long samples, long total, long gaps, Stopwatch second)
    {
        var rate = frames / Math.Max(0.001, second.Elapsed.TotalSeconds);
        var level = samples == 0 ? "   -" : $"{(sumSq == 0 ? -120 : 20 * Math.Log10(Math.Sqrt(sumSq / (double)samples) / 32768.0)),6:F1} dBFS";
        Console.WriteLine($"{DateTime.Now:HH:mm:ss}  {rate,6:F1} frames/s  level {level}  total {total}  gaps {gaps}");
        frames = sumSq = samples = 0;
        second.Restart();
    }
}
