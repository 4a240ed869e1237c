using Ingest.Grains.Interfaces;
using Ingest.ServiceDefaults;

namespace Ingest.Silo;

/// <summary>
/// Once the silo is up: writes an explicitly set SUPPORT_EXOTEL into the config grain (the operator's deploy-time
/// intent wins), then logs the effective value.
/// </summary>
internal sealed partial class FlagSeeder(
    IGrainFactory grains,
    SiloSettings settings,
    IHostApplicationLifetime lifetime,
    ILogger<FlagSeeder> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await WhenStarted(stoppingToken);
        var flags = grains.GetGrain<IIngestFlagsGrain>(IIngestFlagsGrain.Key);
        for (var attempt = 1; !stoppingToken.IsCancellationRequested; attempt++)
        {
            try
            {
                var current = settings.SupportExotel is { } wanted
                    ? await flags.SetSupportExotel(wanted, "setting")
                    : await flags.Get();
                LogStartupFlag(LogValues.Bool(current.SupportExotel), settings.SupportExotel.HasValue ? "setting" : "persisted " + current.Source);
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogSeedFailed(ex, attempt);
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(attempt, 5)), stoppingToken);
            }
        }
    }

    private Task WhenStarted(CancellationToken stoppingToken)
    {
        var started = new TaskCompletionSource();
        lifetime.ApplicationStarted.Register(() => started.TrySetResult());
        stoppingToken.Register(() => started.TrySetCanceled(stoppingToken));
        return started.Task;
    }

    [LoggerMessage(EventId = 5201, Level = LogLevel.Information, Message = "supportExotel: {Enabled} (source: {Source})")]
    private partial void LogStartupFlag(string enabled, string source);

    [LoggerMessage(EventId = 5202, Level = LogLevel.Warning, Message = "Could not read or seed the SUPPORT_EXOTEL flag (attempt {Attempt})")]
    private partial void LogSeedFailed(Exception exception, int attempt);
}
