using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Ingest.ServiceDefaults;

/// <summary>
/// The last word on shutdown: once SIGTERM (or Ctrl+C) starts the host's stop, the process is gone within
/// <see cref="HostOptions.ShutdownTimeout"/> plus <see cref="Margin"/>, whatever Redis or the cluster do. The host's
/// timeout only cancels the stop tokens; a library that waits on a dead Redis while stopping or disposing (Orleans'
/// membership update on leave, a multiplexer reconnect) could otherwise keep the process alive for minutes.
/// Armed by the processes' Main only: it ends the whole process, so in-process test hosts must never arm it.
/// </summary>
public static class ShutdownWatchdog
{
    /// <summary>Time after the host's own shutdown timeout for the rest of Main (dispose, log flush) to finish.</summary>
    public static readonly TimeSpan Margin = TimeSpan.FromSeconds(10);

    // Static on purpose: the timer must outlive the host's disposal, which is one of the things it guards.
    private static Timer? s_timer;

    public static void Watch(IServiceProvider services)
    {
        var bound = services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout + Margin;
        services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.Register(() =>
            Interlocked.CompareExchange(ref s_timer, new Timer(_ => ForceExit(bound), null, bound, Timeout.InfiniteTimeSpan), null));
    }

    private static void ForceExit(TimeSpan bound)
    {
        Console.Error.WriteLine($"shutdown did not finish within {bound.TotalSeconds:F0} s; exiting now");

        // Not Environment.Exit: its ProcessExit handlers wait for the very host that is stuck.
        Process.GetCurrentProcess().Kill();
    }
}
