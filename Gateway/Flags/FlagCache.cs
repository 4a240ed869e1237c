using Ingest.Grains.Interfaces;
using Ingest.ServiceDefaults;

namespace Ingest.Gateway.Flags;

/// <summary>
/// This gateway's view of the cluster-wide flags. The config grain pushes every change to it (a grain observer), so a
/// change made through any gateway is obeyed by every gateway within milliseconds; the gateway that makes the change
/// applies it at once. Every <see cref="SafetyNetInterval"/> it renews its subscription, which also returns the current
/// flags: a lost subscription (silo restart, grain reactivation, a dropped notification) costs at most that long.
/// Notifications may arrive out of order: only a newer state (<see cref="IngestFlags.IsNewerThan"/>: epoch, then version) replaces the one held.
/// </summary>
public sealed partial class FlagCache(
    IClusterClient client,
    GatewaySettings settings,
    ILogger<FlagCache> logger) : BackgroundService
{
    /// <summary>Renewal of the subscription and safety-net poll in one grain call; well inside the grain's expiry.</summary>
    public static readonly TimeSpan SafetyNetInterval = TimeSpan.FromSeconds(5);

    /// <summary>After a change in the silos this gateway is connected to, renew now and once more this much later.</summary>
    public static readonly TimeSpan FollowUpInterval = TimeSpan.FromSeconds(1);

    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _renewNow = new(0, 1);
    private volatile IngestFlags? _current;
    private Observer? _observer;
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

        // The runtime holds the object weakly: the field keeps it alive as long as this cache.
        _observer = new Observer(this);
        var reference = client.CreateObjectReference<IIngestFlagsObserver>(_observer);
        try
        {
            var wait = SafetyNetInterval;
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    Apply(await Grain.Subscribe(reference));
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogPollFailed(ex);
                }

                // A silo that left may have taken the grain, and its subscriber list, with it: renew at once, then again
                // shortly (the first renewal may still have reached the leaving activation).
                wait = await _renewNow.WaitAsync(wait, stoppingToken) ? FollowUpInterval : SafetyNetInterval;
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            // Best effort: a gateway that cannot say goodbye lapses from the grain's list within its expiry.
            try
            {
                await Grain.Unsubscribe(reference).AsTask().WaitAsync(TimeSpan.FromMilliseconds(500), CancellationToken.None);
            }
            catch (Exception)
            {
            }

            client.DeleteObjectReference<IIngestFlagsObserver>(reference);
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
                // The first seconds after a gateway joins, its client may not have the cluster's grain manifest yet
                // ("Could not find an implementation for interface ..."): expected, and retried quietly; what lasts past
                // the tenth attempt (~5 s) is a warning.
                if (attempt > 10)
                {
                    LogPollFailed(ex);
                }
                else
                {
                    LogSeedRetry(ex, attempt);
                }

                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(100 * attempt, 1000)), stoppingToken);
            }
        }
    }

    /// <summary>Renews the subscription now instead of at the next safety-net tick (the cluster's gateways changed).</summary>
    public void RenewSoon()
    {
        try
        {
            _renewNow.Release();
        }
        catch (SemaphoreFullException)
        {
            // A renewal is already due.
        }
    }

    private void Apply(IngestFlags flags)
    {
        // Pushes, renewals and this gateway's own changes race: compare and replace under one lock.
        IngestFlags? previous;
        lock (_gate)
        {
            previous = _current;
            if (previous is not null && !flags.IsNewerThan(previous))
            {
                return;
            }

            _current = flags;
        }

        if (previous is not null && previous.SupportExotel != flags.SupportExotel)
        {
            LogChanged(LogValues.Bool(flags.SupportExotel), flags.Source);
        }

        if (flags.SupportExotel && previous?.SupportExotel != true && !settings.ExotelCredentialsConfigured && settings.ExotelAllowList.IsEmpty)
        {
            LogNoExotelCredentials();
        }
    }

    /// <summary>
    /// Registered with the Orleans client: a silo joining or leaving (the config grain may have been reactivated with
    /// no subscribers) triggers a renewal. Resolves the cache lazily: the client is built before it.
    /// </summary>
    internal sealed class RenewOnGatewayChange(IServiceProvider services) : IClusterConnectionStatusObserver
    {
        public void NotifyGatewayCountChanged(int currentNumberOfGateways, int previousNumberOfGateways, bool connectionRecovered) =>
            services.GetService<FlagCache>()?.RenewSoon();

        public void NotifyClusterConnectionLost()
        {
        }
    }

    private sealed class Observer(FlagCache cache) : IIngestFlagsObserver
    {
        public Task FlagsChanged(IngestFlags flags)
        {
            cache.Apply(flags);
            return Task.CompletedTask;
        }
    }

    [LoggerMessage(EventId = 6701, Level = LogLevel.Information, Message = "supportExotel: {Enabled} (source: {Source})")]
    private partial void LogStartupFlag(string enabled, string source);

    [LoggerMessage(EventId = 6702, Level = LogLevel.Information, Message = "supportExotel: {Enabled} (changed; source: {Source})")]
    private partial void LogChanged(string enabled, string source);

    [LoggerMessage(EventId = 6703, Level = LogLevel.Warning, Message = "SUPPORT_EXOTEL is true but neither EXOTEL_BASIC_AUTH_USER/PASS nor EXOTEL_IP_ALLOWLIST is set: every Exotel connection will get 401")]
    private partial void LogNoExotelCredentials();

    [LoggerMessage(EventId = 6704, Level = LogLevel.Warning, Message = "Could not read the cluster flags")]
    private partial void LogPollFailed(Exception exception);

    [LoggerMessage(EventId = 6705, Level = LogLevel.Debug, Message = "Reading the cluster flags at start, attempt {Attempt} failed; retrying")]
    private partial void LogSeedRetry(Exception exception, int attempt);
}
