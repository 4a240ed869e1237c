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
