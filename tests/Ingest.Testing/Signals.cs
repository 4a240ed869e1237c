using System.Diagnostics;
using System.Globalization;

namespace Ingest.Testing;

/// <summary>Sends a Unix signal (<c>-STOP</c>, <c>-CONT</c>, <c>-TERM</c>, …) to a process, as an operator's <c>kill</c> does.</summary>
public static class Signals
{
    /// <summary>Runs <c>/bin/kill     public static void Send(Process process, string signal)lt;signal    public static void Send(Process process, string signal)gt;     public static void Send(Process process, string signal)lt;pid    public static void Send(Process process, string signal)gt;</c> and waits for it.</summary>
    public static void Send(Process process, string signal)
    {
        using var kill = Process.Start(new ProcessStartInfo("/bin/kill")
        {
            ArgumentList = { signal, process.Id.ToString(CultureInfo.InvariantCulture) },
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException("could not run /bin/kill");
        kill.WaitForExit();
    }
}
