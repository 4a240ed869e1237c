using System.Globalization;

namespace Ingest.Bench.Capacity;

/// <summary>
/// What the capacity model assumes rather than measures. Every value is a command-line option of
/// <c>Ingest.Bench capacity</c> with the default below, and every report prints the values it used.
/// </summary>
public sealed record CapacityAssumptions
{
    public IReadOnlyList<int> Calls { get; init; } = [10_000, 100_000];

    public IReadOnlyList<int> SampleRates { get; init; } = [8000, 16000];

    /// <summary>Exotel sends one media message every 100 ms.</summary>
    public int CadenceMs { get; init; } = 100;

    public double NodeCores { get; init; } = 4;

    public double NodeCpuTarget { get; init; } = 0.6;

    public double NodeMemoryGb { get; init; } = 8;

    public double NodeMemoryTarget { get; init; } = 0.6;

    /// <summary>Redis runs commands on one thread: a shard is one core.</summary>
    public double ShardCpuTarget { get; init; } = 0.6;

    public double ShardMemoryGb { get; init; } = 12;

    /// <summary>0.67 is docs/OPERATIONS.md's "× 1.5 headroom" (alert at 0.8 of maxmemory).</summary>
    public double ShardMemoryTarget { get; init; } = 0.67;

    public int ReplicasPerShard { get; init; } = 1;

    /// <summary>Exotel media JSON around the base64 payload: event, stream_sid, sequence_number, media.chunk/timestamp.</summary>
    public int EnvelopeBytes { get; init; } = 100;

    /// <summary>Client-to-server WebSocket frame header: 2 bytes, 2 of extended length, 4 of mask.</summary>
    public int WebSocketHeaderBytes { get; init; } = 8;

    /// <summary>TCP/IP (and TLS record) headers on every link, as a share of the payload.</summary>
    public double NetworkOverhead { get; init; } = 0.05;

    /// <summary>Gateway → silo per frame beyond the PCM: Orleans message header, the serialised batch, the response.</summary>
    public int OrleansMessageBytes { get; init; } = 200;

    /// <summary>Silo → Redis per frame beyond the PCM: EVALSHA, the four keys, the cursor fields, seq/ts, the reply.</summary>
    public int RedisCommandBytes { get; init; } = 400;

    /// <summary>Redis → consumer per entry beyond the PCM in an XREAD reply: the id, field names, seq and ts.</summary>
    public int ConsumerEntryOverheadBytes { get; init; } = 80;

    public int ReadersPerStream { get; init; } = 1;

    /// <summary>INGEST_AUDIO_TTL_SECONDS: how long an ended call's audio stays.</summary>
    public int TtlSeconds { get; init; } = 900;

    public double CallSeconds { get; init; } = 180;

    /// <summary>Fallback when the results file has no measured bytes per audio entry (docs/OPERATIONS.md's model).</summary>
    public double RedisEntryOverheadRatio { get; init; } = 0.20;

    public int RedisEntryOverheadBytes { get; init; } = 60;

    /// <summary>A call's <c>ingest:cursor:{id}</c> and <c>ingest:meta:{id}</c> hashes, which live as long as its audio.</summary>
    public int PerCallKeyBytes { get; init; } = 1024;

    public int CallsEntryBytes { get; init; } = 250;

    public int CallsMaxLength { get; init; } = 1_000_000;

    /// <summary>dtmf, mark and gap entries per call on average, besides its start and stop.</summary>
    public double LifecycleExtraPerCall { get; init; } = 2;

    /// <summary>Redis CPU per lifecycle XADD; null: the relay's Redis CPU per frame (one bare XADD each), else 12 µs.</summary>
    public double? LifecycleWriteUs { get; init; }

    public const double LifecycleWriteUsFallback = 12;

    /// <summary>
    /// Redis CPU of one copy script on the ingest:calls shard, in lifecycle XADDs (docs/OPERATIONS.md "Redis Cluster":
    /// a fenced script, like the batch's: 13.6 µs per EVALSHA against 4.2 µs per XADD in bench run 20261201T123458Z).
    /// </summary>
    public double CopyScriptFactor { get; init; } = 3;

    /// <summary>How often a live call's grain touches {ingest:calls}:open (one copy script with no entries), seconds.</summary>
    public double OpenSetTouchSeconds { get; init; } = 30;

    /// <summary>The gateway's MAX_CONNECTIONS default.</summary>
    public int MaxConnections { get; init; } = 10_000;

    /// <summary>The gateway's MAX_CONNECTIONS_PER_IP default.</summary>
    public int MaxConnectionsPerIp { get; init; } = 4000;

