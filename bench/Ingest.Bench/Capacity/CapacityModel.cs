namespace Ingest.Bench.Capacity;

/// <summary>Nodes, shards, bandwidth and memory for one number of concurrent calls at one sample rate.</summary>
public sealed record CapacityRow
{
    public required int Calls { get; init; }

    public required int SampleRate { get; init; }

    public required int FrameBytes { get; init; }

    public required double FramesPerSecond { get; init; }

    public required double GatewayCores { get; init; }

    public required int GatewayNodesByCpu { get; init; }

    public required int GatewayNodesByMemory { get; init; }

    public required int GatewayNodesByConnections { get; init; }

    public int GatewayNodes => Math.Max(GatewayNodesByCpu, Math.Max(GatewayNodesByMemory, GatewayNodesByConnections));

    public required double SiloCores { get; init; }

    public required int SiloNodesByCpu { get; init; }

    public required int SiloNodesByMemory { get; init; }

    public int SiloNodes => Math.Max(SiloNodesByCpu, SiloNodesByMemory);

    public required double RedisCores { get; init; }

    public required int ShardsByCpu { get; init; }

    public required double RedisMemoryGb { get; init; }

    public required int ShardsByMemory { get; init; }

    public int Shards => Math.Max(ShardsByCpu, ShardsByMemory);

    public double MemoryPerShardGb => RedisMemoryGb / Shards;

    /// <summary>The process's peak RSS per call in the real-time run, times the node's calls (includes the baseline: leans high).</summary>
    public required double GatewayMemoryPerNodeMb { get; init; }

    public required double SiloMemoryPerNodeMb { get; init; }

    /// <summary>Memory per idle live call times the node's calls: what the calls alone cost when silent (a floor).</summary>
    public required double GatewayIdleMemoryPerNodeMb { get; init; }

    public required double SiloIdleMemoryPerNodeMb { get; init; }

    /// <summary>Bytes per frame on each link, network overhead included.</summary>
    public required double InboundBytesPerFrame { get; init; }

    public required double GatewayToSiloBytesPerFrame { get; init; }

    public required double SiloToRedisBytesPerFrame { get; init; }

    public required double RedisToConsumersBytesPerFrame { get; init; }

    public double InboundGbps => Gbps(InboundBytesPerFrame);

    public double GatewayToSiloGbps => Gbps(GatewayToSiloBytesPerFrame);

    public double SiloToRedisGbps => Gbps(SiloToRedisBytesPerFrame);

    public double RedisToConsumersGbps => Gbps(RedisToConsumersBytesPerFrame);

    /// <summary>Redis bytes per audio entry used (measured, scaled to this frame size, or the stated overhead).</summary>
    public required double RedisBytesPerEntry { get; init; }

    /// <summary>Audio entries held in Redis at steady state: live calls half-way through plus ended calls within the TTL.</summary>
    public required double AudioEntries { get; init; }

    public int? RelayNodesByCpu { get; init; }

    public int? RelayShardsByCpu { get; init; }

    private double Gbps(double bytesPerFrame) => FramesPerSecond * bytesPerFrame * 8 / 1e9;
}

/// <summary>
/// How many calls one gateway node holds by each of its own limits (the smallest binds), and how many it accepts from
/// any one source address (Exotel's egress address, or a proxy that opens its own connections).
/// </summary>
public sealed record GatewayCeiling(double ByCpu, double ByMemory, int MaxConnections, int FileDescriptors, int PerSourceIp, int EphemeralPorts)
{
    public (string Limit, double Calls) PerNode =>
        new (string, double)[] { ("CPU", ByCpu), ("memory", ByMemory), ("MAX_CONNECTIONS", MaxConnections), ("file descriptors", FileDescriptors) }.MinBy(x => x.Item2);

    public (string Limit, double Calls) PerSource =>
        PerSourceIp <= EphemeralPorts ? ("MAX_CONNECTIONS_PER_IP", PerSourceIp) : ("ephemeral ports", EphemeralPorts);
}

/// <summary>The lifecycle stream <c>ingest:calls</c>: one key, so one slot, so one shard whatever the cluster's size.</summary>
public sealed record CallsStreamCeiling(int Calls, double EntriesPerSecond, double WriteUs, string WriteUsSource, double ShardEntriesPerSecond, double HistorySeconds, double MemoryGb)
{
    /// <summary>Copy scripts per second on the shard: one per entry copied, one per call entering the open set, one touch per call per interval.</summary>
    public double ScriptsPerSecond { get; init; }

