using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Ingest.Silo;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Operations;

/// <summary>CONTRACT §2: several silos share a host when only SILO_PORT and GATEWAY_PORT differ; a port in use is one line.</summary>
public sealed class SiloPortTests
{
    [Fact]
    public void The_silo_http_port_follows_SILO_PORT_so_the_default_stays_8081()
    {
        Assert.Equal(8081, SiloSettings.DefaultHttpPortFor(11111));
        Assert.Equal(8082, SiloSettings.DefaultHttpPortFor(11112));
        Assert.NotEqual(SiloSettings.DefaultHttpPortFor(11111), SiloSettings.DefaultHttpPortFor(11121));
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task Two_silos_on_one_host_with_only_SILO_PORT_and_GATEWAY_PORT_set_both_become_ready()
    {
        await using var cluster = await ProcessCluster.StartAsync();
        foreach (var name in new[] { "silo-a", "silo-b" })
        {
            var (siloPort, httpPort) = PortWithFreeDerivedHttpPort();
            var extra = new Dictionary<string, string>
            {
                ["SILO_PORT"] = siloPort.ToString(CultureInfo.InvariantCulture),
                ["GATEWAY_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            };
            var silo = await cluster.StartSiloAsync(name, extra, httpPort);
            Assert.False(silo.HasExited);
        }

        Assert.All(cluster.Children, c => Assert.False(c.HasExited, c.Tail()));
    }

    [Theory]
    [InlineData("SILO_PORT")]
    [InlineData("GATEWAY_PORT")]
    [InlineData("SILO_HTTP_PORT")]
    public async Task A_silo_port_already_in_use_stops_the_silo_with_one_line_naming_it(string setting)
    {
        using var taken = new TcpListener(IPAddress.Any, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var env = new Dictionary<string, string>
        {
            ["REDIS_URL"] = "127.0.0.1:1",
            ["SILO_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            ["GATEWAY_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            ["SILO_HTTP_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            ["SILO_ADVERTISED_IP"] = "127.0.0.1",
        };
        env[setting] = port.ToString(CultureInfo.InvariantCulture);

        var outcome = await HostRun.RunAsync(HostRun.SiloDll, env);

        HostRun.AssertRefused(outcome, setting);
        Assert.Contains(port.ToString(CultureInfo.InvariantCulture), outcome.Stderr[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_gateway_PORT_already_in_use_stops_the_gateway_with_one_line_naming_it()
    {
        using var taken = new TcpListener(IPAddress.Any, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;

        var outcome = await HostRun.RunAsync(HostRun.GatewayDll, new() { ["REDIS_URL"] = "127.0.0.1:1", ["PORT"] = port.ToString(CultureInfo.InvariantCulture) });

        HostRun.AssertRefused(outcome, "PORT");
        Assert.Contains(port.ToString(CultureInfo.InvariantCulture), outcome.Stderr[0], StringComparison.Ordinal);
    }

    private static (int SiloPort, int HttpPort) PortWithFreeDerivedHttpPort()
    {
        for (var attempt = 0; ; attempt++)
        {
            var siloPort = RedisServer.FreePort();
            var httpPort = SiloSettings.DefaultHttpPortFor(siloPort);
            if (IsFree(httpPort) || attempt > 50)
            {
                return (siloPort, httpPort);
            }
        }
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Any, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
