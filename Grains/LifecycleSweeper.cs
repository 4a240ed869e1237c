using Ingest.Grains.Interfaces;
using Ingest.Grains.Publishing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Ingest.Grains;

/// <summary>
/// The last resort of the lifecycle copy (docs/OPERATIONS.md "Redis Cluster"): a call whose silo and gateway both died
/// has nobody to copy its last lifecycle entries to <c>ingest:calls</c> or to end it. Every live call's grain touches
/// <c>{ingest:calls}:open</c> at least every 30 s; every silo looks there every <see cref="IngestOptions.SweepInterval"/>
/// (with jitter) for calls silent past <see cref="IngestOptions.SweepAfter"/> and wakes their grains, which copy what is
/// left and end an ownerless call as an orphan. Several silos sweeping the same call is harmless: one activation,
/// fenced copies.
/// </summary>
public sealed partial class LifecycleSweeper(
    IGrainFactory grains,
    CallStreamStore store,
    TimeProvider time,
    IOptions<IngestOptions> options,
    ILogger<LifecycleSweeper> logger) : BackgroundService
{
    private const int BatchLimit = 500;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.SweepInterval;
        while (!stoppingToken.IsCancellationRequested)
        {
            var jitter = TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * interval.TotalMilliseconds / 2);
            try
            {
                await Task.Delay(interval + jitter, time, stoppingToken);
                await SweepOnceAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // Redis away, the silo not yet (or no longer) in the cluster: the next round tries again.
                LogSweepFailed(ex);
            }
        }
    }

    /// <summary>One round: wakes the grain of every call silent past <see cref="IngestOptions.SweepAfter"/>. Returns how many.</summary>
    public async Task<int> SweepOnceAsync(CancellationToken cancellationToken)
    {
        var stale = await store.StaleOpenCallsAsync(time.GetUtcNow() - options.Value.SweepAfter, BatchLimit);
        if (stale.Count == 0)
        {
            return 0;
        }

        LogSweeping(stale.Count);
        foreach (var chunk in stale.Chunk(32))
        {
            cancellationToken.ThrowIfCancellationRequested();
            await Task.WhenAll(chunk.Select(id => grains.GetGrain<ICallStreamGrain>(id).Sweep().AsTask()));
        }

        GrainMetrics.Live.Swept.Add(stale.Count);
        return stale.Count;
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Lifecycle sweeper: {Count} call(s) nobody looked after for a while (silo and gateway gone?); waking their grains")]
    private partial void LogSweeping(int count);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Lifecycle sweeper round failed; trying again next round")]
    private partial void LogSweepFailed(Exception exception);
}
