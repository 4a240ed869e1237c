// Building block moved from Ingest.Tests; the type summary documents it, its members are read by the kit and the project tests.
#pragma warning disable CS1591

using System.Globalization;
using StackExchange.Redis;

namespace Ingest.Testing;

/// <summary>Reads what landed in Redis the way a downstream consumer would.</summary>
public static class RedisStreams
{
    public sealed record AudioEntry(long Seq, long Ts, byte[] Audio);

    /// <summary>The call's audio stream: the inbound (or only) track, or with <paramref name="outbound"/> the outbound one.</summary>
    public static async Task<IReadOnlyList<AudioEntry>> ReadAudioAsync(IConnectionMultiplexer redis, string streamId, bool outbound = false)
    {
        var entries = await redis.GetDatabase().StreamRangeAsync("ingest:audio:{" + streamId + "}" + (outbound ? ":outbound" : ""));
        return entries.Select(e => new AudioEntry(
            long.Parse(e["seq"].ToString(), CultureInfo.InvariantCulture),
            long.Parse(e["ts"].ToString(), CultureInfo.InvariantCulture),
            (byte[])e["audio"]!)).ToList();
    }

    public static async Task<IReadOnlyList<Dictionary<string, string>>> ReadLifecycleAsync(IConnectionMultiplexer redis, string streamId)
    {
        var entries = await redis.GetDatabase().StreamRangeAsync("ingest:calls");
        return entries
            .Select(e => e.Values.ToDictionary(v => v.Name.ToString(), v => v.Value.ToString()))
            .Where(d => d.GetValueOrDefault("stream_id") == streamId)
            .ToList();
    }

    /// <summary>Polls until <paramref name="condition"/> holds or the timeout passes; returns whether it held.</summary>
    public static async Task<bool> WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (await condition())
            {
                return true;
            }

            await Task.Delay(50);
        }

        return await condition();
    }
}
