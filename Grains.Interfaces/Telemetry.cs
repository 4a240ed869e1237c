using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Ingest.Grains.Interfaces;

/// <summary>The meter every Orleans.Ingest instrument hangs off; exported on /metrics.</summary>
public static class IngestMeter
{
    public const string Name = "Ingest";

    private static readonly Meter Meter = new(Name);

    /// <summary>
    /// One instrument per fact, shared by both processes: the gateway counts what the grains confirmed, a silo what it
    /// wrote. Prometheus tells them apart by the scrape target (job/instance), not by a second name.
    /// </summary>
    public static readonly Counter<long> FramesPublished = Meter.CreateCounter<long>("ingest.frames.published", "{frame}", "Audio frames written to Redis Streams (gateway: confirmed by the grains; silo: written by its grains).");

    public static readonly Counter<long> Duplicates = Meter.CreateCounter<long>("ingest.frames.duplicates", "{frame}", "Items dropped because their sequence number was already published.");

    public static readonly Counter<long> Gaps = Meter.CreateCounter<long>("ingest.gaps", "{gap}", "Gap entries recorded for missing sequence numbers.");

    public static readonly Counter<long> MissingFrames = Meter.CreateCounter<long>("ingest.frames.missing", "{frame}", "Frames never received, summed over gaps.");
}

/// <summary>The ActivitySource of the call lifecycle spans (one trace per call; never a span per frame).</summary>
public static class IngestTelemetry
{
    public const string SourceName = "Ingest";

    public static readonly ActivitySource Source = new(SourceName);

    /// <summary>OpenTelemetry's advised buckets for durations in seconds (http.server.request.duration).</summary>
    public static readonly double[] SecondsBuckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
}
