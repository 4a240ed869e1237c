using System.Diagnostics.Metrics;
using Ingest.Grains.Interfaces;

namespace Ingest.Grains;

/// <summary>Silo-side instruments: what reached Redis and what did not.</summary>
internal static class GrainMetrics
{
    private static readonly Meter Meter = new(IngestMeter.Name);

    // The same facts as the gateway's, under the same names (one instrument, IngestMeter): the scrape target tells which process.
    public static Counter<long> FramesPublished => IngestMeter.FramesPublished;
    public static Counter<long> Duplicates => IngestMeter.Duplicates;
    public static Counter<long> Gaps => IngestMeter.Gaps;
    public static Counter<long> MissingFrames => IngestMeter.MissingFrames;
    public static readonly Counter<long> Overflowed = Meter.CreateCounter<long>("ingest.silo.frames.overflowed", "{frame}", "Frames that did not fit the per-call buffer while Redis was unreachable.");
    public static readonly Counter<long> Pushback = Meter.CreateCounter<long>("ingest.silo.pushback", "{call}", "Appends refused because Redis was slow and the call's buffer was full (the gateway resends).");
    public static readonly Counter<long> Malformed = Meter.CreateCounter<long>("ingest.silo.items.malformed", "{item}", "Items dropped as malformed by the grain (a sequence number absurdly far ahead).");
    public static readonly Counter<long> RedisFailures = Meter.CreateCounter<long>("ingest.silo.redis.failures", "{error}", "Failed Redis batch writes (retried).");
    public static readonly Histogram<double> WriteLatency = Meter.CreateHistogram<double>("ingest.silo.redis.write.latency", "s", "Time of one batch write to Redis.");
    public static readonly Counter<long> NotReplicated = Meter.CreateCounter<long>("ingest.silo.redis.not_replicated", "{write}", "Batch writes the replicas did not confirm within INGEST_REDIS_WAIT_TIMEOUT_MS (held and settled later).");
    public static readonly Counter<long> Swept = Meter.CreateCounter<long>("ingest.silo.lifecycle.swept", "{call}", "Calls whose grain the lifecycle sweeper woke because nobody had looked after them (their silo and gateway gone).");
    /// <summary>Touches every counter so a scrape finds each series at 0 from the start.</summary>
    public static void Initialize()
    {
        foreach (var counter in new[] { FramesPublished, Duplicates, Gaps, MissingFrames, Overflowed, RedisFailures, Pushback, Malformed, NotReplicated, Swept })
        {
            counter.Add(0);
        }

        Buffered.Add(0);
    }

    public static readonly UpDownCounter<long> Buffered = Meter.CreateUpDownCounter<long>("ingest.silo.buffered", "{entry}", "Entries waiting for Redis.");
}
