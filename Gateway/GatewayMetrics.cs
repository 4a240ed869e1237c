using System.Diagnostics.Metrics;
using Ingest.Grains.Interfaces;
using Ingest.ServiceDefaults;

namespace Ingest.Gateway;

/// <summary>
/// Gateway-side instruments (CONTRACT §8): what arrived, what the grains confirmed, what was refused. <see cref="Warmup"/>
/// holds the same instruments for the start-up warm-up's calls, on a meter nobody exports.
/// </summary>
public sealed class GatewayMetrics
{
    public static readonly GatewayMetrics Live = new(IngestMeter.Live);

    public static readonly GatewayMetrics Warmup = new(IngestMeter.Warmup);

    private GatewayMetrics(IngestInstruments shared)
    {
        var meter = shared.Meter;
        FramesPublished = shared.FramesPublished;
        Duplicates = shared.Duplicates;
        Gaps = shared.Gaps;
        MissingFrames = shared.MissingFrames;
        FramesReceived = meter.CreateCounter<long>("ingest.frames.received", "{frame}", "Audio frames received on WebSockets, by protocol (exotel, native).");
        CallsEnded = meter.CreateCounter<long>("ingest.calls.ended", "{call}", "Calls ended on this gateway, by stop reason and protocol (the main telephony alert).");
        Overflowed = meter.CreateCounter<long>("ingest.frames.overflowed", "{frame}", "Frames dropped because a call's buffer was full while Redis was away.");
        Dropped = meter.CreateCounter<long>("ingest.frames.dropped", "{frame}", "Frames received but not delivered, by reason (not_owner, call_ended, undeliverable).");
        OddLength = meter.CreateCounter<long>("ingest.frames.odd_length", "{frame}", "Frames whose payload is not whole PCM16 samples (an odd byte count), published byte for byte.");
        Pushback = meter.CreateCounter<long>("ingest.forward.pushback", "{batch}", "Batches a grain did not take because Redis was slow (kept and sent again).");
        Malformed = meter.CreateCounter<long>("ingest.messages.malformed", "{message}", "Messages refused as malformed or out of protocol.");
        UnknownEvents = meter.CreateCounter<long>("ingest.messages.unknown", "{message}", "Unknown events and fields ignored.");
        UnknownTracks = meter.CreateCounter<long>("ingest.messages.unknown_track", "{message}", "Media messages whose track is neither inbound nor outbound, taken as the inbound track.");
        Rejected = meter.CreateCounter<long>("ingest.upgrades.rejected", "{request}", "Upgrade requests refused (by status code).");
        Refusals = meter.CreateCounter<long>("ingest.refusals", "{request}", "Refused WebSocket upgrades, by reason (CONTRACT §8's list).");
        Resends = meter.CreateCounter<long>("ingest.forward.retries", "{attempt}", "Grain calls retried after a failure (silo loss, timeout).");
        ActiveCalls = meter.CreateUpDownCounter<long>("ingest.calls.active", "{call}", "Calls in progress on this gateway.");
        PublishLatency = meter.CreateHistogram<double>("ingest.publish.latency", "s", "From a frame's arrival at the gateway to its confirmation in Redis.");
    }

    public Counter<long> FramesReceived { get; }

    public Counter<long> CallsEnded { get; }

    public Counter<long> FramesPublished { get; }

    public Counter<long> Duplicates { get; }

    public Counter<long> Gaps { get; }

    public Counter<long> MissingFrames { get; }

    public Counter<long> Overflowed { get; }

    public Counter<long> Dropped { get; }

    public Counter<long> OddLength { get; }

    public Counter<long> Pushback { get; }

    public Counter<long> Malformed { get; }

    public Counter<long> UnknownEvents { get; }

    public Counter<long> UnknownTracks { get; }

    public Counter<long> Rejected { get; }

    public Counter<long> Refusals { get; }

    public Counter<long> Resends { get; }

    public UpDownCounter<long> ActiveCalls { get; }

    public Histogram<double> PublishLatency { get; }

    /// <summary>Counters appear on /metrics only once touched; touch them at start so a scrape finds every series at 0.</summary>
    public static void Initialize()
    {
        var live = Live;
        foreach (var protocol in new[] { "exotel", "native" })
        {
            live.FramesReceived.Add(0, new KeyValuePair<string, object?>("protocol", protocol));
            foreach (var reason in new[] { "stopped", "callended", "disconnected", "idle_timeout", "gateway_shutdown", "max_duration", "refused" })
            {
                live.CallsEnded.Add(0, new KeyValuePair<string, object?>("reason", reason), new KeyValuePair<string, object?>("protocol", protocol));
            }
        }

        foreach (var counter in new[] { live.FramesPublished, live.Duplicates, live.Gaps, live.MissingFrames, live.Overflowed, live.Malformed, live.UnknownEvents, live.UnknownTracks, live.Resends, live.OddLength, live.Pushback })
        {
            counter.Add(0);
        }

        foreach (var reason in Ingest.RefusalReasons.All)
        {
            live.Refusals.Add(0, new KeyValuePair<string, object?>("reason", reason));
        }

        live.ActiveCalls.Add(0);
    }
}
