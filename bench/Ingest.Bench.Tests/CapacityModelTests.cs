using Ingest.Bench;
using Ingest.Bench.Capacity;
using Xunit;

namespace Ingest.Bench.Tests;

/// <summary>
/// The capacity arithmetic on a handmade results file whose figures are round: 100,000 frames readable, gateway 3.0 CPU
/// seconds (30 µs per frame), silo 2.0 (20 µs), Redis 1.0 (10 µs), idle memory 30 KB per call in the gateway and 10 KB
/// in the silo, 2,000 Redis bytes per 1,600-byte entry. Every expected value below is worked out by hand in its comment.
/// </summary>
public sealed class CapacityModelTests
{
    private static readonly CapacityAssumptions Defaults = new();

    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    private static MeasuredInputs Tiny(bool withRelay = false) =>
        MeasuredInputs.From(
            Fixture("tiny-orleans.json"),
            CapacityCommand.Load(Fixture("tiny-orleans.json")),
            withRelay ? Fixture("tiny-relay.json") : null,
            withRelay ? CapacityCommand.Load(Fixture("tiny-relay.json")) : null);

    [Fact]
    public void Per_frame_cpu_comes_from_the_warm_run_and_each_process_separately()
    {
        var m = Tiny();

        Assert.Equal("realtime (run 2)", m.Scenario);
        Assert.Equal(30, m.GatewayUsPerFrame, 6);
        Assert.Equal(20, m.SiloUsPerFrame, 6);
        Assert.Equal(10, m.RedisUsPerFrame, 6);
        Assert.Equal(30, m.GatewayPerCall.Kb);
        Assert.Equal(10, m.SiloPerCall.Kb);
        Assert.Equal(2000, m.RedisBytesPerEntry);
        Assert.Empty(m.Notes);
    }

    [Fact]
    public void Nodes_and_shards_at_ten_thousand_calls_eight_khz()
    {
        var row = CapacityModel.Row(Tiny(), Defaults, 10_000, 8000);

        Assert.Equal(100_000, row.FramesPerSecond);
        // 100,000 frames/s x 30 µs = 3.0 cores; a node plans 4 x 0.6 = 2.4 cores: 2 nodes.
        Assert.Equal(3.0, row.GatewayCores, 6);
        Assert.Equal(2, row.GatewayNodesByCpu);
        // 200 MB peak at 1,000 calls = 0.2 MB per call: 8 GB x 0.6 = 4,915 MB holds 24,576 calls: 1 node; MAX_CONNECTIONS 10,000: 1.
        Assert.Equal(1, row.GatewayNodesByMemory);
        Assert.Equal(1, row.GatewayNodesByConnections);
        Assert.Equal(2, row.GatewayNodes);
        // 2.0 cores: 1 silo node. 1.0 Redis core at 0.6 per shard: 2 shards by CPU.
        Assert.Equal(1, row.SiloNodes);
        Assert.Equal(2, row.ShardsByCpu);
        // 5,000 calls per gateway node x 0.2 MB = 1,000 MB (idle: x 30 KB = 146.5 MB); 10,000 on one silo x 0.1 MB (idle 10 KB).
        Assert.Equal(1000, row.GatewayMemoryPerNodeMb, 6);
        Assert.Equal(5000 * 30 / 1024.0, row.GatewayIdleMemoryPerNodeMb, 6);
        Assert.Equal(1000, row.SiloMemoryPerNodeMb, 6);
        Assert.Equal(10000 * 10 / 1024.0, row.SiloIdleMemoryPerNodeMb, 6);
    }

    [Fact]
    public void Redis_memory_holds_half_of_each_live_call_and_every_call_ended_within_the_ttl()
    {
        var row = CapacityModel.Row(Tiny(), Defaults, 10_000, 8000);

        // Live: 10,000 x 90 s x 10 frames = 9,000,000; ended: 10,000 / 180 s x 900 s = 50,000 calls x 1,800 frames = 90,000,000.
        Assert.Equal(99_000_000, row.AudioEntries, 3);
        Assert.Equal(2000, row.RedisBytesPerEntry);
        // 99e6 x 2,000 B + 60,000 calls' keys x 1,024 B + ingest:calls 1e6 x 250 B = 198,311,440,000 B = 184.69 GB (2^30).
        Assert.Equal(198_311_440_000 / (1024.0 * 1024 * 1024), row.RedisMemoryGb, 6);
        // 184.69 / (12 GB x 0.67 = 8.04) = 22.97: 23 shards by memory, more than the 2 by CPU.
        Assert.Equal(23, row.ShardsByMemory);
        Assert.Equal(23, row.Shards);
    }

