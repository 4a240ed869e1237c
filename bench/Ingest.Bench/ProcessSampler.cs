using System.Globalization;

namespace Ingest.Bench;

/// <summary>CPU time and resident memory of a process we started, read from /proc (Linux only).</summary>
public static class ProcessSampler
{
    // USER_HZ is 100 on every Linux the benchmark targets (x86-64, arm64).
    private const double ClockTicksPerSecond = 100.0;

    public static double CpuSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");

        // Fields after the command name, which is in parentheses and may contain spaces; utime and stime are 14 and 15.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return ticks / ClockTicksPerSecond;
    }

    public static long RssBytes(int pid) => StatusKilobytes(pid, "VmRSS:") * 1024;

    public static long PeakRssBytes(int pid) => StatusKilobytes(pid, "VmHWM:") * 1024;

    /// <summary>Resets VmHWM so each scenario reports its own peak; false where the kernel refuses.</summary>
    public static bool TryResetPeak(int pid)
    {
        try
        {
            File.WriteAllText($"/proc/{pid}/clear_refs", "5");
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long StatusKilobytes(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
            {
                return long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }
}

/// <summary>CPU seconds used and peak RSS of each measured process between construction and <see cref="Stop"/>.</summary>
public sealed class ProcessUsage
{
    private readonly IReadOnlyDictionary<string, int> _processes;
    private readonly Dictionary<string, double> _cpuAtStart = new(StringComparer.Ordinal);

    public ProcessUsage(IReadOnlyDictionary<string, int> processes)
    {
        _processes = processes;
        foreach (var (name, pid) in processes)
        {
            ProcessSampler.TryResetPeak(pid);
            _cpuAtStart[name] = ProcessSampler.CpuSeconds(pid);
        }
    }

    public Dictionary<string, ProcessFigures> Stop() =>
        _processes.ToDictionary(
            p => p.Key,
            p => new ProcessFigures(
                Math.Round(ProcessSampler.CpuSeconds(p.Value) - _cpuAtStart[p.Key], 2),
                Math.Round(ProcessSampler.PeakRssBytes(p.Value) / 1048576.0, 1)),
            StringComparer.Ordinal);

    public long RssBytes(string name) => ProcessSampler.RssBytes(_processes[name]);
}

public sealed record ProcessFigures(double CpuSeconds, double PeakRssMb);
