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

        using var socket = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // Dual-stack on the any address: what Kestrel and Orleans bind, so a listener on either family is seen.
            socket.DualMode = true;
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(new IPEndPoint(IPAddress.IPv6Any, port));
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.AddressAlreadyInUse or SocketError.AccessDenied)
        {
            throw new SettingException(setting, $"port {port} is already in use");
        }
    }
}