    /// <summary>Redis CPU per copy script (µs).</summary>
    public double ScriptUs { get; init; }

    public double ShardShare => ScriptsPerSecond * ScriptUs / (ShardEntriesPerSecond * WriteUs);
}

/// <summary>
/// The capacity arithmetic, kept free of I/O so it can be checked by hand: measured per-frame costs times the frames of
/// a given load, divided by what one node or shard is planned to carry.
/// </summary>
public static class CapacityModel
{
    public static CapacityRow Row(MeasuredInputs m, CapacityAssumptions a, int calls, int sampleRate)
    {
        var framesPerCallPerSecond = 1000.0 / a.CadenceMs;
        var fps = calls * framesPerCallPerSecond;
        var frameBytes = sampleRate * 2 * a.CadenceMs / 1000;
        var nodeCores = a.NodeCores * a.NodeCpuTarget;
        var nodeMemoryMb = a.NodeMemoryGb * 1024 * a.NodeMemoryTarget;

        var gatewayCores = fps * m.GatewayUsPerFrame / 1e6;
        var siloCores = fps * m.SiloUsPerFrame / 1e6;
        var redisCores = fps * m.RedisUsPerFrame / 1e6;

        var gatewayByCpu = Nodes(gatewayCores, nodeCores);
        var gatewayByMemory = Nodes(calls, CallsPerNodeByMemory(m.GatewayPeakRssMb, m.Calls, nodeMemoryMb));
        var gatewayByConnections = Nodes(calls, Math.Min(a.MaxConnections, a.FileDescriptors));
        var gatewayNodes = Math.Max(gatewayByCpu, Math.Max(gatewayByMemory, gatewayByConnections));
        var siloByCpu = Nodes(siloCores, nodeCores);
        var siloByMemory = Nodes(calls, CallsPerNodeByMemory(m.SiloPeakRssMb, m.Calls, nodeMemoryMb));
        var siloNodes = Math.Max(siloByCpu, siloByMemory);

        var bytesPerEntry = RedisBytesPerEntry(m, a, frameBytes);
        var entries = AudioEntries(a, calls);
        var callsInRedis = calls * (1 + a.TtlSeconds / a.CallSeconds);
        var redisBytes = entries * bytesPerEntry + callsInRedis * a.PerCallKeyBytes + (double)a.CallsMaxLength * a.CallsEntryBytes;
        var redisGb = redisBytes / (1024.0 * 1024 * 1024);
        var shardsByCpu = Nodes(redisCores, a.ShardCpuTarget);
        var shardsByMemory = Nodes(redisGb, a.ShardMemoryGb * a.ShardMemoryTarget);

        var net = 1 + a.NetworkOverhead;
        var base64 = 4 * ((frameBytes + 2) / 3);
        return new CapacityRow
        {
            Calls = calls,
            SampleRate = sampleRate,
            FrameBytes = frameBytes,
            FramesPerSecond = fps,
            GatewayCores = gatewayCores,
            GatewayNodesByCpu = gatewayByCpu,
            GatewayNodesByMemory = gatewayByMemory,
            GatewayNodesByConnections = gatewayByConnections,
            SiloCores = siloCores,
            SiloNodesByCpu = siloByCpu,
            SiloNodesByMemory = siloByMemory,
            RedisCores = redisCores,
            ShardsByCpu = shardsByCpu,
            RedisMemoryGb = redisGb,
            ShardsByMemory = shardsByMemory,
            GatewayMemoryPerNodeMb = m.GatewayPeakRssMb / m.Calls * calls / gatewayNodes,
            SiloMemoryPerNodeMb = m.SiloPeakRssMb / m.Calls * calls / siloNodes,
            GatewayIdleMemoryPerNodeMb = m.GatewayPerCall.Kb / 1024 * calls / gatewayNodes,
            SiloIdleMemoryPerNodeMb = m.SiloPerCall.Kb / 1024 * calls / siloNodes,
            InboundBytesPerFrame = (base64 + a.EnvelopeBytes + a.WebSocketHeaderBytes) * net,
            GatewayToSiloBytesPerFrame = (frameBytes + a.OrleansMessageBytes) * net,
            SiloToRedisBytesPerFrame = (frameBytes + a.RedisCommandBytes) * net,
            RedisToConsumersBytesPerFrame = a.ReadersPerStream * (frameBytes + a.ConsumerEntryOverheadBytes) * net,
            RedisBytesPerEntry = bytesPerEntry,
            AudioEntries = entries,
            RelayNodesByCpu = m.Relay is { } r ? Nodes(fps * r.RelayUsPerFrame / 1e6, nodeCores) : null,
            RelayShardsByCpu = m.Relay is { } rr ? Nodes(fps * rr.RedisUsPerFrame / 1e6, a.ShardCpuTarget) : null,
        };
    }

