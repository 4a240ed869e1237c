using Ingest.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;

namespace Ingest.Tests.EndToEnd;

/// <summary>One silo and four gateways with different authentication settings, on one real redis-server.</summary>
public sealed class EndToEndFixture : IAsyncLifetime
{
    public IngestStack Stack { get; private set; } = null!;

    /// <summary>Basic credentials + JWT; seeds SUPPORT_EXOTEL=true for the cluster.</summary>
    public WebApplication Main { get; private set; } = null!;

    /// <summary>No Basic credentials; allow-list 127.0.0.0/8.</summary>
    public WebApplication AllowLoopback { get; private set; } = null!;

    /// <summary>Allow-list 198.51.100.0/24, no trusted proxies.</summary>
    public WebApplication AllowRemoteUntrusted { get; private set; } = null!;

    /// <summary>Allow-list 198.51.100.0/24, loopback trusted as a proxy.</summary>
    public WebApplication AllowRemoteTrusted { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Stack = await IngestStack.StartAsync();
        await Stack.AddSiloAsync();
        Main = await Stack.AddGatewayAsync(new() { ["SUPPORT_EXOTEL"] = "true" });
        var noBasic = new Dictionary<string, string?> { ["EXOTEL_BASIC_AUTH_USER"] = "", ["EXOTEL_BASIC_AUTH_PASS"] = "" };
        AllowLoopback = await Stack.AddGatewayAsync(new(noBasic) { ["EXOTEL_IP_ALLOWLIST"] = "127.0.0.0/8" });
        AllowRemoteUntrusted = await Stack.AddGatewayAsync(new(noBasic) { ["EXOTEL_IP_ALLOWLIST"] = "198.51.100.0/24" });
        AllowRemoteTrusted = await Stack.AddGatewayAsync(new(noBasic) { ["EXOTEL_IP_ALLOWLIST"] = "198.51.100.0/24", ["TRUSTED_PROXIES"] = "127.0.0.1" });
        var all = new[] { Main, AllowLoopback, AllowRemoteUntrusted, AllowRemoteTrusted };
        var ready = await RedisStreams.WaitUntilAsync(() => Task.FromResult(all.All(IngestStack.SupportsExotel)), TimeSpan.FromSeconds(10));
        if (!ready)
        {
            throw new InvalidOperationException("SUPPORT_EXOTEL did not reach every gateway");
        }
    }

    public async Task DisposeAsync() => await Stack.DisposeAsync();
}

[CollectionDefinition(Name)]
public sealed class EndToEndCollection : ICollectionFixture<EndToEndFixture>
{
    public const string Name = "end to end";
}
