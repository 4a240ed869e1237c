using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace Ingest.Gateway.Admin;

/// <summary>
/// The management grain as the admin API reaches it. It is an ordinary activation: right after a kill -9 it may live on
/// the dead silo, and a call to it hangs until the membership declares that silo dead (seconds). So each question is
/// asked at once of several activations, each placed (by Orleans' placement hint) on a different silo the last answer
/// named, plus key 0 wherever it lives; the first answer wins. While any silo answers, the question is answered.
/// </summary>
internal static class Management
{
    public static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(2);

    /// <summary>The silos of the last answer that named them (empty until one did).</summary>
    private static volatile SiloAddress[] s_known = [];

    /// <summary>Records the cluster's silos, so the next question has one activation on each.</summary>
    public static void Remember(IEnumerable<SiloAddress> silos) => s_known = silos.ToArray();

    /// <summary>The first answer of <paramref name="call"/> from a management grain on any silo; null if none answers.</summary>
    public static async Task<(IManagementGrain Grain, T Result)?> AskAsync<T>(IClusterClient client, Func<IManagementGrain, Task<T>> call, CancellationToken aborted)
    {
        // Right after a kill -9 the client still counts the dead silo among its gateways: a message routed through it
        // fails at once (its connection is gone) until the client drops that gateway, a moment later. So a round in
        // which every attempt failed is asked again after a pause, until the budget is spent.
        var deadline = DateTime.UtcNow + AskBudget;
        while (true)
        {
            if (await AskOnceAsync(client, call, aborted) is { } answer)
            {
                return answer;
            }

            aborted.ThrowIfCancellationRequested();
            if (DateTime.UtcNow + RetryPause >= deadline)
            {
                return null;
            }

            await Task.Delay(RetryPause, aborted);
        }
    }

    /// <summary>How long a question is asked again while no attempt answers, before the cluster counts as unreachable.</summary>
    public static readonly TimeSpan AskBudget = TimeSpan.FromSeconds(6);

    private static readonly TimeSpan RetryPause = TimeSpan.FromMilliseconds(250);

    private static async Task<(IManagementGrain Grain, T Result)?> AskOnceAsync<T>(IClusterClient client, Func<IManagementGrain, Task<T>> call, CancellationToken aborted)
    {
        var attempts = new List<Task<(IManagementGrain Grain, T Result)?>> { AttemptAsync(client, 0, null, call, aborted) };
        attempts.AddRange(s_known.Select(silo => AttemptAsync(client, KeyOf(silo), silo, call, aborted)));
        while (attempts.Count > 0)
        {
            var done = await Task.WhenAny(attempts);
            attempts.Remove(done);
            if (await done is { } answer)
            {
                return answer;
            }
        }

        return null;
    }

    /// <summary>A key of its own per silo (never 0), stable for the silo's life.</summary>
    private static long KeyOf(SiloAddress silo) => 1 + (uint)silo.GetConsistentHashCode();

    private static async Task<(IManagementGrain Grain, T Result)?> AttemptAsync<T>(
        IClusterClient client, long key, SiloAddress? placeOn, Func<IManagementGrain, Task<T>> call, CancellationToken aborted)
    {
        var grain = client.GetGrain<IManagementGrain>(key);
        try
        {
            Task<T> asked;
            if (placeOn is null)
            {
                asked = call(grain);
            }
            else
            {
                // The hint only matters when this call activates the grain; it stays in this attempt's own flow.
                RequestContext.Set(IPlacementDirector.PlacementHintKey, placeOn);
                try
                {
                    asked = call(grain);
                }
                finally
                {
                    RequestContext.Remove(IPlacementDirector.PlacementHintKey);
                }
            }

            return (grain, await asked.WaitAsync(AttemptTimeout, aborted));
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !aborted.IsCancellationRequested)
        {
            return null;
        }
    }
}
