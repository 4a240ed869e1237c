using System.Collections.Immutable;
using System.Diagnostics;
using Ingest.Grains.Interfaces;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using StackExchange.Redis;

namespace Ingest.Bench;

/// <summary>
/// The Orleans hop alone (scenario <c>hop</c>, orleans only): what one grain call carrying one frame costs, without a
/// WebSocket, JSON, base64 or a Redis write. The driver is an Orleans client of the bench's silo (the cluster the
/// bench exported: <c>CLUSTER_ID</c>, <c>SERVICE_ID</c>, <c>REDIS_URL</c>) and calls <see cref="ICallStreamGrain.Append"/>
/// on N call grains at the real-time cadence, one call in flight per grain like the gateway's forwarder, each with one
/// media item of the scenario's frame size. The grains were never started, so each answers
/// <see cref="CallAckStatus.NotStarted"/> after one Redis read at activation and writes nothing; their keys are in the
/// warm-up namespace (<see cref="WarmupCalls"/>), so they log, count and store nothing. The silo's CPU per call is the
/// hop's silo side (receive, decode, activation lookup, a grain turn, encode the answer, send); the driver's is the
/// client side plus the driver's pacing, an upper bound for what the gateway's Orleans client spends per frame.
/// </summary>
public static class HopScenario
{
    /// <param name="local">
    /// Scenario <c>hop-local</c>: the same calls from inside a silo of the driver's own (a one-silo cluster of its own,
    /// the same grain code and Redis), so each call is a local one: what the hop would cost with the gateway co-hosted
    /// in the silo. The driver's CPU is then the whole of it (caller, grain turn, pacing); the bench's silo idles.
    /// </param>
    /// <param name="pacingOnly">
    /// Scenario <c>hop-pacing</c>: the same loop and timers with no grain call, so the driver's own pacing can be taken
    /// out of the figures above.
    /// </param>
    public static async Task<ScenarioResult> RunAsync(BenchOptions options, TextWriter log, bool local = false, bool pacingOnly = false)
    {
        var clusterId = Environment.GetEnvironmentVariable("CLUSTER_ID");
        var serviceId = Environment.GetEnvironmentVariable("SERVICE_ID");
        var redisUrl = Environment.GetEnvironmentVariable("REDIS_URL");
        if (clusterId is null || serviceId is null || redisUrl is null)
        {
            throw new InvalidOperationException("scenario hop needs CLUSTER_ID, SERVICE_ID and REDIS_URL of the bench's silo (bench/run.sh exports them)");
        }

        var redisOptions = ConfigurationOptions.Parse(RedisEndpoint(redisUrl));
        using var host = local ? await LocalSiloAsync(redisOptions, $"{clusterId}-hop-local") : Host.CreateDefaultBuilder()
            .ConfigureLogging(l => l.SetMinimumLevel(LogLevel.Warning))
            .UseOrleansClient(client =>
            {
                client.Configure<ClusterOptions>(o =>
                {
                    o.ClusterId = clusterId;
                    o.ServiceId = serviceId;
                });
                client.UseRedisClustering(o => o.ConfigurationOptions = redisOptions);
            })
            .Build();
        await host.StartAsync();
        var grains = host.Services.GetRequiredService<IGrainFactory>();

        var run = DateTime.UtcNow.ToString("HHmmssfff", System.Globalization.CultureInfo.InvariantCulture);
        var targets = Enumerable.Range(0, options.Calls)
            .Select(i => grains.GetGrain<ICallStreamGrain>($"{WarmupCalls.Prefix}hop-{run}-{i}"))
            .ToArray();
        var connectionId = Guid.NewGuid().ToString("N");
        var audio = new byte[options.FrameBytes];
        Random.Shared.NextBytes(audio);
        ImmutableArray<CallItem> Frame(long n) => [new CallItem(n, CallItemKind.Media, n + 1, n, n * options.CadenceMs, audio, null, null, null)];

        // Activations (and their one read each) before the measured window, so the window is the per-frame path.
        if (!pacingOnly)
        {
            await Task.WhenAll(targets.Select(g => g.Append(connectionId, Frame(0)).AsTask()));
        }

        var frames = options.Seconds * 1000 / options.CadenceMs;
        var cadenceTicks = options.CadenceMs * Stopwatch.Frequency / 1000;
        var usage = new ProcessUsage(options.Processes);
        var firstDue = Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 2);
        var samples = new List<(long ReadTicks, double Ms)>[targets.Length];
        long failed = 0, unexpected = 0, maxLag = 0;
        await Task.WhenAll(targets.Select(async (grain, i) =>
        {
            var mine = samples[i] = new List<(long, double)>(frames);
            var due = firstDue + (cadenceTicks * i / targets.Length);
            for (var n = 1; n <= frames; n++, due += cadenceTicks)
            {
                var wait = due - Stopwatch.GetTimestamp();
                if (wait > 0)
                {
                    await Task.Delay(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency));
                }
                else
                {
                    InterlockedMax(ref maxLag, -wait);
                }

                var sent = Stopwatch.GetTimestamp();
                if (pacingOnly)
                {
                    mine.Add((sent, 0));
                    continue;
                }

                try
                {
                    var ack = await grain.Append(connectionId, Frame(n));
                    if (ack.Status != CallAckStatus.NotStarted)
                    {
                        Interlocked.Increment(ref unexpected);
                    }
                }
                catch (Exception ex) when (ex is TimeoutException or OrleansException)
                {
                    Interlocked.Increment(ref failed);
                    continue;
                }

                var done = Stopwatch.GetTimestamp();
                mine.Add((done, (done - sent) * 1000.0 / Stopwatch.Frequency));
            }
        }));
        var last = Stopwatch.GetTimestamp();
        var processes = usage.Stop();
        await host.StopAsync();

        var all = samples.SelectMany(s => s).ToList();
        var window = Stopwatch.GetElapsedTime(firstDue, last).TotalSeconds;
        log.WriteLine($"  {all.Count} grain calls answered, {failed} failed, {unexpected} answered other than NotStarted");
        return new ScenarioResult
        {
            Scenario = pacingOnly ? "hop-pacing" : local ? "hop-local" : "hop",
            Calls = targets.Length,
            CadenceMs = options.CadenceMs,
            SampleRate = options.SampleRate,
            FrameBytes = options.FrameBytes,
            FramesSent = (long)targets.Length * frames,
            FramesReadable = all.Count,
            WindowSeconds = Math.Round(window, 2),
            FramesPerSecond = window > 0 ? Math.Round(all.Count / window) : 0,
            MaxSendLagMs = Math.Round(maxLag * 1000.0 / Stopwatch.Frequency, 1),
            Latency = LatencySummary.From(all.Select(s => s.Ms).ToList()),
            LatencyBySecond = LatencySecond.Series(all, firstDue),
            SteadyLatency = LatencySummary.From(all.Where(s => s.ReadTicks - firstDue >= 10 * Stopwatch.Frequency).Select(s => s.Ms).ToList()),
            Processes = processes,
            FailedCalls = (int)(failed + unexpected),
        };
    }

    /// <summary>
    /// A silo in this process, alone in a cluster of its own (localhost clustering on free ports), with the call grain and
    /// the store it writes through on the bench's Redis; no lifecycle sweeper, so it never touches the real calls.
    /// </summary>
    private static async Task<IHost> LocalSiloAsync(ConfigurationOptions redisOptions, string clusterId)
    {
        var redis = await ConnectionMultiplexer.ConnectAsync(redisOptions);
        return Host.CreateDefaultBuilder()
            .ConfigureLogging(l => l.SetMinimumLevel(LogLevel.Warning))
            .UseOrleans(silo =>
            {
                silo.UseLocalhostClustering(FreePort(), FreePort(), serviceId: clusterId, clusterId: clusterId);
                silo.Services.AddSingleton<IConnectionMultiplexer>(redis);
                silo.Services.AddOptions<Ingest.Grains.IngestOptions>();
                silo.Services.AddSingleton<Ingest.Grains.Publishing.CallStreamStore>();
            })
            .Build();
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary><c>redis://host:port</c> or <c>host:port</c> as a StackExchange.Redis configuration string.</summary>
    private static string RedisEndpoint(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.Scheme is "redis" or "rediss" ? $"{uri.Host}:{uri.Port}" : url;

    private static void InterlockedMax(ref long target, long value)
    {
        for (var seen = Interlocked.Read(ref target); value > seen; seen = Interlocked.Read(ref target))
        {
            if (Interlocked.CompareExchange(ref target, value, seen) == seen)
            {
                return;
            }
        }
    }
}
