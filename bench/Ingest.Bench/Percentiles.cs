using System.Diagnostics;

namespace Ingest.Bench;

public sealed record LatencySummary(long Samples, double P50Ms, double P95Ms, double P99Ms, double MaxMs)
{
    public static LatencySummary From(List<double> millis)
    {
        if (millis.Count == 0)
        {
            return new LatencySummary(0, double.NaN, double.NaN, double.NaN, double.NaN);
        }

        millis.Sort();
        double At(double q) => Math.Round(millis[Math.Min(millis.Count - 1, (int)Math.Ceiling(q * millis.Count) - 1)], 2);
        return new LatencySummary(millis.Count, At(0.50), At(0.95), At(0.99), Math.Round(millis[^1], 2));
    }
}

/// <summary>Latency of the frames that became readable within one second of the scenario: shows whether a tail is steady queueing or periodic stalls.</summary>
public sealed record LatencySecond(int Second, long Samples, double P50Ms, double P99Ms, double MaxMs)
{
    public static List<LatencySecond> Series(List<(long ReadTicks, double Ms)> samples, long originTicks)
    {
        return samples
            .GroupBy(s => (int)Math.Max(0, (s.ReadTicks - originTicks) / Stopwatch.Frequency))
            .OrderBy(g => g.Key)
            .Select(g =>
            {
                var summary = LatencySummary.From(g.Select(s => s.Ms).ToList());
                return new LatencySecond(g.Key, summary.Samples, summary.P50Ms, summary.P99Ms, summary.MaxMs);
            })
            .ToList();
    }
}
