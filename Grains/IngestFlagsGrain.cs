using Ingest.Grains.Interfaces;
using Microsoft.Extensions.Logging;
using Orleans.Utilities;

namespace Ingest.Grains;

/// <summary>
/// Persisted state of <see cref="IngestFlagsGrain"/>. Its name and namespace are part of the stored data: keep them.
/// </summary>
[GenerateSerializer]
public sealed class IngestFlagsState
{
    [Id(0)] public bool SupportExotel { get; set; }

    [Id(1)] public long Version { get; set; }

    [Id(2)] public string Source { get; set; } = "default";

    [Id(3)] public DateTimeOffset ChangedAt { get; set; }

    /// <summary>When this record was created (Unix ms); 0 in a record written before epochs existed.</summary>
    [Id(4)] public long Epoch { get; set; }
}

/// <summary>
/// The cluster-wide SUPPORT_EXOTEL flag, persisted in Redis so it survives a restart of the whole cluster. Each change is
/// pushed to the subscribed gateways (grain observers, one one-way message per gateway); subscriptions live in memory
/// only, expire after <see cref="SubscriptionExpiry"/> unless renewed, and are rebuilt by the renewals after a reactivation.
/// </summary>
public sealed partial class IngestFlagsGrain(
    [PersistentState("flags", IngestFlagsGrain.StorageName)] IPersistentState<IngestFlagsState> state,
    TimeProvider time,
    ILogger<IngestFlagsGrain> logger) : Grain, IIngestFlagsGrain
{
    public const string StorageName = "ingest";

    /// <summary>A subscriber that has not renewed for this long is dropped (a gateway renews every 5 s).</summary>
    public static readonly TimeSpan SubscriptionExpiry = TimeSpan.FromMinutes(1);

    private readonly ObserverManager<IIngestFlagsObserver> _observers = new(SubscriptionExpiry, logger);

    public ValueTask<IngestFlags> Get() => ValueTask.FromResult(Snapshot());

    public ValueTask<IngestFlags> Subscribe(IIngestFlagsObserver observer)
    {
        _observers.Subscribe(observer, observer);
        return ValueTask.FromResult(Snapshot());
    }

    public ValueTask Unsubscribe(IIngestFlagsObserver observer)
    {
        _observers.Unsubscribe(observer);
        return ValueTask.CompletedTask;
    }

    public async ValueTask<IngestFlags> SetSupportExotel(bool enabled, string source)
    {
        if (state.RecordExists && state.State.SupportExotel == enabled)
        {
            return Snapshot();
        }

        var previous = state.State.SupportExotel;
        if (!state.RecordExists || state.State.Epoch == 0)
        {
            // A new record (the first, or one lost and written again): its versions count from 1 under a new epoch.
            state.State.Epoch = Math.Max(time.GetUtcNow().ToUnixTimeMilliseconds(), state.State.Epoch + 1);
        }

        state.State.SupportExotel = enabled;
        state.State.Version++;
        state.State.Source = source;
        state.State.ChangedAt = time.GetUtcNow();
        await state.WriteStateAsync();
        LogChanged(enabled ? "true" : "false", previous ? "true" : "false", source);

        // One-way: a slow or departed gateway delays nobody; one that misses this converges on its next renewal.
        var flags = Snapshot();
        await _observers.Notify(o => o.FlagsChanged(flags));
        return flags;
    }

    private IngestFlags Snapshot() =>
        new(state.State.SupportExotel, state.State.Version, state.State.Source, state.State.ChangedAt, state.State.Epoch);

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "supportExotel: {Enabled} (was {Previous}; source: {Source})")]
    private partial void LogChanged(string enabled, string previous, string source);
}