    /// <summary>Linux's default ip_local_port_range 32768–60999: connections one source IP can open to one address:port.</summary>
    public int EphemeralPorts { get; init; } = 28_232;

    public int FileDescriptors { get; init; } = 1_048_576;

    /// <summary>Not a documented Orleans limit (there is none): the size this model treats as proven practice.</summary>
    public int OrleansMaxSilos { get; init; } = 100;

    /// <summary>Redis Cluster specification: linear scaling to about 1000 nodes.</summary>
    public int RedisMaxNodes { get; init; } = 1000;

    /// <summary>The options, their current value and meaning, in the order the report prints them.</summary>
    public IReadOnlyList<(string Option, string Value, string Meaning)> Describe() =>
    [
        ("--calls", string.Join(",", Calls), "concurrent calls of the tables"),
        ("--sample-rates", string.Join(",", SampleRates), "PCM16 mono sample rates of the tables (Hz)"),
        ("--cadence-ms", F(CadenceMs), "one media message per call every this many ms (Exotel: 100)"),
        ("--node-cores", F(NodeCores), "vCPU per gateway node and per silo node"),
        ("--node-cpu-target", F(NodeCpuTarget), "share of a node's cores planned to be busy"),
        ("--node-memory-gb", F(NodeMemoryGb), "memory per gateway or silo node (GB)"),
        ("--node-memory-target", F(NodeMemoryTarget), "share of a node's memory planned to be used"),
        ("--shard-cpu-target", F(ShardCpuTarget), "share of a shard's one core planned to be busy (Redis executes commands on one thread)"),
        ("--shard-memory-gb", F(ShardMemoryGb), "memory per Redis shard (GB)"),
        ("--shard-memory-target", F(ShardMemoryTarget), "share of a shard's memory planned to be used (0.67 = OPERATIONS.md's x1.5 headroom)"),
        ("--replicas", F(ReplicasPerShard), "replicas per shard (count towards the cluster's node total)"),
        ("--envelope-bytes", F(EnvelopeBytes), "Exotel media JSON around the base64 payload (bytes)"),
        ("--ws-header-bytes", F(WebSocketHeaderBytes), "client WebSocket frame header (bytes)"),
        ("--network-overhead", F(NetworkOverhead), "TCP/IP/TLS headers as a share of every link's payload"),
        ("--orleans-message-bytes", F(OrleansMessageBytes), "gateway->silo bytes per frame beyond the PCM (message, response)"),
        ("--redis-command-bytes", F(RedisCommandBytes), "silo->Redis bytes per frame beyond the PCM (EVALSHA, keys, cursor, reply)"),
        ("--consumer-overhead-bytes", F(ConsumerEntryOverheadBytes), "Redis->consumer bytes per entry beyond the PCM (XREAD reply)"),
        ("--readers-per-stream", F(ReadersPerStream), "consumers reading each audio stream"),
        ("--ttl-seconds", F(TtlSeconds), "INGEST_AUDIO_TTL_SECONDS: an ended call's audio stays this long"),
        ("--call-seconds", F(CallSeconds), "mean call length (s)"),
        ("--entry-overhead-ratio", F(RedisEntryOverheadRatio), "Redis bytes per audio entry beyond the PCM, share (used only when the file has no measurement)"),
        ("--entry-overhead-bytes", F(RedisEntryOverheadBytes), "... plus this many bytes per entry (likewise)"),
        ("--per-call-key-bytes", F(PerCallKeyBytes), "a call's cursor and meta hashes in Redis (bytes)"),
        ("--calls-entry-bytes", F(CallsEntryBytes), "Redis bytes per ingest:calls entry"),
        ("--calls-maxlen", F(CallsMaxLength), "ingest:calls MAXLEN"),
        ("--lifecycle-extra", F(LifecycleExtraPerCall), "dtmf/mark/gap entries per call besides start and stop"),
        ("--copy-script-factor", F(CopyScriptFactor), "Redis CPU of one lifecycle copy script, in lifecycle XADDs"),
        ("--open-touch-seconds", F(OpenSetTouchSeconds), "how often a live call touches {ingest:calls}:open (one copy script)"),
        ("--lifecycle-write-us", LifecycleWriteUs is { } us ? F(us) : "from the relay file", $"Redis CPU per ingest:calls XADD (µs); without a relay file {F(LifecycleWriteUsFallback)}"),
        ("--max-connections", F(MaxConnections), "the gateway's MAX_CONNECTIONS"),
        ("--max-connections-per-ip", F(MaxConnectionsPerIp), "the gateway's MAX_CONNECTIONS_PER_IP"),
        ("--ephemeral-ports", F(EphemeralPorts), "connections one source IP can open to one gateway address:port (Linux default range)"),
        ("--file-descriptors", F(FileDescriptors), "open files per gateway process (ulimit -n)"),
        ("--orleans-max-silos", F(OrleansMaxSilos), "silos per Orleans cluster treated as proven (an assumption: Orleans documents no limit)"),
        ("--redis-max-nodes", F(RedisMaxNodes), "Redis Cluster nodes (primaries + replicas) the Redis Cluster specification scales to"),
    ];

