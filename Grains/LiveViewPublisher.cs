using Ingest.Grains.Interfaces;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Hosting;
using Orleans.Runtime;
using Orleans.Streams;

namespace Ingest.Grains;

/// <summary>
/// Publishes this silo's live calls (<see cref="LiveCalls"/>) on the live-view stream once a second: one message per
/// silo, whatever the number of calls and of viewers. Memory streams are not durable: a message missed is replaced by
/// the next one, a second later.
/// </summary>
internal sealed partial class LiveViewPublisher(
    IClusterClient client, LiveCalls calls, ILocalSiloDetails silo, TimeProvider time, ILogger<LiveViewPublisher> logger) : BackgroundService
{
    private long _lastFailureLog = -1;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Not before the host has started the silo (the stream provider comes with it).
        await Task.Yield();
        IAsyncStream<SiloCalls>? stream = null;
        var name = silo.SiloAddress.ToString();
        using var timer = new PeriodicTimer(LiveViewStream.Interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    stream ??= client.GetStreamProvider(LiveViewStream.Provider)
                        .GetStream<SiloCalls>(StreamId.Create(LiveViewStream.Namespace, LiveViewStream.Key));
                    await stream.OnNextAsync(new SiloCalls(name, true, calls.Describe())).WaitAsync(LiveViewStream.Interval * 2, stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    // The silo is starting or its queue's silo just left: the next second tries again. Logged once a minute.
                    if (_lastFailureLog < 0 || time.GetElapsedTime(_lastFailureLog) >= TimeSpan.FromMinutes(1))
                    {
                        _lastFailureLog = time.GetTimestamp();
                        LogPublishFailed(ex);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(EventId = 2301, Level = LogLevel.Warning, Message = "Publishing the live view failed; trying again every second (logged once a minute)")]
    private partial void LogPublishFailed(Exception exception);
}

public static class LiveViewExtensions
{
    /// <summary>
    /// The live view on a silo: memory streams named <see cref="LiveViewStream.Provider"/> and the publisher. The
    /// silo must also have a grain storage named <c>PubSubStore</c> (where the streams keep their subscriptions).
    /// </summary>
    public static ISiloBuilder AddIngestLiveView(this ISiloBuilder silo)
    {
        silo.AddMemoryStreams(LiveViewStream.Provider);
        silo.Services.AddHostedService<LiveViewPublisher>();
        return silo;
    }
}