    [Fact]
    public void Measured_bytes_per_entry_scale_with_the_frame_and_the_stated_overhead_stands_in_when_absent()
    {
        Assert.Equal(4000, CapacityModel.RedisBytesPerEntry(Tiny(), Defaults, 3200));

        var old = MeasuredInputs.From(Fixture("tiny-old-orleans.json"), CapacityCommand.Load(Fixture("tiny-old-orleans.json")));
        // 1,600 x 1.2 + 60.
        Assert.Equal(1980, CapacityModel.RedisBytesPerEntry(old, Defaults, 1600), 6);
        Assert.Contains(old.Notes, n => n.Contains("no measured Redis bytes per audio entry", StringComparison.Ordinal));
    }

    [Fact]
    public void Bandwidth_per_link_from_the_frame_size()
    {
        var row = CapacityModel.Row(Tiny(), Defaults with { NetworkOverhead = 0 }, 10_000, 8000);

        // base64 of 1,600 B = 2,136 B, + 100 B of JSON + 8 B of WebSocket header = 2,244 B x 100,000/s x 8 bit.
        Assert.Equal(2244, row.InboundBytesPerFrame, 6);
        Assert.Equal(1.7952, row.InboundGbps, 6);
        Assert.Equal(1.44, row.GatewayToSiloGbps, 6);
        Assert.Equal(1.6, row.SiloToRedisGbps, 6);
        Assert.Equal(1.344, row.RedisToConsumersGbps, 6);

        var sixteen = CapacityModel.Row(Tiny(), Defaults with { NetworkOverhead = 0.05 }, 10_000, 16000);
        // base64 of 3,200 B = 4,268 B (4 x 1,067), + 108 = 4,376 B, + 5 %.
        Assert.Equal(4376 * 1.05, sixteen.InboundBytesPerFrame, 6);
    }

    [Fact]
    public void Gateway_ceiling_names_the_limit_that_binds()
    {
        var g = CapacityModel.Gateway(Tiny(), Defaults);

        // 2.4 cores / (10 frames/s x 30 µs) = 8,000 calls, under MAX_CONNECTIONS 10,000.
        Assert.Equal(8000, g.ByCpu, 6);
        Assert.Equal(24_576, g.ByMemory, 6);
        Assert.Equal(("CPU", 8000.0), (g.PerNode.Limit, Math.Round(g.PerNode.Calls)));
        Assert.Equal(("MAX_CONNECTIONS_PER_IP", 4000.0), g.PerSource);
        Assert.Equal("MAX_CONNECTIONS", CapacityModel.Gateway(Tiny(), Defaults with { NodeCores = 16 }).PerNode.Limit);
    }

    [Fact]
    public void Lifecycle_stream_rate_against_one_shard_using_the_relays_xadd_cost()
    {
        var s = CapacityModel.CallsStream(Tiny(withRelay: true), Defaults, 100_000);

        // 100,000 calls / 180 s x (start + stop + 2) = 2,222.2 entries/s; the relay's Redis: 0.6 s / 100,000 frames = 6 µs.
        Assert.Equal(100_000 / 180.0 * 4, s.EntriesPerSecond, 6);
        Assert.Equal(6, s.WriteUs, 6);
        Assert.Equal(100_000, s.ShardEntriesPerSecond, 6);
        Assert.Equal(450, s.HistorySeconds, 6);

        // Copy scripts: one per entry (2,222.2), one per call entering the open set (555.6), a touch per call per 30 s
        // (3,333.3) = 6,111.1/s at 3 x 6 µs = 0.11 core, against a shard's 0.6-core target: 18.3 %.
        Assert.Equal((100_000 / 180.0 * 5) + (100_000 / 30.0), s.ScriptsPerSecond, 6);
        Assert.Equal(18, s.ScriptUs, 6);
        Assert.Equal(s.ScriptsPerSecond * 18 / 600_000, s.ShardShare, 6);

        var fallback = CapacityModel.CallsStream(Tiny(), Defaults, 100_000);
        Assert.Equal(CapacityAssumptions.LifecycleWriteUsFallback, fallback.WriteUs);
    }

    [Fact]
    public void Relay_comparison_uses_the_relays_own_cpu()
    {
        var row = CapacityModel.Row(Tiny(withRelay: true), Defaults, 10_000, 8000);

        // Relay 25 µs x 100,000 = 2.5 cores: 2 nodes; its Redis 6 µs = 0.6 core: 1 shard.
        Assert.Equal(2, row.RelayNodesByCpu);
        Assert.Equal(1, row.RelayShardsByCpu);
    }

    [Fact]
    public void Old_file_without_the_per_process_split_charges_the_total_to_each_and_says_so()
    {
        var old = MeasuredInputs.From(Fixture("tiny-old-orleans.json"), CapacityCommand.Load(Fixture("tiny-old-orleans.json")));

        Assert.Equal(40, old.GatewayPerCall.Kb);
        Assert.Equal(40, old.SiloPerCall.Kb);
        Assert.Contains(old.Notes, n => n.Contains("gateway+silo together", StringComparison.Ordinal));
    }