    public static CapacityAssumptions Parse(IReadOnlyList<string> args, out Dictionary<string, string> files)
    {
        var a = new CapacityAssumptions();
        files = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{name} needs a value");
            double D() => double.Parse(Value(), NumberStyles.Float, CultureInfo.InvariantCulture);
            int I() => int.Parse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture);
            IReadOnlyList<int> Ints() => Value().Split(',', StringSplitOptions.RemoveEmptyEntries).Select(v => int.Parse(v, NumberStyles.Integer, CultureInfo.InvariantCulture)).ToList();
            switch (name)
            {
                case "--results" or "--relay" or "--idle-results" or "--results-dir":
                    files[name] = Value();
                    continue;
            }

            a = name switch
            {
                "--calls" => a with { Calls = Ints() },
                "--sample-rates" => a with { SampleRates = Ints() },
                "--cadence-ms" => a with { CadenceMs = I() },
                "--node-cores" => a with { NodeCores = D() },
                "--node-cpu-target" => a with { NodeCpuTarget = D() },
                "--node-memory-gb" => a with { NodeMemoryGb = D() },
                "--node-memory-target" => a with { NodeMemoryTarget = D() },
                "--shard-cpu-target" => a with { ShardCpuTarget = D() },
                "--shard-memory-gb" => a with { ShardMemoryGb = D() },
                "--shard-memory-target" => a with { ShardMemoryTarget = D() },
                "--replicas" => a with { ReplicasPerShard = I() },
                "--envelope-bytes" => a with { EnvelopeBytes = I() },
                "--ws-header-bytes" => a with { WebSocketHeaderBytes = I() },
                "--network-overhead" => a with { NetworkOverhead = D() },
                "--orleans-message-bytes" => a with { OrleansMessageBytes = I() },
                "--redis-command-bytes" => a with { RedisCommandBytes = I() },
                "--consumer-overhead-bytes" => a with { ConsumerEntryOverheadBytes = I() },
                "--readers-per-stream" => a with { ReadersPerStream = I() },
                "--ttl-seconds" => a with { TtlSeconds = I() },
                "--call-seconds" => a with { CallSeconds = D() },
                "--entry-overhead-ratio" => a with { RedisEntryOverheadRatio = D() },
                "--entry-overhead-bytes" => a with { RedisEntryOverheadBytes = I() },
                "--per-call-key-bytes" => a with { PerCallKeyBytes = I() },
                "--calls-entry-bytes" => a with { CallsEntryBytes = I() },
                "--calls-maxlen" => a with { CallsMaxLength = I() },
                "--lifecycle-extra" => a with { LifecycleExtraPerCall = D() },
                "--lifecycle-write-us" => a with { LifecycleWriteUs = D() },
                "--copy-script-factor" => a with { CopyScriptFactor = D() },
                "--open-touch-seconds" => a with { OpenSetTouchSeconds = D() },
                "--max-connections" => a with { MaxConnections = I() },
                "--max-connections-per-ip" => a with { MaxConnectionsPerIp = I() },
                "--ephemeral-ports" => a with { EphemeralPorts = I() },
                "--file-descriptors" => a with { FileDescriptors = I() },
                "--orleans-max-silos" => a with { OrleansMaxSilos = I() },
                "--redis-max-nodes" => a with { RedisMaxNodes = I() },
                _ => throw new ArgumentException($"unknown option {name} (see capacity --help)"),
            };
        }

        if (a.Calls.Count == 0 || a.Calls.Any(c => c < 1) || a.SampleRates.Any(r => r is not (8000 or 16000 or 24000)))
        {
            throw new ArgumentException("--calls: positive counts; --sample-rates: 8000, 16000 or 24000");
        }

        if (a.CadenceMs < 1 || a.NodeCores <= 0 || a.CallSeconds <= 0 || a.ShardMemoryGb <= 0 || a.NodeMemoryGb <= 0
            || new[] { a.NodeCpuTarget, a.NodeMemoryTarget, a.ShardCpuTarget, a.ShardMemoryTarget }.Any(t => t is <= 0 or > 1))
        {
            throw new ArgumentException("--cadence-ms, --node-cores, --call-seconds and the memory sizes must be positive; targets in (0, 1]");
        }

        return a;
    }

    private static string F(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);
}
