using System.Collections.Concurrent;
using Ingest.Grains.Interfaces;
using Orleans.Runtime;
using Orleans.Streams;

namespace Ingest.Gateway.Admin;

/// <summary>
/// The gateway's copy of the pushed live view: the last <see cref="SiloCalls"/> each silo published on the live-view
/// stream (<see cref="LiveViewStream"/>), merged into the cluster's calls. One subscription per gateway, whatever the
/// number of viewers; a silo not heard from for <see cref="SiloSilentAfter"/> is left out (it died or left). Memory
/// streams are not durable and a subscription can be lost with the silo that kept it: when nothing arrives for
/// <see cref="ResubscribeAfter"/>, the gateway subscribes again.
/// </summary>
public sealed partial class LiveView(IClusterClient client, GatewaySettings settings, TimeProvider time, ILogger<LiveView> logger) : BackgroundService
{
    public static readonly TimeSpan SiloSilentAfter = LiveViewStream.Interval * 3.5;

    public static readonly TimeSpan ResubscribeAfter = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<string, (SiloCalls Calls, long At)> _silos = new(StringComparer.Ordinal);
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _lastMessage = -1;
    private int _viewers;

    /// <summary>Whether a pushed view has arrived since the gateway started.</summary>
    public bool HasData => Interlocked.Read(ref _lastMessage) >= 0;

    /// <summary>Completes at the next message from any silo.</summary>
    public Task Changed => Volatile.Read(ref _changed).Task;

    /// <summary>The cluster's live calls as last pushed (see <see cref="CallsApi.Merge"/>).</summary>
    public List<CallStatus> Calls()
    {
        var now = time.GetTimestamp();
        return CallsApi.Merge(_silos.Values
            .Where(s => time.GetElapsedTime(s.At, now) < SiloSilentAfter)
            .SelectMany(s => s.Calls.Calls));
    }

    /// <summary>Takes one of the <c>MAX_ADMIN_STREAMS</c> places; false when all are taken.</summary>
    public bool TryAddViewer()
    {
        while (true)
        {
            var viewers = Volatile.Read(ref _viewers);
            if (viewers >= settings.Limits.MaxAdminStreams)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _viewers, viewers + 1, viewers) == viewers)
            {
                return true;
            }
        }
    }

    public void RemoveViewer() => Interlocked.Decrement(ref _viewers);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (settings.Limits.MaxAdminStreams == 0)
        {
            return;
        }

        // The client may not be started yet: the stream is looked up in the loop, once it is.
        await Task.Yield();
        IAsyncStream<SiloCalls>? stream = null;
        StreamSubscriptionHandle<SiloCalls>? handle = null;
        var subscribedAt = 0L;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var last = Interlocked.Read(ref _lastMessage);
                var quiet = time.GetElapsedTime(Math.Max(last, subscribedAt));
                if (handle is null || quiet >= ResubscribeAfter)
                {
                    if (handle is not null)
                    {
                        LogResubscribing(quiet.TotalSeconds);
                        await UnsubscribeAsync(handle);
                    }

                    stream ??= TryGetStream();
                    handle = stream is null ? null : await TrySubscribeAsync(stream, stoppingToken);
                    subscribedAt = time.GetTimestamp();
                }

                await Task.Delay(TimeSpan.FromSeconds(1), time, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            if (handle is not null)
            {
                await UnsubscribeAsync(handle);
            }
        }
    }

    private IAsyncStream<SiloCalls>? TryGetStream()
    {
        try
        {
            return client.GetStreamProvider(LiveViewStream.Provider)
                .GetStream<SiloCalls>(StreamId.Create(LiveViewStream.Namespace, LiveViewStream.Key));
        }
        catch (Exception ex)
        {
            // Before the client has started, its stream provider is not initialized (it throws, even a null reference).
            LogSubscribeFailed(ex);
            return null;
        }
    }

    private async Task<StreamSubscriptionHandle<SiloCalls>?> TrySubscribeAsync(IAsyncStream<SiloCalls> stream, CancellationToken stoppingToken)
    {
        try
        {
            return await stream.SubscribeAsync((message, _) =>
            {
                _silos[message.Silo] = (message, time.GetTimestamp());
                Interlocked.Exchange(ref _lastMessage, time.GetTimestamp());
                Interlocked.Exchange(ref _changed, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
                return Task.CompletedTask;
            }).WaitAsync(TimeSpan.FromSeconds(5), stoppingToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
        {
            // The cluster is not reached yet, or away: the next round tries again.
            LogSubscribeFailed(ex);
            return null;
        }
    }

    private static async Task UnsubscribeAsync(StreamSubscriptionHandle<SiloCalls> handle)
    {
        try
        {
            await handle.UnsubscribeAsync().WaitAsync(TimeSpan.FromSeconds(2));
        }
        catch (Exception)
        {
            // Best effort: a subscription whose silo is gone is gone with it.
        }
    }

    [LoggerMessage(EventId = 6801, Level = LogLevel.Information, Message = "Live view: nothing pushed for {Seconds:F0} s; subscribing again")]
    private partial void LogResubscribing(double seconds);

    [LoggerMessage(EventId = 6802, Level = LogLevel.Debug, Message = "Live view: subscribing failed; trying again")]
    private partial void LogSubscribeFailed(Exception exception);
}
