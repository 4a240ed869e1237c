using System.Globalization;

namespace Ingest.Bench;

/// <summary>Command line of one driver run against one system (relay or gateway) that is already listening.</summary>
public sealed record BenchOptions
{
    /// <summary>Name printed in the table and the JSON: "relay" or "orleans".</summary>
    public string System { get; init; } = "system";

    public Uri Url { get; init; } = new("ws://127.0.0.1:8080/v1/ingest");

    public string User { get; init; } = "exotel";

    public string Password { get; init; } = "local-exotel-secret";

    public string Redis { get; init; } = "127.0.0.1:6380";

    /// <summary>
    /// Processes whose CPU and RSS are measured, as name=pid; name=pid+pid+... is one process made of several (the nodes
    /// of a Redis Cluster), whose figures are summed.
    /// </summary>
    public IReadOnlyDictionary<string, int[]> Processes { get; init; } = new Dictionary<string, int[]>();

    /// <summary>Concurrent calls of the real-time and idle scenarios.</summary>
    public int Calls { get; init; } = 1000;

    /// <summary>Length of the real-time scenario.</summary>
    public int Seconds { get; init; } = 20;

    /// <summary>Real-time frame interval (Exotel sends 100 ms; 20 ms is selectable).</summary>
    public int CadenceMs { get; init; } = 100;

    /// <summary>8000 or 16000 (or 24000) Hz PCM16 mono: the frame holds CadenceMs of it.</summary>
    public int SampleRate { get; init; } = 8000;

    /// <summary>What the Exotel calls send (CONTRACT §5): pcm16 (audio/x-raw), or mulaw (audio/x-mulaw, decoded at the gateway).</summary>
    public string Encoding { get; init; } = "pcm16";

    /// <summary>Calls of the max-throughput scenario, each sending its frames back to back.</summary>
    public int MaxCalls { get; init; } = 64;

    public int MaxFramesPerCall { get; init; } = 3000;

    /// <summary>Calls whose every frame is timed (XREAD BLOCK); the others are counted and verified only.</summary>
    public int ObservedCalls { get; init; } = 200;

    /// <summary>Calls of the warm-up before the scenarios (50 frames each, flat out unless paced); not measured.</summary>
    public int WarmupCalls { get; init; } = 32;

    /// <summary>The warm-up's frame interval (0: flat out); a paced warm-up reaches the code real-time calls run.</summary>
    public int WarmupCadenceMs { get; init; }

    /// <summary>How many times the warm-up runs, each followed by the pause (tier-up takes more than one pass).</summary>
    public int WarmupRounds { get; init; } = 1;

    /// <summary>Seconds to wait after the warm-up (background JIT finishing) before the first scenario.</summary>
    public int WarmupPauseSeconds { get; init; }

    public IReadOnlyList<string> Scenarios { get; init; } = ["idle", "realtime", "realtime", "max"];

    public string OutputPath { get; init; } = "bench/results/result.json";

    /// <summary>Opening sockets concurrently: too many at once only measures the accept queue.</summary>
    public int ConnectConcurrency { get; init; } = 32;

    public int FrameBytes => SampleRate * 2 * CadenceMs / 1000;

    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        var options = new BenchOptions();
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{name} needs a value");
            int Int() => int.Parse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture);
            options = name switch
            {
                "--system" => options with { System = Value() },
                "--url" => options with { Url = new Uri(Value()) },
                "--user" => options with { User = Value() },
                "--pass" => options with { Password = Value() },
                "--redis" => options with { Redis = Value() },
                "--pids" => options with { Processes = ParsePids(Value()) },
                "--calls" => options with { Calls = Int() },
                "--seconds" => options with { Seconds = Int() },
                "--cadence-ms" => options with { CadenceMs = Int() },
                "--sample-rate" => options with { SampleRate = Int() },
                "--encoding" => options with { Encoding = Value() },
                "--max-calls" => options with { MaxCalls = Int() },
                "--max-frames" => options with { MaxFramesPerCall = Int() },
                "--observe" => options with { ObservedCalls = Int() },
                "--warmup-calls" => options with { WarmupCalls = Int() },
                "--warmup-pause" => options with { WarmupPauseSeconds = Int() },
                "--warmup-cadence-ms" => options with { WarmupCadenceMs = Int() },
                "--warmup-rounds" => options with { WarmupRounds = Int() },
                "--scenarios" => options with { Scenarios = Value().Split(',', StringSplitOptions.RemoveEmptyEntries) },
                "--out" => options with { OutputPath = Value() },
                _ => throw new ArgumentException($"unknown option {name}"),
            };
        }

        if (options.Encoding is not ("pcm16" or "mulaw"))
        {
            throw new ArgumentException("--encoding must be pcm16 or mulaw");
        }

        if (options.SampleRate is not (8000 or 16000 or 24000))
        {
            throw new ArgumentException("--sample-rate must be 8000, 16000 or 24000");
        }

        if (options.CadenceMs is < 10 or > 1000 || options.Calls < 1 || options.Seconds is < 1 or > 3600 || options.MaxCalls < 1 || options.MaxFramesPerCall is < 1 or > 30_000)
        {
            throw new ArgumentException("--cadence-ms 10..1000, --calls >= 1, --seconds 1..3600, --max-calls >= 1, --max-frames 1..30000");
        }

        return options;
    }

    public static Dictionary<string, int[]> ParsePids(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(pair => pair.Split('=', 2))
            .ToDictionary(
                p => p[0],
                p => p[1].Split('+', StringSplitOptions.RemoveEmptyEntries).Select(pid => int.Parse(pid, CultureInfo.InvariantCulture)).ToArray(),
                StringComparer.Ordinal);
}
