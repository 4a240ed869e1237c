using System.Globalization;

namespace Ingest.SampleWorker;

public sealed record WorkerOptions(
    string Redis,
    string Group,
    string Name,
    int ClaimIdleMs,
    int MaxCalls,
    int PollMs,
    int CheckpointTtlSeconds)
{
    public static WorkerOptions? Parse(string[] args)
    {
        var map = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
            {
                return null;
            }

            map[args[i][2..]] = args[i + 1];
        }

        if (!map.TryGetValue("group", out var group) || !map.TryGetValue("name", out var name))
        {
            return null;
        }

        return new WorkerOptions(
            map.GetValueOrDefault("redis", "localhost:6379"),
            group,
            name,
            Int(map, "claim-idle-ms", 5000),
            Int(map, "max-calls", 100),
            Int(map, "poll-ms", 50),
            Int(map, "checkpoint-ttl-seconds", 86_400));
    }

    private static int Int(Dictionary<string, string> map, string key, int fallback) =>
        map.TryGetValue(key, out var text) ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;
}

internal static class Log
{
    public static void Write(string worker, string message) =>
        Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} [{worker}] {message}");
}
