using Ingest.Grains.Interfaces;
using Ingest.ServiceDefaults;

namespace Ingest.Gateway.Flags;

/// <summary>
/// This gateway's view of the cluster-wide flags. It polls the config grain every <see cref="PollInterval"/>, so a
/// change made through any gateway is obeyed by every gateway within one second; the gateway that makes the change
/// applies it at once.
/// </summary>
public sealed partial class FlagCache(
    IClusterClient client,
    GatewaySettings settings,
    ILogger<FlagCache> logger) : BackgroundService
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    private volatile IngestFlags? _current;
    private readonly TaskCompletionSource _loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>False until the flag has been read from the cluster: no Exotel call is let in on a guess.</summary>
    public bool SupportExotel => _current?.SupportExotel ?? false;

    public IngestFlags? Current => _current;

    public Task Loaded => _loaded.Task;

    private IIngestFlagsGrain Grain => client.GetGrain<IIngestFlagsGrain>(IIngestFlagsGrain.Key);

    public async Task<IngestFlags> SetSupportExotelAsync(bool enabled, string source)
    {
        var flags = await Grain.SetSupportExotel(enabled, source);
        Apply(flags);
        return flags;
    }

    public async Task<IngestFlags> RefreshAsync()
    {
        var flags = await Grain.Get();
        Apply(flags);
        return flags;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await SeedAsync(stoppingToken);
        using var timer = new PeriodicTimer(PollInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await RefreshAsync();
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogPollFailed(ex.Message);
            }
        }
    }

    private async Task SeedAsync(CancellationToken stoppingToken)
    {
        for (var attempt = 1; !stoppingToken.IsCancellationRequested; attempt++)
        {
            try
            {
                var flags = settings.SupportExotel is { } wanted
                    ? await SetSupportExotelAsync(wanted, "setting")
                    : await RefreshAsync();
                LogStartupFlag(LogValues.Bool(flags.SupportExotel), settings.SupportExotel.HasValue ? "setting" : "persisted " + flags.Source);
                _loaded.TrySetResult();
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogPollFailed(ex.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(100 * attempt, 1000)), stoppingToken);
            }
        }
    }

    private void Apply(IngestFlags flags)
    {
        var previous = _current;
        if (previous is not null && previous.Version > flags.Version)
        {
            return;
        }

        _current = flags;
        if (previous is not null && previous.SupportExotel != flags.SupportExotel)
        {
            LogChanged(LogValues.Bool(flags.SupportExotel), flags.Source);
        }

        if (flags.SupportExotel && previous?.SupportExotel != true && !settings.ExotelCredentialsConfigured && settings.ExotelAllowList.IsEmpty)
        {
            LogNoExotelCredentials();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "supportExotel: {Enabled} (source: {Source})")]
    private partial void LogStartupFlag(string enabled, string source);

    [LoggerMessage(Level = LogLevel.Information, Message = "supportExotel: {Enabled} (changed; source: {Source})")]
    private partial void LogChanged(string enabled, string source);

    [LoggerMessage(Level = LogLevel.Warning, Message = "SUPPORT_EXOTEL is true but neither EXOTEL_BASIC_AUTH_USER/PASS nor EXOTEL_IP_ALLOWLIST is set: every Exotel connection will get 401")]
    private partial void LogNoExotelCredentials();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not read the cluster flags: {Error}")]
    private partial void LogPollFailed(string error);
}
