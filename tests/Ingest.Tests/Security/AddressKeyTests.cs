using System.Net;
using Ingest.Gateway;
using Ingest.Gateway.Auth;
using Ingest.Gateway.Ingest;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ingest.Tests.Security;

/// <summary>Limits per address count an IPv6 caller by its /64, an IPv4 caller by its address.</summary>
public sealed class AddressKeyTests
{
    [Theory]
    [InlineData("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::")]
    [InlineData("2001:db8:1:2::1", "2001:db8:1:2::")]
    [InlineData("::ffff:198.51.100.7", "198.51.100.7")]
    [InlineData("198.51.100.7", "198.51.100.7")]
    [InlineData("::1", "::")]
    public void An_address_is_counted_as(string address, string key) =>
        Assert.Equal(IPAddress.Parse(key), AddressKey.Of(IPAddress.Parse(address)));

    [Fact]
    public void Connections_from_one_ipv6_64_share_MAX_CONNECTIONS_PER_IP_and_another_64_has_its_own()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["MAX_CONNECTIONS_PER_IP"] = "2" }).Build();
        var registry = new SessionRegistry(GatewaySettings.From(configuration), NullLogger<SessionRegistry>.Instance);

        Assert.True(registry.TryOpenConnection(IPAddress.Parse("2001:db8:1:2::1"), out _));
        Assert.True(registry.TryOpenConnection(IPAddress.Parse("2001:db8:1:2::2"), out _));
        Assert.False(registry.TryOpenConnection(IPAddress.Parse("2001:db8:1:2:ffff::3"), out var refusal));
        Assert.Equal("too many connections from this address", refusal);
        Assert.True(registry.TryOpenConnection(IPAddress.Parse("2001:db8:1:3::1"), out _));

        // A connection that ends gives its place back to its /64.
        registry.CloseConnection(IPAddress.Parse("2001:db8:1:2::1"));
        Assert.True(registry.TryOpenConnection(IPAddress.Parse("2001:db8:1:2::9"), out _));
        Assert.Equal(3, registry.Connections);
    }
}