    [Fact]
    public void File_without_an_idle_scenario_takes_it_from_another_file_or_falls_back_to_peak_rss()
    {
        var noIdle = CapacityCommand.Load(Fixture("tiny-noidle-orleans.json"));

        var fallback = MeasuredInputs.From(Fixture("tiny-noidle-orleans.json"), noIdle);
        // 200 MB peak / 1,000 calls.
        Assert.Equal(204.8, fallback.GatewayPerCall.Kb, 6);
        Assert.Contains(fallback.Notes, n => n.Contains("no idle scenario", StringComparison.Ordinal));

        var borrowed = MeasuredInputs.From(Fixture("tiny-noidle-orleans.json"), noIdle, idleSource: Fixture("tiny-orleans.json"), idle: CapacityCommand.Load(Fixture("tiny-orleans.json")));
        Assert.Equal(30, borrowed.GatewayPerCall.Kb);
        Assert.Equal(10, borrowed.SiloPerCall.Kb);
        Assert.Contains("tiny-orleans.json", borrowed.GatewayPerCall.Source, StringComparison.Ordinal);
    }

    [Fact]
    public void Command_prints_the_tables_and_refuses_unknown_options()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var code = CapacityCommand.Run(["--results", Fixture("tiny-orleans.json"), "--relay", Fixture("tiny-relay.json"), "--calls", "10000"], output, error);

        Assert.Equal(0, code);
        Assert.Contains("| 10,000 | 8 | 100,000 | 3.0 | **2** (2 / 1 / 1) |", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("Binds first on a node: **CPU, 8,000 calls**", output.ToString(), StringComparison.Ordinal);
        Assert.Equal(2, CapacityCommand.Run(["--results", Fixture("tiny-orleans.json"), "--node-size", "4"], output, error));
        Assert.Equal(2, CapacityCommand.Run(["--calls", "10"], output, error));
    }

    [Fact]
    public void Results_dir_picks_the_newest_realtime_file_its_relay_and_the_newest_idle_figures()
    {
        var dir = Directory.CreateTempSubdirectory("capacity-").FullName;
        try
        {
            File.Copy(Fixture("tiny-orleans.json"), Path.Combine(dir, "20260101T000000Z-a-orleans.json"));
            File.Copy(Fixture("tiny-noidle-orleans.json"), Path.Combine(dir, "20260102T000000Z-b-orleans.json"));
            File.Copy(Fixture("tiny-relay.json"), Path.Combine(dir, "20260102T000000Z-b-relay.json"));
            File.WriteAllText(Path.Combine(dir, "20260103T000000Z-c-orleans.json"), "{ not a results file");
            var files = new Dictionary<string, string>(StringComparer.Ordinal);

            CapacityCommand.Pick(dir, files);

            Assert.Equal("20260102T000000Z-b-orleans.json", Path.GetFileName(files["--results"]));
            Assert.Equal("20260102T000000Z-b-relay.json", Path.GetFileName(files["--relay"]));
            Assert.Equal("20260101T000000Z-a-orleans.json", Path.GetFileName(files["--idle-results"]));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Results_dir_picks_the_run_that_started_last_not_the_name_that_sorts_last()
    {
        var dir = Directory.CreateTempSubdirectory("capacity-").FullName;
        try
        {
            // A kept result under a descriptive name (sorts after every time stamp) and a fresh run under a stamp.
            var text = File.ReadAllText(Fixture("tiny-orleans.json"));
            File.WriteAllText(Path.Combine(dir, "warmup-kept-orleans.json"), text);
            File.WriteAllText(Path.Combine(dir, "20261207T000000Z-fresh-orleans.json"), text.Replace("\"2026-12-01T12:00:00Z\"", "\"2026-12-07T00:00:00Z\"", StringComparison.Ordinal));
            var files = new Dictionary<string, string>(StringComparer.Ordinal);

            CapacityCommand.Pick(dir, files);

            Assert.Equal("20261207T000000Z-fresh-orleans.json", Path.GetFileName(files["--results"]));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void New_result_fields_round_trip_through_the_results_json()
    {
        var result = new ScenarioResult
        {
            Scenario = "idle",
            Calls = 1,
            KbPerIdleCallByProcess = new Dictionary<string, double> { ["gateway"] = 1.5, ["silo"] = 2.5 },
            RedisBytesPerAudioEntry = 1946.8,
            Processes = [],
        };

        var json = System.Text.Json.JsonSerializer.Serialize(result, ResultsTable.Json);
        var back = System.Text.Json.JsonSerializer.Deserialize<ScenarioResult>(json, ResultsTable.Json)!;

        Assert.Contains("\"kbPerIdleCallByProcess\"", json, StringComparison.Ordinal);
        Assert.Equal(2.5, back.KbPerIdleCallByProcess!["silo"]);
        Assert.Equal(1946.8, back.RedisBytesPerAudioEntry);
    }
}