    /// <summary>
    /// Audio entries in Redis at steady state: a live call is on average half-way through (L/2 of audio), and the calls
    /// that ended within the TTL (calls / L per second, for TTL seconds) hold a whole call each (live streams are not trimmed).
    /// </summary>
    public static double AudioEntries(CapacityAssumptions a, int calls)
    {
        var framesPerSecond = 1000.0 / a.CadenceMs;
        var live = calls * (a.CallSeconds / 2 * framesPerSecond);
        var ended = calls / a.CallSeconds * a.TtlSeconds * (a.CallSeconds * framesPerSecond);
        return live + ended;
    }

    /// <summary>The file's measurement scaled to this frame size (stream overhead grows with the payload), else the stated overhead.</summary>
    public static double RedisBytesPerEntry(MeasuredInputs m, CapacityAssumptions a, int frameBytes) =>
        m.RedisBytesPerEntry is { } measured && m.FrameBytes > 0
            ? measured * frameBytes / m.FrameBytes
            : frameBytes * (1 + a.RedisEntryOverheadRatio) + a.RedisEntryOverheadBytes;

    /// <summary>
    /// Calls a node's memory holds, scaling the process's peak RSS in the real-time run by its calls. That includes the
    /// process's baseline, so it leans high; the idle figure alone would lean low, since a call under traffic holds more
    /// (receive buffers, unsent frames, a GC heap sized by the allocation rate) than a silent one.
    /// </summary>
    public static double CallsPerNodeByMemory(double peakMb, int benchCalls, double nodeMemoryMb) =>
        peakMb <= 0 ? double.PositiveInfinity : nodeMemoryMb / (peakMb / benchCalls);

    public static GatewayCeiling Gateway(MeasuredInputs m, CapacityAssumptions a) => new(
        a.NodeCores * a.NodeCpuTarget / (1000.0 / a.CadenceMs * m.GatewayUsPerFrame / 1e6),
        CallsPerNodeByMemory(m.GatewayPeakRssMb, m.Calls, a.NodeMemoryGb * 1024 * a.NodeMemoryTarget),
        a.MaxConnections,
        a.FileDescriptors,
        a.MaxConnectionsPerIp,
        a.EphemeralPorts);

    public static CallsStreamCeiling CallsStream(MeasuredInputs m, CapacityAssumptions a, int calls)
    {
        var (us, source) = a.LifecycleWriteUs is { } given ? (given, "--lifecycle-write-us")
            : m.Relay is { } r ? (r.RedisUsPerFrame, $"the relay's Redis CPU per frame (one bare XADD each), {Path.GetFileName(r.Source)}")
            : (CapacityAssumptions.LifecycleWriteUsFallback, "assumed: no relay file given");
        var perSecond = calls / a.CallSeconds * (2 + a.LifecycleExtraPerCall);
        var scripts = perSecond + (calls / a.CallSeconds) + (calls / a.OpenSetTouchSeconds);
        return new CallsStreamCeiling(calls, perSecond, us, source, a.ShardCpuTarget * 1e6 / us, a.CallsMaxLength / perSecond, (double)a.CallsMaxLength * a.CallsEntryBytes / (1024.0 * 1024 * 1024))
        {
            ScriptsPerSecond = scripts,
            ScriptUs = us * a.CopyScriptFactor,
        };
    }

    private static int Nodes(double need, double perNode) => need <= 0 ? 0 : (int)Math.Ceiling(need / perNode - 1e-9);
}
