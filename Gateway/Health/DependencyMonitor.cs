using System.Diagnostics.Metrics;
using Ingest.Grains.Interfaces;
using Ingest.ServiceDefaults;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace Ingest.Gateway.Health;

/// <summary>
/// CONTRACT §8: what the gateway's dependencies are doing, shown beside readiness, never in it. Every
/// <see cref="Interval"/> it pings Redis and asks the cluster for the flags, each bounded by <see cref="ProbeTimeout"/>,
/// and keeps the last answer: the gauge <c>ingest_gateway_dependency_up{dependency="redis"|"cluster"}</c> and the
/// dependency lines of <c>/readyz</c> read it, so a probe costs nothing and answers at once whatever Redis does.
/// </summary>
public sealed class DependencyMonitor : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromMilliseconds(800);

    private readonly IConnectionMultiplexer _redis;
    private readonly IClusterClient _client;
    private readonly TimeProvider _time;
    private volatile Probe _redisState = new(false, "not probed yet");
    private volatile Probe _clusterState = new(false, "not probed yet");

    /// <summary>The monitors of the gateways in this process (one in production; a test may host several).</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<DependencyMonitor, byte> Running = new();

    static DependencyMonitor() =>
        IngestMeter.Live.Meter.CreateObservableGauge(
            "ingest.gateway.dependency.up",
            () => Running.IsEmpty ? [] : new[]
            {
                new Measurement<int>(Running.Keys.All(m => m._redisState.Up) ? 1 : 0, new KeyValuePair<string, object?>("dependency", "redis")),
                new Measurement<int>(Running.Keys.All(m => m._clusterState.Up) ? 1 : 0, new KeyValuePair<string, object?>("dependency", "cluster")),
            },
            "{up}",
            "1 while the gateway reaches the dependency (redis, cluster), 0 while it does not; readiness does not depend on it (CONTRACT §8).");

    public DependencyMonitor(IConnectionMultiplexer redis, IClusterClient client, TimeProvider? time = null)
    {
        _redis = redis;
        _client = client;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>The last answer of Redis to a PING.</summary>
    public Probe Redis => _redisState;

    /// <summary>The last answer of the cluster to a flags read.</summary>
    public Probe Cluster => _clusterState;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        Running[this] = 0;
        try
        {
            using var timer = new PeriodicTimer(Interval, _time);
            do
            {
                await Task.WhenAll(ProbeRedisAsync(stoppingToken), ProbeClusterAsync(stoppingToken));
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
        finally
        {
            Running.TryRemove(this, out _);
        }
    }

    private async Task ProbeRedisAsync(CancellationToken stopping)
    {
        try
        {
            var latency = await _redis.GetDatabase().PingAsync().WaitAsync(ProbeTimeout, _time, stopping);
            _redisState = new Probe(true, $"ping {latency.TotalMilliseconds:F1} ms");
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !stopping.IsCancellationRequested)
        {
            _redisState = new Probe(false, ex is TimeoutException ? $"no answer within {ProbeTimeout.TotalMilliseconds:F0} ms" : "Redis unreachable");
        }
    }

    private async Task ProbeClusterAsync(CancellationToken stopping)
    {
        try
        {
            await _client.GetGrain<IIngestFlagsGrain>(IIngestFlagsGrain.Key).Get().AsTask().WaitAsync(ProbeTimeout, _time, stopping);
            _clusterState = new Probe(true, "cluster reachable");
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !stopping.IsCancellationRequested)
        {
            _clusterState = new Probe(false, "Orleans cluster unreachable");
        }
    }

    /// <summary>One dependency's last answer.</summary>
    public sealed record Probe(bool Up, string Detail);
}

/// <summary>A dependency's line of <c>/readyz</c>: Healthy while it answers, Degraded (still 200) while it does not.</summary>
internal sealed class DependencyCheck(DependencyMonitor monitor, Func<DependencyMonitor, DependencyMonitor.Probe> pick) : IHealthCheck
{
    public static HealthCheckRegistration Registration(string name, Func<DependencyMonitor, DependencyMonitor.Probe> pick) =>
        new(name, sp => new DependencyCheck(sp.GetRequiredService<DependencyMonitor>(), pick), HealthStatus.Degraded, [ServiceDefaultsExtensions.ReadyTag]);

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var probe = pick(monitor);
        return Task.FromResult(probe.Up
            ? HealthCheckResult.Healthy(probe.Detail)
            : new HealthCheckResult(HealthStatus.Degraded, probe.Detail + "; calls are still taken"));
    }
}
