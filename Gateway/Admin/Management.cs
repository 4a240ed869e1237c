using Orleans.Runtime;

namespace Ingest.Gateway.Admin;

/// <summary>
/// The management grain as the admin API reaches it. It is an ordinary activation: right after a kill -9 it may live on
/// the dead silo, and a call to it hangs until the membership declares that silo dead (seconds). Another key is another
/// activation, placed on a live silo, so each call is tried on up to three keys with a short timeout.
/// </summary>
internal static class Management
{
    private const int Attempts = 3;

    public static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(2);

    /// <summary>The first answer of <paramref name="call"/> on management grain 0, 1 or 2; null if none answers.</summary>
    public static async Task<(IManagementGrain Grain, T Result)?> AskAsync<T>(IClusterClient client, Func<IManagementGrain, Task<T>> call, CancellationToken aborted)
    {
        for (var key = 0; key < Attempts; key++)
        {
            var grain = client.GetGrain<IManagementGrain>(key);
            try
            {
                return (grain, await call(grain).WaitAsync(AttemptTimeout, aborted));
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !aborted.IsCancellationRequested)
            {
                // Try the next activation.
            }
        }

        return null;
    }
}
