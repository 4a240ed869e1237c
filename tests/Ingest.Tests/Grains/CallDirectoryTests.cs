using System.Net;
using Ingest.Grains.Publishing;
using Orleans.Runtime;
using StackExchange.Redis;

namespace Ingest.Tests.Grains;

/// <summary>The call grains' directory on a real redis-server: one registration per call, in the call's slot.</summary>
public sealed class CallDirectoryTests : IAsyncLifetime
{
    private RedisServer _redis = null!;
    private ConnectionMultiplexer _connection = null!;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartAsync();
        _connection = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString);
    }

    public async Task DisposeAsync()
    {
        await _connection.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [Fact]
    public async Task The_first_registration_holds_until_its_own_activation_leaves_or_a_caller_names_it_as_the_previous_one()
    {
        var directory = new CallDirectory(_connection);
        var grain = GrainId.Create("callstream", "dir-" + Guid.NewGuid().ToString("N")[..8]);
        var first = Address(grain, 11111);
        var second = Address(grain, 11112);

        Assert.Null(await directory.Lookup(grain));
        Assert.Equal(first, await directory.Register(first));
        // A second activation elsewhere is told where the call already runs, and does not take over.
        Assert.Equal(first, await directory.Register(second));
        Assert.Equal(first, await directory.Lookup(grain));

        // Only the activation registered may remove the registration.
        await directory.Unregister(second);
        Assert.Equal(first, await directory.Lookup(grain));

        // A caller that knows the registration points at a dead silo replaces it by naming it as the previous one.
        Assert.Equal(second, await directory.Register(second, first));
        Assert.Equal(second, await directory.Lookup(grain));
        await directory.Unregister(second);
        Assert.Null(await directory.Lookup(grain));
    }

    [Fact]
    public async Task A_registration_lives_in_the_call_s_own_slot_and_expires()
    {
        var directory = new CallDirectory(_connection);
        var id = "dir-" + Guid.NewGuid().ToString("N")[..8];
        await directory.Register(Address(GrainId.Create("callstream", id), 11111));

        var key = "ingest:directory:{" + id + "}";
        Assert.True(await _connection.GetDatabase().KeyExistsAsync(key));
        var ttl = await _connection.GetDatabase().KeyTimeToLiveAsync(key);
        Assert.True(ttl > TimeSpan.FromDays(7), $"expiry {ttl}");
    }

    private static GrainAddress Address(GrainId grain, int port) => new()
    {
        GrainId = grain,
        ActivationId = ActivationId.NewId(),
        SiloAddress = SiloAddress.New(new IPEndPoint(IPAddress.Loopback, port), 1),
    };
}
