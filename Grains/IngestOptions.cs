namespace Ingest.Grains;

/// <summary>How the per-call grains publish. Every default is sized for Exotel's ~100 ms frames.</summary>
public sealed class IngestOptions
{
    /// <summary>Approximate cap on the shared <c>ingest:calls</c> lifecycle stream.</summary>
    public int CallsStreamMaxLength { get; set; } = 1_000_000;

    /// <summary>Entries a call may hold unwritten; beyond it frames are counted and recorded as a gap while Redis is away, and everything else is pushed back. Default: 60 s of 100 ms frames.</summary>
    public int BufferLimit { get; set; } = 600;

    /// <summary>Bytes one call may hold unwritten (audio, and an estimate for every other entry); beyond it, like <see cref="BufferLimit"/> (bounds memory in bytes, CONTRACT §7).</summary>
    public long BufferBytes { get; set; } = 16L * 1024 * 1024;

    /// <summary>Bytes all calls of this silo may hold unwritten together; beyond it, like <see cref="BufferLimit"/>.</summary>
    public long SiloBufferBytes { get; set; } = 384L * 1024 * 1024;

    /// <summary>Most entries written in one Redis round trip.</summary>
    public int MaxBatch { get; set; } = 256;

    /// <summary>
    /// INGEST_AUDIO_TTL_SECONDS: a stream's keys expire this long after its stop, or after its last write (or its
    /// gateway's last heartbeat) if it never stops. A live call pushes it forward every <see cref="ExpiryRefreshInterval"/>,
    /// quiet stretches included, so its keys never expire while it is live. Live streams are not trimmed by length: a
    /// long call keeps its head until its keys expire after the stop (docs/OPERATIONS.md "Retention").
    /// </summary>
    public TimeSpan StreamTtl { get; set; } = TimeSpan.FromSeconds(900);

    /// <summary>
    /// How often a live call pushes its keys' expiry forward (with its writes, or from its gateway's heartbeat while
    /// quiet): a tenth of the retention time, 1 to 30 s. Each push is a script, so this sets how many a live call costs.
    /// </summary>
    public TimeSpan ExpiryRefreshInterval => TimeSpan.FromSeconds(Math.Clamp(Math.Floor(StreamTtl.TotalSeconds / 10), 1, 30));

    /// <summary>The expiry a live call's keys get with each push: the retention plus the push interval.</summary>
    public TimeSpan LiveExpiry => StreamTtl + ExpiryRefreshInterval;

    /// <summary>How long a stopped call's cursor and lifecycle entries are kept while their copy to ingest:calls waits.</summary>
    public TimeSpan ParkedRetention { get; set; } = TimeSpan.FromDays(1);

    /// <summary>
    /// INGEST_MAX_EVENTS_PER_CALL: a call's dtmf and mark entries together, and its gap entries, are each bounded by
    /// this (CONTRACT §7); past it events are counted and dropped and missing frames only summed in the stop.
    /// </summary>
    public long MaxEventsPerCall { get; set; } = 10_000;

    /// <summary>
    /// Longest a grain waits for one batch write before it treats Redis as away and holds the batch (the write may still
    /// land later; the cursor fence and the reconciliation on conflict make that harmless). Well below the gateway's
    /// grain-call timeout (CallGrainTimeout, 3 s; IngestOptionsValidator checks it), so a frozen Redis never makes grain calls time out (which would re-present every call).
    /// </summary>
    public TimeSpan WriteTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How often a call with buffered items retries Redis.</summary>
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// A started call that hears nothing from its connection for this long is ended by the grain with reason
    /// <c>gateway_lost</c> (its gateway died). Gateways call every live call's grain at least every 10 s, even when
    /// the call is quiet, so this only has to outlast that heartbeat and a silo failover.
    /// </summary>
    public TimeSpan OrphanTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// INGEST_REDIS_WAIT_REPLICAS: 0 (default) acknowledges a batch once its Redis master has it; N &gt; 0 only once N
    /// replicas have it too (Redis WAIT), so a master failover cannot lose audio the gateway was told is safe. A batch
    /// not confirmed within <see cref="WaitTimeout"/> is held and settled later, like a write to a slow Redis.
    /// </summary>
    public int WaitReplicas { get; set; }

    /// <summary>INGEST_REDIS_WAIT_TIMEOUT_MS: how long one write waits for its replicas (below <see cref="WriteTimeout"/>).</summary>
    public TimeSpan WaitTimeout { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How often each silo looks for calls whose lifecycle nobody has looked after (LifecycleSweeper).</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A live call's grain touches the open-lifecycle set every 30 s; one silent for this long is swept.</summary>
    public TimeSpan SweepAfter { get; set; } = TimeSpan.FromSeconds(120);

    /// <summary>
    /// The same limits for the warm-up's calls (<see cref="Interfaces.WarmupCalls"/>): their keys expire seconds after
    /// their stop, and their own calls stream keeps only the last few thousand entries.
    /// </summary>
    public IngestOptions ForWarmup()
    {
        var warmup = (IngestOptions)MemberwiseClone();
        warmup.StreamTtl = Interfaces.WarmupCalls.Retention;
        warmup.CallsStreamMaxLength = 10_000;
        return warmup;
    }
}
