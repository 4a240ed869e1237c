using System.Diagnostics.Metrics;
using Ingest.Grains.Interfaces;
using Ingest.ServiceDefaults;

namespace Ingest.Gateway;

/// <summary>Gateway-side instruments (CONTRACT §8): what arrived, what the grains confirmed, what was refused.</summary>
internal static class GatewayMetrics
{
    private static readonly Meter Meter = new(IngestMeter.Name);

    public static readonly Counter<long> FramesReceived = Meter.CreateCounter<long>("ingest.frames.received", "{frame}", "Audio frames received on WebSockets, by protocol (exotel, native).");
    public static readonly Counter<long> CallsEnded = Meter.CreateCounter<long>("ingest.calls.ended", "{call}", "Calls ended on this gateway, by stop reason and protocol (the main telephony alert).");
    public static Counter<long> FramesPublished => IngestMeter.FramesPublished;
    public static Counter<long> Duplicates => IngestMeter.Duplicates;
    public static Counter<long> Gaps => IngestMeter.Gaps;
    public static Counter<long> MissingFrames => IngestMeter.MissingFrames;
    public static readonly Counter<long> Overflowed = Meter.CreateCounter<long>("ingest.frames.overflowed", "{frame}", "Frames dropped because a call's buffer was full while Redis was away.");
    public static readonly Counter<long> Dropped = Meter.CreateCounter<long>("ingest.frames.dropped", "{frame}", "Frames received but not delivered, by reason (not_owner, call_ended, undeliverable).");
    public static readonly Counter<long> OddLength = Meter.CreateCounter<long>("ingest.frames.odd_length", "{frame}", "Frames whose payload is not whole PCM16 samples (an odd byte count), published byte for byte.");
    public static readonly Counter<long> Pushback = Meter.CreateCounter<long>("ingest.forward.pushback", "{batch}", "Batches a grain did not take because Redis was slow (kept and sent again).");
    public static readonly Counter<long> Malformed = Meter.CreateCounter<long>("ingest.messages.malformed", "{message}", "Messages refused as malformed or out of protocol.");
    public static readonly Counter<long> UnknownEvents = Meter.CreateCounter<long>("ingest.messages.unknown", "{message}", "Unknown events and fields ignored.");
    public static readonly Counter<long> Rejected = Meter.CreateCounter<long>("ingest.upgrades.rejected", "{request}", "Upgrade requests refused (by status code).");
    public static readonly Counter<long> Refusals = Meter.CreateCounter<long>("ingest.refusals", "{request}", "Refused WebSocket upgrades, by reason (CONTRACT §8's list).");
    public static readonly Counter<long> Resends = Meter.CreateCounter<long>("ingest.forward.retries", "{attempt}", "Grain calls retried after a failure (silo loss, timeout).");
    public static readonly UpDownCounter<long> ActiveCalls = Meter.CreateUpDownCounter<long>("ingest.calls.active", "{call}", "Calls in progress on this gateway.");
    public static readonly Histogram<double> PublishLatency = Meter.CreateHistogram<double>("ingest.publish.latency", "s", "From a frame's arrival at the gateway to its confirmation in Redis.");

    /// <summary>Counters appear on /metrics only once touched; touch them at start so a scrape finds every series at 0.</summary>
    public static void Initialize()
    {
        foreach (var protocol in new[] { "exotel", "native" })
        {
            FramesReceived.Add(0, new KeyValuePair<string, object?>("protocol", protocol));
            foreach (var reason in new[] { "stopped", "callended", "disconnected", "idle_timeout", "gateway_shutdown", "max_duration", "refused" })
            {
                CallsEnded.Add(0, new KeyValuePair<string, object?>("reason", reason), new KeyValuePair<string, object?>("protocol", protocol));
            }
        }

        foreach (var counter in new[] { FramesPublished, Duplicates, Gaps, MissingFrames, Overflowed, Malformed, UnknownEvents, Resends, OddLength, Pushback })
        {
            counter.Add(0);
        }

        foreach (var reason in Ingest.RefusalReasons.All)
        {
            Refusals.Add(0, new KeyValuePair<string, object?>("reason", reason));
        }

        ActiveCalls.Add(0);
    }
}
