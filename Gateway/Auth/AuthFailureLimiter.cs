using System.Net;
using System.Threading.RateLimiting;

namespace Ingest.Gateway.Auth;

/// <summary>
/// Counts wrong credentials per caller address in a sliding window (the framework's
/// <see cref="SlidingWindowRateLimiter"/>, one partition per address). Once an address has spent its budget, every
/// upgrade from it is answered 429 with Retry-After, before any credential is checked, until the window slides on.
/// IPv6 callers are counted per /64, since one host usually holds a whole /64.
/// </summary>
public sealed partial class AuthFailureLimiter : IDisposable
{
    private readonly PartitionedRateLimiter<IPAddress> _limiter;
    private readonly GatewayLimits _limits;
    private readonly ILogger<AuthFailureLimiter> _logger;

    public AuthFailureLimiter(GatewaySettings settings, ILogger<AuthFailureLimiter> logger)
    {
        _limits = settings.Limits;
        _logger = logger;
        var options = new SlidingWindowRateLimiterOptions
        {
            PermitLimit = _limits.AuthFailureLimit,
            Window = _limits.AuthFailureWindow,
            SegmentsPerWindow = 6,
            QueueLimit = 0,
            AutoReplenishment = true,
        };
        _limiter = PartitionedRateLimiter.Create<IPAddress, IPAddress>(address => RateLimitPartition.GetSlidingWindowLimiter(address, _ => options));
    }

    /// <summary>True when <paramref name="address"/> has no failures left in the window; it must be refused unheard.</summary>
    public bool IsBlocked(IPAddress address, out TimeSpan retryAfter)
    {
        // Acquiring zero permits only asks whether any are left.
        using var lease = _limiter.AttemptAcquire(Key(address), 0);
        retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : _limits.AuthFailureWindow / 6;
        return !lease.IsAcquired;
    }

    /// <summary>Records one wrong credential and waits the fixed failure delay (unless the caller goes away first).</summary>
    public async Task RecordFailureAsync(IPAddress address, CancellationToken aborted)
    {
        using (var lease = _limiter.AttemptAcquire(Key(address)))
        {
            if (!lease.IsAcquired)
            {
                LogBlocked(address, _limits.AuthFailureLimit, _limits.AuthFailureWindow.TotalSeconds);
            }
        }

        if (_limits.AuthFailureDelay > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(_limits.AuthFailureDelay, aborted);
            }
            catch (OperationCanceledException)
            {
                // The caller hung up; there is nobody left to answer.
            }
        }
    }

    public void Dispose() => _limiter.Dispose();

    private static IPAddress Key(IPAddress address) => AddressKey.Of(address);

    [LoggerMessage(EventId = 6601, Level = LogLevel.Warning, Message = "Address {RemoteIp} presented more than {Limit} wrong credentials in {Seconds} s; refusing its upgrades with 429 until the window slides")]
    private partial void LogBlocked(IPAddress remoteIp, int limit, double seconds);
}
