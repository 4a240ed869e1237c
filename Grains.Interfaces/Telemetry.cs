using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Ingest.Grains.Interfaces;

/// <summary>The meter every Orleans.Ingest instrument hangs off; exported on /metrics.</summary>
public static class IngestMeter
{
    public const string Name = "Ingest";

    /// <summary>The meter of the start-up warm-up's calls (<see cref="WarmupCalls"/>): the same instruments, never exported.</summary>
    public const string WarmupName = "Ingest.Warmup";

    /// <summary>What real calls count.</summary>
    public static readonly IngestInstruments Live = new(new Meter(Name));

    /// <summary>What the warm-up's calls count: nobody listens, so /metrics shows only real calls.</summary>
    public static readonly IngestInstruments Warmup = new(new Meter(WarmupName));
}

/// <summary>
/// One instrument per fact, shared by both processes: the gateway counts what the grains confirmed, a silo what it
/// wrote. Prometheus tells them apart by the scrape target (job/instance), not by a second name.
/// </summary>
public sealed class IngestInstruments(Meter meter)
{
    /// <summary>The meter each process hangs its own instruments off too.</summary>
    public Meter Meter { get; } = meter;

    public Counter<long> FramesPublished { get; } = meter.CreateCounter<long>("ingest.frames.published", "{frame}", "Audio frames written to Redis Streams (gateway: confirmed by the grains; silo: written by its grains).");

    public Counter<long> Duplicates { get; } = meter.CreateCounter<long>("ingest.frames.duplicates", "{frame}", "Items dropped because their sequence number was already published.");

    public Counter<long> Gaps { get; } = meter.CreateCounter<long>("ingest.gaps", "{gap}", "Gap entries recorded for missing sequence numbers.");

    public Counter<long> MissingFrames { get; } = meter.CreateCounter<long>("ingest.frames.missing", "{frame}", "Frames never received, summed over gaps.");
}

/// <summary>The ActivitySource of the call lifecycle spans (one trace per call; never a span per frame).</summary>
public static class IngestTelemetry
{
    public const string SourceName = "Ingest";

    public static readonly ActivitySource Source = new(SourceName);

    /// <summary>OpenTelemetry's advised buckets for durations in seconds (http.server.request.duration).</summary>
    public static readonly double[] SecondsBuckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
}
