namespace Ingest.Grains.Interfaces;

/// <summary>
/// The read-only view of a call grain for operators (<c>GET /v1/admin/calls</c>). Implemented by the same grain as
/// <see cref="ICallStreamGrain"/> (same key); interleaved, so asking never waits behind a batch being written.
/// </summary>
public interface ICallStatusGrain : IGrainWithStringKey
{
    /// <summary>
    /// How the grain's type is named to the management grain ("Namespace.Type,Assembly"), so a caller that must not
    /// reference the grain library can find the call activations of the cluster.
    /// </summary>
    const string ImplementationTypeName = "Ingest.Grains.CallStreamGrain,Ingest.Grains";

    /// <summary>The call's counters while it is live on this activation; null when it is not started or already stopped.</summary>
    [AlwaysInterleave]
    ValueTask<CallStatus?> GetStatus();
}
