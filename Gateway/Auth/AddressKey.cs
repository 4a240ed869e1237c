using System.Net;
using System.Net.Sockets;

namespace Ingest.Gateway.Auth;

/// <summary>
/// Who a limit per address counts: an IPv4 address itself (an IPv4-mapped IPv6 address as its IPv4), an IPv6 address
/// by its /64. One subscriber or host is routinely given a whole /64, so counting single IPv6 addresses would let one
/// caller pass a per-address limit 2^64 times. Used by the connection limit (MAX_CONNECTIONS_PER_IP) and the
/// wrong-credential limit (AUTH_FAILURE_LIMIT).
/// </summary>
public static class AddressKey
{
    public static IPAddress Of(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return address;
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes);
    }
}
