using System.Diagnostics.Metrics;
using Ingest.Grains.Interfaces;

namespace Ingest.Grains;

/// <summary>Silo-side instruments: what reached Redis and what did not. <see cref="Warmup"/> counts the warm-up's calls, unexported.</summary>
internal sealed class GrainMetrics
{
    public static readonly GrainMetrics Live = new(IngestMeter.Live);

    public static readonly GrainMetrics Warmup = new(IngestMeter.Warmup);

    private GrainMetrics(IngestInstruments shared)
    {
        // The same facts as the gateway's, under the same names (one instrument, IngestMeter): the scrape target tells which process.
        FramesPublished = shared.FramesPublished;
        Duplicates = shared.Duplicates;
        Gaps = shared.Gaps;
        MissingFrames = shared.MissingFrames;
        var meter = shared.Meter;
        Overflowed = meter.CreateCounter<long>("ingest.silo.frames.overflowed", "{frame}", "Frames that did not fit the per-call buffer while Redis was unreachable.");
        Pushback = meter.CreateCounter<long>("ingest.silo.pushback", "{call}", "Appends refused because Redis was slow and the call's buffer was full (the gateway resends).");
        Malformed = meter.CreateCounter<long>("ingest.silo.items.malformed", "{item}", "Items dropped as malformed by the grain (a sequence number absurdly far ahead).");
        RedisFailures = meter.CreateCounter<long>("ingest.silo.redis.failures", "{error}", "Failed Redis batch writes (retried).");
        WriteLatency = meter.CreateHistogram<double>("ingest.silo.redis.write.latency", "s", "Time of one batch write to Redis.");
        NotReplicated = meter.CreateCounter<long>("ingest.silo.redis.not_replicated", "{write}", "Batch writes the replicas did not confirm within INGEST_REDIS_WAIT_TIMEOUT_MS (held and settled later).");
        Swept = meter.CreateCounter<long>("ingest.silo.lifecycle.swept", "{call}", "Calls whose grain the lifecycle sweeper woke because nobody had looked after them (their silo and gateway gone).");
        EventsDropped = meter.CreateCounter<long>("ingest.silo.events.dropped", "{event}", "dtmf and mark events dropped past INGEST_MAX_EVENTS_PER_CALL.");
        CopyFailures = meter.CreateCounter<long>("ingest.silo.lifecycle.copy_failures", "{attempt}", "Attempts to copy lifecycle entries to ingest:calls that made no progress (retried).");
        LifecycleLost = meter.CreateCounter<long>("ingest.silo.lifecycle.lost", "{entry}", "Lifecycle entries that could no longer be copied to ingest:calls (the call's own keys had lost them).");
        Buffered = meter.CreateUpDownCounter<long>("ingest.silo.buffered", "{entry}", "Entries waiting for Redis.");
    }

    public Counter<long> FramesPublished { get; }

    public Counter<long> Duplicates { get; }

    public Counter<long> Gaps { get; }

    public Counter<long> MissingFrames { get; }

    public Counter<long> Overflowed { get; }

    public Counter<long> Pushback { get; }

    public Counter<long> Malformed { get; }

    public Counter<long> RedisFailures { get; }

    public Histogram<double> WriteLatency { get; }

    public Counter<long> NotReplicated { get; }

    public Counter<long> Swept { get; }

    public Counter<long> EventsDropped { get; }

    public Counter<long> CopyFailures { get; }

    public Counter<long> LifecycleLost { get; }

    public UpDownCounter<long> Buffered { get; }

    /// <summary>Touches every counter so a scrape finds each series at 0 from the start.</summary>
    public static void Initialize()
    {
        var live = Live;
        foreach (var counter in new[] { live.FramesPublished, live.Duplicates, live.Gaps, live.MissingFrames, live.Overflowed, live.RedisFailures, live.Pushback, live.Malformed, live.NotReplicated, live.Swept, live.EventsDropped, live.CopyFailures, live.LifecycleLost })
        {
            counter.Add(0);
        }

        live.Buffered.Add(0);
    }
}
