using System.Net;
using System.Net.Sockets;

namespace Ingest.ServiceDefaults;

/// <summary>Refuses, as a bad setting, a port another process already listens on (CONTRACT §2), before any listener starts.</summary>
public static class PortCheck
{
    public static void EnsureFree(string setting, int port)
    {
        if (port == 0)
        {
            return;
        }

        // Dual-stack on the any address where the host has IPv6 (what Kestrel and Orleans bind), so a listener on either
        // family is seen; IPv4 only otherwise.
        var ipv6 = Socket.OSSupportsIPv6;
        using var socket = new Socket(ipv6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (ipv6)
            {
                socket.DualMode = true;
            }

            // Ports in TIME_WAIT from an earlier run are free for a listener; only a live listener counts as taken.
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(new IPEndPoint(ipv6 ? IPAddress.IPv6Any : IPAddress.Any, port));
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.AddressAlreadyInUse or SocketError.AccessDenied)
        {
            throw new SettingException(setting, $"port {port} is already in use");
        }
    }
}
