namespace Ingest.Grains.Interfaces;

/// <summary>Holds the cluster-wide feature flags (SUPPORT_EXOTEL). Use key <see cref="Key"/>.</summary>
public interface IIngestFlagsGrain : IGrainWithStringKey
{
    const string Key = "global";

    [AlwaysInterleave]
    ValueTask<IngestFlags> Get();

    ValueTask<IngestFlags> SetSupportExotel(bool enabled, string source);

    /// <summary>
    /// Subscribes (or renews) <paramref name="observer"/> for every change, and returns the flags as they are now, so
    /// nothing changed before the subscription is missed. A subscription not renewed within the grain's expiry lapses,
    /// and a reactivated grain has none: subscribers renew periodically (the gateway: every 5 s, its safety-net poll).
    /// </summary>
    [AlwaysInterleave]
    ValueTask<IngestFlags> Subscribe(IIngestFlagsObserver observer);

    [AlwaysInterleave]
    ValueTask Unsubscribe(IIngestFlagsObserver observer);
}

/// <summary>Told each change of the flags. Notifications may arrive out of order: keep the highest Version.</summary>
public interface IIngestFlagsObserver : IGrainObserver
{
    [OneWay]
    Task FlagsChanged(IngestFlags flags);
}
