using System.Net;

namespace Ingest.Gateway.Ingest;

/// <summary>Why an upgrade was refused: CONTRACT §8's list, nothing else. <see cref="RefusalReasons.Wire"/> gives the names.</summary>
public enum RefusalReason
{
    ExotelDisabled,
    NoCredentials,
    BadCredentials,
    NotAllowlisted,
    BadToken,
    RateLimited,
    Draining,
    OverCapacity,
    Starting,
}

public static class RefusalReasons
{
    private static readonly string[] Names =
        ["exotel_disabled", "no_credentials", "bad_credentials", "not_allowlisted", "bad_token", "rate_limited", "draining", "over_capacity", "starting"];

    /// <summary>The name operators see in <c>/v1/admin/refusals</c> and on the <c>reason</c> label of <c>ingest_refusals_total</c>.</summary>
    public static string Wire(this RefusalReason reason) => Names[(int)reason];

    public static IReadOnlyList<string> All => Names;
}

/// <summary>One refused upgrade. <see cref="Detail"/> is the refusal text sent to the caller: it never holds a credential.</summary>
public sealed record Refusal(long Number, DateTime At, IPAddress Remote, RefusalReason Reason, int Status, string? Protocol, string Detail);

/// <summary>
/// The last <see cref="Capacity"/> refused upgrades of this gateway, for <c>GET /v1/admin/refusals</c>. A fixed ring of
/// immutable entries written with one interlocked increment and no lock: a refusal storm (a guesser, a drain) costs the
/// upgrade path nothing more than an allocation, and a reader never blocks a writer.
/// </summary>
public sealed class RefusalLog(GatewayMetrics? metrics = null)
{
    public const int Capacity = 256;

    private readonly GatewayMetrics _metrics = metrics ?? GatewayMetrics.Live;

    private readonly Refusal?[] _ring = new Refusal?[Capacity];
    private long _count;

    public void Record(IPAddress remote, RefusalReason reason, int status, string? protocol, string detail)
    {
        var number = Interlocked.Increment(ref _count);
        Volatile.Write(ref _ring[(number - 1) % Capacity], new Refusal(number, DateTime.UtcNow, remote, reason, status, protocol, detail));
        _metrics.Refusals.Add(1, new KeyValuePair<string, object?>("reason", reason.Wire()));
    }

    /// <summary>Newest first. An entry overwritten while this reads is left out rather than shown out of order.</summary>
    public IReadOnlyList<Refusal> Recent()
    {
        var newest = Volatile.Read(ref _count);
        var oldest = Math.Max(1, newest - Capacity + 1);
        var result = new List<Refusal>((int)(newest - oldest + 1));
        for (var number = newest; number >= oldest; number--)
        {
            // A writer that took its number but has not stored its entry yet leaves the older one (or null) there.
            if (Volatile.Read(ref _ring[(number - 1) % Capacity]) is { } entry && entry.Number == number)
            {
                result.Add(entry);
            }
        }

        return result;
    }
}
