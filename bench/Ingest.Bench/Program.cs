using System.Text.Json;
using Ingest.Bench;
using Ingest.Bench.Capacity;

// Ingest.Bench run --system NAME --url ws://... --redis host:port --pids name=pid,... [--calls N --seconds S ...]
// Ingest.Bench compare a.json b.json
// Ingest.Bench curve a.json b.json ...   (calls vs latency vs CPU over several runs)
if (args.Length >= 1 && args[0] is "compare" or "curve")
{
    var runs = args.Skip(1).Select(path => JsonSerializer.Deserialize<RunResult>(File.ReadAllText(path), ResultsTable.Json)!).ToList();
    Console.WriteLine(args[0] == "compare" ? ResultsTable.Render(runs) : CurveTable.Render(runs));
    return 0;
}

// Ingest.Bench capacity --results orleans.json [--relay relay.json] [--idle-results orleans.json] [assumptions] (docs/CAPACITY.md)
if (args.Length >= 1 && args[0] == "capacity")
{
    return CapacityCommand.Run(args.Skip(1).ToList(), Console.Out, Console.Error);
}

// Ingest.Bench outage --url ws://... --redis host:port --jwt-secret S --pids gateway=..,silo=.. (bench/outage-memory.sh)
if (args.Length >= 1 && args[0] == "outage")
{
    return await OutageMemory.RunAsync(args.Skip(1).ToList());
}

// Ingest.Bench topology --urls ws://a,ws://b --admin http://a,http://b --jwt-secret S --silos s1=port,... (bench/topology.sh)
if (args.Length >= 1 && args[0] == "topology")
{
    return await Topology.RunAsync(args.Skip(1).ToList());
}

if (args.Length < 1 || args[0] != "run")
{
    Console.Error.WriteLine("usage: Ingest.Bench run --system NAME --url WS_URL --redis HOST:PORT --pids name=pid,... [options] | compare A.json B.json | curve A.json ... | capacity --results A.json [--help]");
    return 2;
}

var parsed = BenchOptions.Parse(args.Skip(1).ToList());

// The driver shares the machine, so its own CPU is reported next to the servers'.
var options = parsed with { Processes = new Dictionary<string, int[]>(parsed.Processes) { ["driver"] = [Environment.ProcessId] } };
var startedUtc = DateTime.UtcNow;
await using var redis = await RedisProbe.ConnectAsync(options.Redis);
var runner = new ScenarioRunner(options, redis, Console.Out);
var results = new List<ScenarioResult>();

for (var round = 1; round <= options.WarmupRounds; round++)
{
    Console.WriteLine($"[{options.System}] warm-up{(options.WarmupRounds > 1 ? $" round {round}" : string.Empty)}");
    await runner.WarmUpAsync();
    await Task.Delay(TimeSpan.FromSeconds(options.WarmupPauseSeconds));
}

var occurrences = new Dictionary<string, int>(StringComparer.Ordinal);
foreach (var scenario in options.Scenarios)
{
    // A scenario named twice runs twice on the same servers: the first on cold processes, the second warm.
    var occurrence = occurrences[scenario] = occurrences.GetValueOrDefault(scenario) + 1;
    Console.WriteLine($"[{options.System}] scenario {scenario}{(occurrence > 1 ? $" (run {occurrence})" : string.Empty)}");
    var result = scenario switch
    {
        "idle" => await runner.IdleAsync(),
        "idle-large" => await runner.IdleAsync(largeMessageBytes: 250_000),
        "realtime" => await runner.RealTimeAsync(),
        "max" => await runner.MaxThroughputAsync(),
        "hop" or "hop-local" or "hop-pacing" when options.System != "orleans" => null,
        "hop" => await HopScenario.RunAsync(options, Console.Out),
        "hop-local" => await HopScenario.RunAsync(options, Console.Out, local: true),
        "hop-pacing" => await HopScenario.RunAsync(options, Console.Out, pacingOnly: true),
        _ => throw new ArgumentException($"unknown scenario {scenario}"),
    };
    if (result is null)
    {
        Console.WriteLine($"[{options.System}] scenario {scenario}: not for this system, skipped");
        continue;
    }

    if (occurrence > 1)
    {
        result = result with { Scenario = $"{result.Scenario} (run {occurrence})" };
    }

    results.Add(result);
    Console.WriteLine(ResultsTable.Render([new RunResult(options.System, string.Empty, startedUtc, Summary(options), [result])]));
}

var machine = $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}";
var run = new RunResult(options.System, machine, startedUtc, Summary(options), results);
Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(options.OutputPath))!);
await File.WriteAllTextAsync(options.OutputPath, JsonSerializer.Serialize(run, ResultsTable.Json));
Console.WriteLine($"[{options.System}] wrote {options.OutputPath}");
return 0;

static BenchOptionsSummary Summary(BenchOptions o) => new(o.Calls, o.Seconds, o.CadenceMs, o.SampleRate, o.MaxCalls, o.MaxFramesPerCall, o.ObservedCalls, o.Encoding);
