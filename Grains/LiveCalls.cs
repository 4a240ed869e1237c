using System.Collections.Concurrent;
using Ingest.Grains.Interfaces;
using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace Ingest.Grains;

/// <summary>
/// The call activations of this silo, kept by the call grains themselves (in at activation, out at deactivation), so
/// the silo can describe its live calls without a grain call per call, and without activating one that just ended. A
/// service of the silo: two silos in one process (a test cluster) each have their own.
/// </summary>
public sealed class LiveCalls
{
    private readonly ConcurrentDictionary<string, CallStreamGrain> _calls = new(StringComparer.Ordinal);

    public int Count => _calls.Count;

    internal void Add(string streamId, CallStreamGrain grain) => _calls[streamId] = grain;

    internal void Remove(string streamId, CallStreamGrain grain) => _calls.TryRemove(KeyValuePair.Create(streamId, grain));

    /// <summary>
    /// The live calls now. Each is read from its grain's fields without entering the grain (as its interleaved status
    /// method does): every field read is a whole value, so a call is described as of one of its recent turns.
    /// </summary>
    public List<CallStatus> Describe()
    {
        var found = new List<CallStatus>(_calls.Count);
        foreach (var grain in _calls.Values)
        {
            if (grain.Describe() is { } status)
            {
                found.Add(status);
            }
        }

        return found;
    }
}

/// <summary>Answers for the calls of the silo its key names (see <see cref="ISiloCallsGrain"/>).</summary>
[SiloKeyedPlacement]
internal sealed class SiloCallsGrain(LiveCalls calls, ILocalSiloDetails silo) : Grain, ISiloCallsGrain
{
    public ValueTask<SiloCalls> GetCalls()
    {
        var here = this.GetPrimaryKeyString() == ISiloCallsGrain.KeyOf(silo.SiloAddress);
        return ValueTask.FromResult(new SiloCalls(RuntimeIdentity, here, here ? calls.Describe() : []));
    }
}

/// <summary>Places a grain keyed by a silo's address (<see cref="ISiloCallsGrain.KeyOf"/>) on that silo.</summary>
[GenerateSerializer, Immutable, SuppressReferenceTracking]
public sealed class SiloKeyedPlacement : PlacementStrategy
{
    internal static readonly SiloKeyedPlacement Instance = new();
}

/// <summary>Marks a grain class for <see cref="SiloKeyedPlacement"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SiloKeyedPlacementAttribute() : PlacementAttribute(SiloKeyedPlacement.Instance);

/// <summary>
/// The silo the key names, while it is a member; otherwise this one (the grain then answers that it is not there,
/// and the caller counts that silo as unreachable).
/// </summary>
internal sealed class SiloKeyedPlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var key = target.GrainIdentity.Key.ToString();
        foreach (var candidate in context.GetCompatibleSilos(target))
        {
            if (ISiloCallsGrain.KeyOf(candidate) == key)
            {
                return Task.FromResult(candidate);
            }
        }

        return Task.FromResult(context.LocalSilo);
    }
}
