using System.Collections.Concurrent;
using System.Net;
using Ingest.Gateway.Auth;
using StackExchange.Redis;

namespace Ingest.Gateway.Ingest;

/// <summary>
/// The calls this gateway carries: for the active-calls gauge, per-address and total connection limits, refusing a
/// stream id already live here, and the graceful drain on SIGTERM.
/// </summary>
public sealed partial class SessionRegistry(GatewaySettings settings, ILogger<SessionRegistry> logger, IConnectionMultiplexer? redis = null, GatewayMetrics? metrics = null)
{
    /// <summary>
    /// A drain stops waiting for calls once Redis has been unreachable this long: nothing the calls send can land then,
    /// and CONTRACT §8 wants a gateway whose Redis is gone out within 60 s of SIGTERM (30 s + 15 s flush + the client).
    /// </summary>
    public static readonly TimeSpan DrainWithoutRedis = TimeSpan.FromSeconds(30);

    private readonly GatewayMetrics _metrics = metrics ?? GatewayMetrics.Live;
    private readonly ConcurrentDictionary<string, IngestSession> _byStream = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<IPAddress, int> _perAddress = new();
    private readonly CancellationTokenSource _draining = new();
    private readonly ConcurrentDictionary<CallForwarder, Task> _deliveries = new();
    private int _connections;

    public int Connections => Volatile.Read(ref _connections);

    public bool IsDraining => _draining.IsCancellationRequested;

    /// <summary>Cancelled when the gateway starts draining.</summary>
    public CancellationToken Draining => _draining.Token;

    /// <summary>Counts a connection against MAX_CONNECTIONS and, per address (an IPv6 address by its /64: AddressKey), MAX_CONNECTIONS_PER_IP.</summary>
    public bool TryOpenConnection(IPAddress address, out string refusal)
    {
        if (Interlocked.Increment(ref _connections) > settings.Limits.MaxConnections)
        {
            Interlocked.Decrement(ref _connections);
            refusal = "gateway at its connection limit";
            return false;
        }

        var perAddress = _perAddress.AddOrUpdate(AddressKey.Of(address), 1, (_, n) => n + 1);
        if (perAddress > settings.Limits.MaxConnectionsPerAddress)
        {
            CloseConnection(address);
            refusal = "too many connections from this address";
            return false;
        }

        refusal = string.Empty;
        return true;
    }

    public void CloseConnection(IPAddress address)
    {
        Interlocked.Decrement(ref _connections);
        var key = AddressKey.Of(address);
        _perAddress.AddOrUpdate(key, 0, (_, n) => n - 1);
        _perAddress.TryRemove(new KeyValuePair<IPAddress, int>(key, 0));
    }

    public bool TryRegisterStream(string streamId, IngestSession session)
    {
        if (!_byStream.TryAdd(streamId, session))
        {
            return false;
        }

        _metrics.ActiveCalls.Add(1);
        return true;
    }

    public void UnregisterStream(string streamId, IngestSession session)
    {
        if (_byStream.TryRemove(new KeyValuePair<string, IngestSession>(streamId, session)))
        {
            _metrics.ActiveCalls.Add(-1);
        }
    }

    public int ActiveCalls => _byStream.Count;

    /// <summary>Calls whose socket is closed but whose last frames are still being delivered.</summary>
    public int PendingDeliveries => _deliveries.Count;

    /// <summary>Keeps delivering an ended call's last frames after its socket closed, for at most <paramref name="timeout"/>.</summary>
    public void DeliverInBackground(CallForwarder forwarder, TimeSpan timeout)
    {
        _deliveries[forwarder] = Task.Run(async () =>
        {
            try
            {
                if (await forwarder.WaitAsync(timeout) is null)
                {
                    forwarder.Abandon($"not confirmed {timeout.TotalSeconds:0} s after the call ended");
                }

                await forwarder.DisposeAsync();
            }
            finally
            {
                _deliveries.TryRemove(forwarder, out _);
            }
        });
    }

    /// <summary>SIGTERM: refuse new upgrades, give calls the grace period, then end the rest and let them flush.</summary>
    public async Task DrainAsync(CancellationToken hardStop)
    {
        await _draining.CancelAsync();
        LogDrainStarted(_byStream.Count, settings.Limits.DrainGrace.TotalSeconds);
        var deadline = DateTime.UtcNow + settings.Limits.DrainGrace;
        DateTime? redisLostAt = null;
        while (Connections > 0 && DateTime.UtcNow < deadline && !hardStop.IsCancellationRequested)
        {
            if (redis is { IsConnected: false })
            {
                redisLostAt ??= DateTime.UtcNow;
                if (DateTime.UtcNow - redisLostAt >= DrainWithoutRedis)
                {
                    LogDrainCutShort(DrainWithoutRedis.TotalSeconds);
                    break;
                }
            }
            else
            {
                redisLostAt = null;
            }

            await Task.Delay(100, CancellationToken.None);
        }

        var remaining = _byStream.Values.ToArray();
        if (remaining.Length > 0)
        {
            LogEndingCalls(remaining.Length);
            foreach (var session in remaining)
            {
                session.EndForShutdown();
            }

            var flushDeadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
            while (Connections > 0 && DateTime.UtcNow < flushDeadline)
            {
                await Task.Delay(100, CancellationToken.None);
            }
        }

        // Ended calls whose last frames are still on their way get the rest of the flush time, then are counted as lost.
        var deliveryDeadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!_deliveries.IsEmpty && DateTime.UtcNow < deliveryDeadline && !hardStop.IsCancellationRequested)
        {
            await Task.Delay(100, CancellationToken.None);
        }

        foreach (var forwarder in _deliveries.Keys)
        {
            forwarder.Abandon("gateway shutting down");
        }

        LogDrainFinished(Connections);
    }

    [LoggerMessage(EventId = 6301, Level = LogLevel.Information, Message = "Draining: refusing new upgrades; {Calls} call(s) in progress get {Seconds} s to finish")]
    private partial void LogDrainStarted(int calls, double seconds);

    [LoggerMessage(EventId = 6302, Level = LogLevel.Warning, Message = "Redis unreachable for {Seconds} s during the drain: ending the calls now")]
    private partial void LogDrainCutShort(double seconds);

    [LoggerMessage(EventId = 6303, Level = LogLevel.Warning, Message = "Drain grace over: ending {Calls} call(s) with reason gateway_shutdown after flushing them")]
    private partial void LogEndingCalls(int calls);

    [LoggerMessage(EventId = 6304, Level = LogLevel.Information, Message = "Drain finished; {Connections} connection(s) left")]
    private partial void LogDrainFinished(int connections);
}

/// <summary>
/// Runs the drain when the host stops. It drains in <see cref="IHostedLifecycleService.StoppingAsync"/>, which the host
/// runs before any hosted service's StopAsync: Kestrel's own StopAsync closes the listener at once, so draining there (or
/// later) would refuse new upgrades with a connection reset and make /readyz unreachable instead of answering 503.
/// Draining first keeps the listener up during the grace period, answering 503 to /readyz and to new upgrades while
/// calls in progress finish, and the Orleans client is still connected while they flush.
/// </summary>
internal sealed class DrainOnShutdown(SessionRegistry registry) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => registry.DrainAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
