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
            if (raw.Contains('/', StringComparison.Ordinal))
            {
                if (!IPNetwork.TryParse(raw, out var network))
                {
                    throw new SettingException(setting, $"'{Truncate(raw)}' is not a valid CIDR range");
                }

                networks.Add(network);
            }
            else if (IPAddress.TryParse(raw, out var address))
            {
                address = Normalize(address);
                networks.Add(new IPNetwork(address, address.GetAddressBytes().Length * 8));
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

    private static string Truncate(string s) => s.Length <= 48 ? s : s[..48] + "...";
}
