using System.Globalization;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.EndToEnd;

/// <summary>
/// /metrics as the conventions say (issue 11 item 5): durations in seconds, ingest_calls_ended_total by reason and
/// protocol, protocol on frames received, the runtime meters (Kestrel's: ProcessMetricsTests). The fixture's hosts share this test process
/// (and its meters), so counts are compared as "at least this much more".
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class MetricsTests(EndToEndFixture fixture)
{
    private async Task<string> ScrapeAsync()
    {
        using var http = new HttpClient();
        return await http.GetStringAsync(IngestStack.HttpUri(fixture.Main, "/metrics"));
    }

    /// <summary>The sum of the series of <paramref name="name"/> whose labels include every one of <paramref name="labels"/>.</summary>
    private static double Value(string text, string name, params string[] labels) =>
        text.Split('\n')
            .Where(l => l.StartsWith(name, StringComparison.Ordinal) && (l.Length == name.Length || l[name.Length] is ' ' or '{'))
            .Where(l => labels.All(label => l.Contains(label, StringComparison.Ordinal)))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));

    [Fact]
    public async Task Calls_ended_count_by_reason_and_protocol_durations_are_in_seconds_and_runtime_meters_are_exported()
    {
        var before = await ScrapeAsync();
        var stopped = "metrics-" + Guid.NewGuid().ToString("N");
        await using (var call = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            await call.StartAsync(stopped, "call-ended");
            await call.MediaAsync(stopped, 2, 1, ExotelClient.Pcm(7, 2));
            await call.MediaAsync(stopped, 3, 2, ExotelClient.Pcm(7, 3));
            await call.StopAsync(stopped, 4);
            await call.WaitForCloseAsync(TimeSpan.FromSeconds(10));
        }

        var vanished = "metrics-" + Guid.NewGuid().ToString("N");
        await using (var call = await ExotelClient.ConnectAsync(IngestStack.IngestUri(fixture.Main)))
        {
            await call.StartAsync(vanished, "call-vanished");
            await call.MediaAsync(vanished, 2, 1, ExotelClient.Pcm(8, 2));
            call.Socket.Abort();
        }

        string after = before;
        Assert.True(await RedisStreams.WaitUntilAsync(
            async () =>
            {
                after = await ScrapeAsync();
                return Value(after, "ingest_calls_ended_total", "reason=\"disconnected\"", "protocol=\"exotel\"") > Value(before, "ingest_calls_ended_total", "reason=\"disconnected\"", "protocol=\"exotel\"");
            },
            TimeSpan.FromSeconds(10)));
        Assert.True(Value(after, "ingest_calls_ended_total", "reason=\"callended\"", "protocol=\"exotel\"") >= Value(before, "ingest_calls_ended_total", "reason=\"callended\"", "protocol=\"exotel\"") + 1, after);
        Assert.True(Value(after, "ingest_frames_received_total", "protocol=\"exotel\"") >= Value(before, "ingest_frames_received_total", "protocol=\"exotel\"") + 3);
        Assert.True(Value(after, "ingest_frames_published_total") >= Value(before, "ingest_frames_published_total") + 2);

        // After a call (histograms appear with their first measurement): durations in seconds, runtime and Kestrel meters.
        var text = await ScrapeAsync();
        Assert.Contains("ingest_publish_latency_seconds_bucket", text, StringComparison.Ordinal);
        // Ours only: Orleans' own meter still reports some latencies in milliseconds.
        Assert.DoesNotContain(text.Split('\n'), l => l.Contains("ingest_", StringComparison.Ordinal) && l.Contains("_milliseconds", StringComparison.Ordinal));

        // One name per fact: the silo's copies of the published/duplicates/gaps counters are gone.
        Assert.DoesNotContain("ingest_silo_frames_published", text, StringComparison.Ordinal);
        Assert.DoesNotContain("ingest_silo_gaps", text, StringComparison.Ordinal);

        // Every refusal reason and both protocols are there from the start, at 0 if nothing happened.
        Assert.Contains("ingest_refusals_total{", text, StringComparison.Ordinal);
        Assert.Contains(text.Split('\n'), l => l.StartsWith("ingest_frames_received_total{", StringComparison.Ordinal) && l.Contains("protocol=\"native\"", StringComparison.Ordinal));

        Assert.Contains("dotnet_gc_collections_total", text, StringComparison.Ordinal);

        // Kestrel's instruments: ProcessMetricsTests, on a gateway process of its own (in this shared test process another
        // stack's disposed host can take the merged Kestrel stream with it).
    }
}
