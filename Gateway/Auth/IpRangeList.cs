using System.Net;
using Ingest.ServiceDefaults;

namespace Ingest.Gateway.Auth;

/// <summary>A comma-separated list of IP addresses and CIDR ranges (EXOTEL_IP_ALLOWLIST, TRUSTED_PROXIES).</summary>
public sealed class IpRangeList
{
    private readonly IPNetwork[] _networks;

    private IpRangeList(IPNetwork[] networks) => _networks = networks;

    public static readonly IpRangeList Empty = new([]);

    public bool IsEmpty => _networks.Length == 0;

    public IReadOnlyList<IPNetwork> Networks => _networks;

    public static IpRangeList Parse(string setting, string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return Empty;
        }

        var networks = new List<IPNetwork>();
        foreach (var raw in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // IPAddress.Parse reads the inet_aton forms (127.0.0.010 is octal 8, 10.1 is 10.0.0.1, 0x7f.0.0.1):
            // an allow-list must mean what it says, so only the dotted-quad form is taken for IPv4.
            var address = raw.Split('/', 2)[0];
            if (!address.Contains(':', StringComparison.Ordinal) && !IsCanonicalIPv4(address))
            {
                throw new SettingException(setting, $"'{Truncate(raw)}' is not written as four decimal numbers from 0 to 255 without leading zeros");
            }

            if (raw.Contains('/', StringComparison.Ordinal))
            {
                if (!IsCanonicalPrefix(raw[(raw.IndexOf('/', StringComparison.Ordinal) + 1)..]) || !IPNetwork.TryParse(raw, out var network))
                {
                    throw new SettingException(setting, $"'{Truncate(raw)}' is not a valid CIDR range");
                }

                networks.Add(network);
            }
            else if (IPAddress.TryParse(raw, out var single))
            {
                single = Normalize(single);
                networks.Add(new IPNetwork(single, single.GetAddressBytes().Length * 8));
            }
            else
            {
                throw new SettingException(setting, $"'{Truncate(raw)}' is not an IP address or CIDR range");
            }
        }

        return new IpRangeList([.. networks]);
    }

    public bool Contains(IPAddress? address)
    {
        if (address is null)
        {
            return false;
        }

        address = Normalize(address);
        foreach (var network in _networks)
        {
            if (network.Contains(address))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>IPv4 arriving on a dual-stack socket shows up as ::ffff:a.b.c.d; compare it as IPv4.</summary>
    public static IPAddress Normalize(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    /// <summary>a.b.c.d: exactly four parts, each decimal 0–255, no leading zero (so no octal or hex reading exists).</summary>
    public static bool IsCanonicalIPv4(string text)
    {
        var parts = text.Split('.');
        return parts.Length == 4 && parts.All(p =>
            p.Length is >= 1 and <= 3 && p.All(char.IsAsciiDigit) && (p.Length == 1 || p[0] != '0') && int.Parse(p, System.Globalization.CultureInfo.InvariantCulture) <= 255);
    }

    private static bool IsCanonicalPrefix(string text) =>
        text.Length is >= 1 and <= 3 && text.All(char.IsAsciiDigit) && (text.Length == 1 || text[0] != '0');

    private static string Truncate(string s) => s.Length <= 48 ? s : s[..48] + "...";
}
