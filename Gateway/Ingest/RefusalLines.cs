using System.Collections.Concurrent;
using System.Net;
using Ingest.Gateway.Auth;

namespace Ingest.Gateway.Ingest;

/// <summary>
/// Which refusals get a log line: one per status, reason and address (an IPv6 caller by its /64) per
/// REFUSAL_LOG_SECONDS, so a guesser or a reconnect storm cannot flood the log. Every refusal is still counted
/// (<c>ingest_upgrades_rejected_total</c>, <c>ingest_refusals_total</c>) and kept in <c>/v1/admin/refusals</c>; the line
/// that opens the next window says how many were left out. 0 logs every refusal.
/// </summary>
public sealed class RefusalLines(TimeSpan interval, TimeProvider clock)
{
    /// <summary>Distinct keys kept; past it, callers from further addresses share one line per status and window.</summary>
    internal const int MaxKeys = 4096;

    private static readonly IPAddress ManyAddresses = IPAddress.None;

    private readonly ConcurrentDictionary<(int Status, IPAddress Address, string Reason), Window> _windows = new();

    public RefusalLines(GatewaySettings settings)
        : this(settings.Limits.RefusalLogInterval, TimeProvider.System)
    {
    }

    /// <summary>True when this refusal gets its line; <paramref name="leftOut"/> is how many of its kind were not logged before it.</summary>
    public bool ShouldLog(int status, IPAddress? address, string reason, out int leftOut)
    {
        leftOut = 0;
        if (interval <= TimeSpan.Zero)
        {
            return true;
        }

        var now = clock.GetUtcNow();
        var key = (status, address is null ? ManyAddresses : AddressKey.Of(address), reason);
        if (!_windows.ContainsKey(key) && _windows.Count >= MaxKeys)
        {
            foreach (var (old, window) in _windows)
            {
                if (window.Over(now))
                {
                    _windows.TryRemove(old, out _);
                }
            }

            if (_windows.Count >= MaxKeys)
            {
                key = (status, ManyAddresses, "(many addresses)");
            }
        }

        return _windows.GetOrAdd(key, static _ => new Window()).TryOpen(now, interval, out leftOut);
    }

    private sealed class Window
    {
        private readonly Lock _gate = new();
        private DateTimeOffset _until = DateTimeOffset.MinValue;
        private int _leftOut;

        public bool Over(DateTimeOffset now)
        {
            lock (_gate)
            {
                return now >= _until;
            }
        }

        public bool TryOpen(DateTimeOffset now, TimeSpan interval, out int leftOut)
        {
            lock (_gate)
            {
                if (now < _until)
                {
                    _leftOut++;
                    leftOut = 0;
                    return false;
                }

                leftOut = _leftOut;
                _leftOut = 0;
                _until = now + interval;
                return true;
            }
        }
    }
}
