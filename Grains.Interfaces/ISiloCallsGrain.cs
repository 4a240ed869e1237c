namespace Ingest.Grains.Interfaces;

/// <summary>
/// The live calls of one silo, described by the silo itself (<c>GET /v1/admin/calls</c>): one grain per silo, keyed by
/// the silo's address (<see cref="KeyOf"/>) and placed on that silo, which reads its calls from a registry the call
/// grains keep. Asking costs one grain call per silo, whatever the number of calls, and never activates a call.
/// </summary>
public interface ISiloCallsGrain : IGrainWithStringKey
{
    /// <summary>The key of the grain that describes the calls of <paramref name="silo"/>.</summary>
    static string KeyOf(SiloAddress silo) => silo.ToParsableString();

    /// <summary>The silo's live calls; <see cref="SiloCalls.Here"/> false when this activation is not on the silo its key names.</summary>
    [AlwaysInterleave]
    ValueTask<SiloCalls> GetCalls();
}

/// <summary>What one silo answered: where it ran, whether that is the silo asked about, and its live calls.</summary>
[GenerateSerializer, Immutable]
public sealed record SiloCalls(
    [property: Id(0)] string Silo,
    [property: Id(1)] bool Here,
    [property: Id(2)] IReadOnlyList<CallStatus> Calls);

/// <summary>
/// The pushed live view (issue 24): each silo publishes one <see cref="SiloCalls"/> a second on this Orleans stream
/// (memory streams, provider <see cref="Provider"/>); the gateways subscribe and serve it as server-sent events.
/// </summary>
public static class LiveViewStream
{
    public const string Provider = "ingest-live";

    public const string Namespace = "ingest-live";

    public const string Key = "calls";

    /// <summary>How often each silo publishes its calls.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
}
