using System.Globalization;
using System.Text;

namespace Ingest.Bench.Capacity;

/// <summary>The capacity tables as Markdown (pasted into docs/CAPACITY.md as printed).</summary>
public static class CapacityReport
{
    public static string Render(MeasuredInputs m, CapacityAssumptions a)
    {
        var rows = a.Calls.SelectMany(c => a.SampleRates.Select(r => CapacityModel.Row(m, a, c, r))).ToList();
        var t = new StringBuilder();

        t.AppendLine(Inv($"### Measured inputs ({Path.GetFileName(m.Source)}, run started {m.MeasuredUtc:yyyy-MM-dd HH:mm} UTC)"));
        t.AppendLine();
        t.AppendLine(Inv($"Machine: {m.Machine}. Scenario: `{m.Scenario}`, {m.Calls:N0} calls, {m.SampleRate} Hz, {m.CadenceMs} ms frames ({m.FrameBytes:N0} B), {m.FramesPerSecond:N0} frames/s readable."));
        t.AppendLine();
        t.AppendLine("| input | value | from |");
        t.AppendLine("|---|---:|---|");
        t.AppendLine(Inv($"| gateway CPU per frame | {m.GatewayUsPerFrame:0.0} µs | CPU s / frames readable |"));
        t.AppendLine(Inv($"| silo CPU per frame | {m.SiloUsPerFrame:0.0} µs | CPU s / frames readable |"));
        t.AppendLine(Inv($"| Redis CPU per frame | {m.RedisUsPerFrame:0.0} µs | CPU s / frames readable |"));
        t.AppendLine(Inv($"| gateway memory per live call | {m.GatewayPerCall.Kb:0.0} KB | {m.GatewayPerCall.Source} |"));
        t.AppendLine(Inv($"| silo memory per live call | {m.SiloPerCall.Kb:0.0} KB | {m.SiloPerCall.Source} |"));
        t.AppendLine(Inv($"| gateway peak RSS | {m.GatewayPeakRssMb:N0} MB at {m.Calls:N0} calls | {m.Scenario} |"));
        t.AppendLine(Inv($"| silo peak RSS | {m.SiloPeakRssMb:N0} MB at {m.Calls:N0} calls | {m.Scenario} |"));
        t.AppendLine(m.RedisBytesPerEntry is { } e
            ? Inv($"| Redis bytes per audio entry | {e:N0} B at {m.FrameBytes:N0} B of PCM | MEMORY USAGE / XLEN, scaled to other frame sizes |")
            : Inv($"| Redis bytes per audio entry | not measured | PCM x {1 + a.RedisEntryOverheadRatio:0.00} + {a.RedisEntryOverheadBytes} B (assumption) |"));
        if (m.Relay is { } relay)
        {
            t.AppendLine(Inv($"| relay CPU per frame | {relay.RelayUsPerFrame:0.0} µs | {Path.GetFileName(relay.Source)}, `{relay.Scenario}`, {relay.Calls:N0} calls |"));
            t.AppendLine(Inv($"| Redis CPU per frame under the relay (one XADD) | {relay.RedisUsPerFrame:0.0} µs | same |"));
        }

        if (m.Notes.Count > 0)
        {
            t.AppendLine();
            t.AppendLine("Missing from this file, and what was used instead:");
            t.AppendLine();
            foreach (var note in m.Notes)
            {
                t.AppendLine(Inv($"- {note}"));
            }
        }

        t.AppendLine();
        t.AppendLine("### Assumptions (options of `Ingest.Bench capacity`)");
        t.AppendLine();
        t.AppendLine("| option | value | meaning |");
        t.AppendLine("|---|---:|---|");
        foreach (var (option, value, meaning) in a.Describe())
        {
            t.AppendLine(Inv($"| `{option}` | {value} | {meaning} |"));
        }

        t.AppendLine();
        t.AppendLine("### Nodes and shards");
        t.AppendLine();
        t.AppendLine(Inv($"A node is {a.NodeCores:0.#} vCPU and {a.NodeMemoryGb:0.#} GB planned at {a.NodeCpuTarget:P0} CPU and {a.NodeMemoryTarget:P0} memory; a shard is one core at {a.ShardCpuTarget:P0} and {a.ShardMemoryGb:0.#} GB at {a.ShardMemoryTarget:P0}. Each count is the largest of the limits in brackets; connections: `MAX_CONNECTIONS` per gateway. GB = 2^30 bytes."));
        t.AppendLine();
        var others = a.SampleRates.Where(r => r != m.SampleRate).Distinct().Select(r => Inv($"{r / 1000} kHz")).ToList();
        t.AppendLine(Inv($"CPU per frame is the figure measured at {m.SampleRate / 1000} kHz ({m.FrameBytes:N0} B frames){(others.Count == 0 ? "." : $", used unchanged at {string.Join(" and ", others)} (not measured there: run the bench with `--sample-rate` to measure it).")} Redis CPU is all Redis did in the run: the audio and lifecycle writes, Orleans membership, and the bench's own reads (XREAD BLOCK of {m.ObservedCalls:N0} observed streams, XLEN polling), but not a consumer reading every stream."));
        t.AppendLine();
        t.AppendLine("| calls | kHz | frames/s | gateway cores | gateway nodes (CPU / memory / connections) | silo cores | silo nodes (CPU / memory) | Redis cores | Redis memory GB | Redis shards (CPU / memory) |");
        t.AppendLine("|---:|---:|---:|---:|---|---:|---|---:|---:|---|");
        foreach (var r in rows)
        {
            t.AppendLine(Inv($"| {r.Calls:N0} | {r.SampleRate / 1000} | {r.FramesPerSecond:N0} | {r.GatewayCores:0.0} | **{r.GatewayNodes}** ({r.GatewayNodesByCpu} / {r.GatewayNodesByMemory} / {r.GatewayNodesByConnections}) | {r.SiloCores:0.0} | **{r.SiloNodes}** ({r.SiloNodesByCpu} / {r.SiloNodesByMemory}) | {r.RedisCores:0.0} | {r.RedisMemoryGb:N0} | **{r.Shards}** ({r.ShardsByCpu} / {r.ShardsByMemory}) |"));
        }

        var planned = rows.Max(r => (double)r.Calls / Math.Max(1, r.GatewayNodes));
        if (m.Calls < planned / 2)
        {
            t.AppendLine();
            t.AppendLine(Inv($"Caution: the CPU figures were measured with {m.Calls:N0} calls on one gateway process and one silo process; the plan puts up to {planned:N0} calls on a gateway node. With fewer calls per process, fixed costs (timers, heartbeats, GC, thread-pool wake-ups) are spread over fewer frames, so the per-frame cost tends to be overstated (see the curve in docs/PERFORMANCE.md); a results file measured nearer the planned calls per node gives a truer figure."));
        }

        t.AppendLine();
        t.AppendLine("### Bandwidth");
        t.AppendLine();
        t.AppendLine(Inv($"Gbit/s, with {a.NetworkOverhead:P0} for TCP/IP/TLS headers; in brackets, bytes per frame. Redis → consumers assumes {a.ReadersPerStream} reader per audio stream (each more adds the same again); replication to {a.ReplicasPerShard} replica per shard adds about the silo → Redis figure again inside the Redis tier."));
        t.AppendLine();
        t.AppendLine("| calls | kHz | client → gateway (Exotel JSON, base64) | gateway → silo (Orleans) | silo → Redis (EVALSHA) | Redis → consumers (XREAD) |");
        t.AppendLine("|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
        {
            t.AppendLine(Inv($"| {r.Calls:N0} | {r.SampleRate / 1000} | {r.InboundGbps:0.00} ({r.InboundBytesPerFrame:N0} B) | {r.GatewayToSiloGbps:0.00} ({r.GatewayToSiloBytesPerFrame:N0} B) | {r.SiloToRedisGbps:0.00} ({r.SiloToRedisBytesPerFrame:N0} B) | {r.RedisToConsumersGbps:0.00} ({r.RedisToConsumersBytesPerFrame:N0} B) |"));
        }

        t.AppendLine();
        t.AppendLine("### Memory");
        t.AppendLine();
        t.AppendLine(Inv($"Per node: the process's peak RSS in the real-time run divided by its {m.Calls:N0} calls, times the node's calls (includes the process baseline, so it leans high); after the slash, memory per idle live call times the node's calls (a floor: a call under traffic holds more than a silent one). Redis: audio entries held (live calls half-way through their {a.CallSeconds:0} s, plus calls ended within the {a.TtlSeconds} s TTL) x bytes per entry, plus {a.PerCallKeyBytes} B of cursor and meta per call held, plus `ingest:calls` at its MAXLEN ({a.CallsMaxLength:N0} x {a.CallsEntryBytes} B)."));
        t.AppendLine();
        t.AppendLine("| calls | kHz | per gateway node MB (traffic / idle) | per silo node MB (traffic / idle) | audio entries held | Redis bytes per entry | Redis total GB | per shard GB |");
        t.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
        {
            t.AppendLine(Inv($"| {r.Calls:N0} | {r.SampleRate / 1000} | {r.GatewayMemoryPerNodeMb:N0} / {r.GatewayIdleMemoryPerNodeMb:N0} | {r.SiloMemoryPerNodeMb:N0} / {r.SiloIdleMemoryPerNodeMb:N0} | {r.AudioEntries:N0} | {r.RedisBytesPerEntry:N0} | {r.RedisMemoryGb:N0} | {r.MemoryPerShardGb:0.0} |"));
        }

        RenderCeilings(t, m, a, rows);

        if (rows.Any(r => r.RelayNodesByCpu is not null))
        {
            t.AppendLine();
            t.AppendLine("### Against the relay (same run, no Orleans, no fenced script)");
            t.AppendLine();
            t.AppendLine("| calls | kHz | gateway + silo nodes by CPU | relay nodes by CPU | Redis shards by CPU | under the relay |");
            t.AppendLine("|---:|---:|---:|---:|---:|---:|");
            foreach (var r in rows)
            {
                t.AppendLine(Inv($"| {r.Calls:N0} | {r.SampleRate / 1000} | {r.GatewayNodesByCpu + r.SiloNodesByCpu} | {r.RelayNodesByCpu} | {r.ShardsByCpu} | {r.RelayShardsByCpu} |"));
            }
        }

        return t.ToString();
    }

    private static void RenderCeilings(StringBuilder t, MeasuredInputs m, CapacityAssumptions a, List<CapacityRow> rows)
    {
        t.AppendLine();
        t.AppendLine("### Ceilings");
        t.AppendLine();
        var g = CapacityModel.Gateway(m, a);
        var (limit, calls) = g.PerNode;
        var (sourceLimit, sourceCalls) = g.PerSource;
        t.AppendLine("**Ingress connections per gateway node.** Calls are inbound WebSockets, one connection each, so no outbound port range is spent on them; the per-node limits are CPU, memory, the gateway's own cap and file descriptors, and from any one source address the per-address cap and that source's ports.");
        t.AppendLine();
        t.AppendLine("| limit | calls per gateway node |");
        t.AppendLine("|---|---:|");
        t.AppendLine(Inv($"| CPU ({a.NodeCores:0.#} vCPU at {a.NodeCpuTarget:P0}, {m.GatewayUsPerFrame:0.0} µs per frame, measured at {m.SampleRate / 1000} kHz) | {g.ByCpu:N0} |"));
        t.AppendLine(Inv($"| memory ({a.NodeMemoryGb:0.#} GB at {a.NodeMemoryTarget:P0}, {m.GatewayPeakRssMb * 1024 / m.Calls:N0} KB per call: peak RSS / calls under traffic) | {g.ByMemory:N0} |"));
        t.AppendLine(Inv($"| `MAX_CONNECTIONS` (gateway setting) | {g.MaxConnections:N0} |"));
        t.AppendLine(Inv($"| file descriptors (`ulimit -n`) | {g.FileDescriptors:N0} |"));
        t.AppendLine(Inv($"| from one source address: `MAX_CONNECTIONS_PER_IP` (gateway setting) | {g.PerSourceIp:N0} |"));
        t.AppendLine(Inv($"| from one source address: its ephemeral ports towards one gateway address:port | {g.EphemeralPorts:N0} |"));
        t.AppendLine();
        t.AppendLine(Inv($"Binds first on a node: **{limit}, {calls:N0} calls**. From one source address: **{sourceLimit}, {sourceCalls:N0} calls** per gateway node, so a node fills from {Math.Ceiling(calls / sourceCalls):0} or more source addresses (Exotel's egress addresses, or the proxies in front when they open their own connections)."));
        t.AppendLine();

        t.AppendLine(Inv($"**Orleans cluster size.** Every gateway is an Orleans client connected to every silo; silos connect to each other. Assumed proven size: {a.OrleansMaxSilos} silos (`--orleans-max-silos`)."));
        t.AppendLine();
        t.AppendLine("| calls | silos (largest rate) | gateways | gateway → silo connections | silo ↔ silo connections | within the assumed size |");
        t.AppendLine("|---:|---:|---:|---:|---:|---|");
        foreach (var byCalls in rows.GroupBy(r => r.Calls))
        {
            var silos = byCalls.Max(r => r.SiloNodes);
            var gateways = byCalls.Max(r => r.GatewayNodes);
            var fits = silos <= a.OrleansMaxSilos ? "yes" : Inv($"no: {Math.Ceiling((double)silos / a.OrleansMaxSilos):0} clusters");
            t.AppendLine(Inv($"| {byCalls.Key:N0} | {silos:N0} | {gateways:N0} | {(long)silos * gateways:N0} | {(long)silos * (silos - 1) / 2:N0} | {fits} |"));
        }

        t.AppendLine();
        t.AppendLine(Inv($"**Redis shard count.** With {a.ReplicasPerShard} replica per shard; the Redis Cluster specification scales to about {a.RedisMaxNodes:N0} nodes; 16,384 hash slots."));
        t.AppendLine();
        t.AppendLine("| calls | shards (largest rate) | nodes with replicas | share of the node limit | hash slots per shard |");
        t.AppendLine("|---:|---:|---:|---:|---:|");
        foreach (var byCalls in rows.GroupBy(r => r.Calls))
        {
            var shards = byCalls.Max(r => r.Shards);
            var nodes = shards * (1 + a.ReplicasPerShard);
            t.AppendLine(Inv($"| {byCalls.Key:N0} | {shards:N0} | {nodes:N0} | {(double)nodes / a.RedisMaxNodes:P0} | {16384 / Math.Max(1, shards):N0} |"));
        }

        t.AppendLine();
        t.AppendLine(Inv($"**The single `ingest:calls` slot.** One key, so one hash slot on one shard however many shards there are: start and stop plus {a.LifecycleExtraPerCall:0.#} dtmf/mark/gap entries per call of {a.CallSeconds:0} s, each appended by a fenced copy script (docs/OPERATIONS.md \"Redis Cluster\"), plus one script per call entering `{{ingest:calls}}:open` and one touch per live call every {a.OpenSetTouchSeconds:0} s; a script costs {a.CopyScriptFactor:0.#} lifecycle XADDs."));
        t.AppendLine();
        t.AppendLine("| calls | lifecycle entries/s | copy scripts/s | Redis µs per script | entries/s one shard takes at its CPU target (bare XADD) | share of that shard | history kept by MAXLEN | memory at MAXLEN GB |");
        t.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|");
        string? source = null;
        foreach (var c in a.Calls)
        {
            var s = CapacityModel.CallsStream(m, a, c);
            source = s.WriteUsSource;
            t.AppendLine(Inv($"| {c:N0} | {s.EntriesPerSecond:N0} | {s.ScriptsPerSecond:N0} | {s.ScriptUs:0.0} | {s.ShardEntriesPerSecond:N0} | {s.ShardShare:P1} | {Duration(s.HistorySeconds)} | {s.MemoryGb:0.00} |"));
        }

        t.AppendLine();
        t.AppendLine(Inv($"Redis µs per entry: {source}."));
    }

    private static string Duration(double seconds) =>
        seconds >= 7200 ? Inv($"{seconds / 3600:0.#} h") : seconds >= 120 ? Inv($"{seconds / 60:0.#} min") : Inv($"{seconds:0} s");

    private static string Inv(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
