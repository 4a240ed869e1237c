namespace Ingest.Grains.Interfaces;

/// <summary>Holds the cluster-wide feature flags (SUPPORT_EXOTEL). Use key <see cref="Key"/>.</summary>
public interface IIngestFlagsGrain : IGrainWithStringKey
{
    const string Key = "global";

    [AlwaysInterleave]
    ValueTask<IngestFlags> Get();

    ValueTask<IngestFlags> SetSupportExotel(bool enabled, string source);
}
