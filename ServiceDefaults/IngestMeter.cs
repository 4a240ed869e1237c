using System.Diagnostics.Metrics;

namespace Ingest.ServiceDefaults;

/// <summary>The meter every Orleans.Ingest instrument hangs off; exported on /metrics.</summary>
public static class IngestMeter
{
    public const string Name = "Ingest";
}
