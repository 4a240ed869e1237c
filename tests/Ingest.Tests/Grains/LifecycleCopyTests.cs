using System.Collections.Immutable;
using Ingest.Grains.Interfaces;
using Orleans.Runtime;
using Orleans.Runtime.Placement;
using StackExchange.Redis;

namespace Ingest.Tests.Grains;

/// <summary>
/// The two-step write (docs/OPERATIONS.md "Redis Cluster"): a call's batch lands in its own slot, its lifecycle entries
/// are then copied to <c>ingest:calls</c>. Here the second step is cut off for real — a Redis ACL takes the silos'
/// user's rights on the <c>ingest:calls</c> slot's keys away — and the silo holding the call is killed between the
/// two steps; what it left must still reach <c>ingest:calls</c> exactly once and in order.
/// Each test has its own redis-server (it changes the server's ACL).
/// </summary>
[Trait("Category", "Slow")]
public sealed class LifecycleCopyTests
{
    private const string OpenKey = "{ingest:calls}:open";
    private static long _nextIndex;

    private static CallStart Start(string streamId) =>
        new(CallProtocol.Exotel, streamId, "call-" + streamId, "acct", "+911", "+912", "pcm16le", 8000, 1,
            ImmutableDictionary<string, string>.Empty, "conn-1");

    private static CallItem Media(long seq) =>
        new(Interlocked.Increment(ref _nextIndex), CallItemKind.Media, seq, null, seq * 100, [(byte)seq], null, null, null);

    private static CallItem Dtmf(long seq, string digit) =>
        new(Interlocked.Increment(ref _nextIndex), CallItemKind.Dtmf, seq, null, seq * 100, null, digit, 100, null);

    [Fact]
    public async Task Lifecycle_entries_a_killed_silo_wrote_but_did_not_copy_are_copied_once_by_the_next_activation()
    {
        await using var cluster = await IngestGrainCluster.StartAsync(silos: 2, serviceIdPrefix: "lifecycle");
        using var qa = await QaConnectionAsync(cluster);
        var (id, grain) = await StartOffThePrimaryAsync(cluster);
        Assert.Equal(CallAckStatus.Ok, (await grain.Append("conn-1", [Media(2)])).Status);

        await CutOffCallsSlotAsync(qa);
        var ack = await grain.Append("conn-1", [Dtmf(3, "7"), Media(4), Dtmf(5, "9")]);
        Assert.Equal(CallAckStatus.Ok, ack.Status);
        Assert.Equal(["start"], (await Lifecycle(qa, id)).Select(e => e["event"]));
        Assert.Equal(2, (await qa.GetDatabase().StreamRangeAsync("ingest:lifecycle:{" + id + "}")).Count(e => e["event"] == "dtmf"));

        await KillHostAsync(cluster, id);
        await RestoreCallsSlotAsync(qa);

        // The gateway presents the call again, as it does after a failover, and the call goes on.
        Assert.Equal(CallAckStatus.NotStarted, (await grain.Append("conn-1", [Media(6)])).Status);
        Assert.Equal(CallAckStatus.Ok, (await grain.Start(Start(id))).Status);
        Assert.Equal(CallAckStatus.Ok, (await grain.Append("conn-1", [Media(6)])).Status);
        Assert.Equal(CallAckStatus.Ok, (await grain.Stop(new CallStop("callended", 7, "conn-1"))).Status);

        var lifecycle = await Lifecycle(qa, id);
        Assert.Equal(["start", "dtmf", "dtmf", "stop"], lifecycle.Select(e => e["event"]));
        Assert.Equal(["7", "9"], lifecycle.Where(e => e["event"] == "dtmf").Select(e => e["digit"]));
        Assert.Equal("3", lifecycle[^1]["frames"]);
        Assert.Equal([2L, 4, 6], (await RedisStreams.ReadAudioAsync(qa, id)).Select(a => a.Seq));
        Assert.False(await qa.GetDatabase().SortedSetScoreAsync(OpenKey, id) is not null, "a stopped, copied call leaves the open set");
    }

    [Fact]
    public async Task When_the_silo_and_the_gateway_both_die_between_the_two_steps_the_sweeper_copies_the_stop_once()
    {
        await using var cluster = await IngestGrainCluster.StartAsync(silos: 2, serviceIdPrefix: "sweep", sweepSeconds: 1);
        using var qa = await QaConnectionAsync(cluster);
        var (id, grain) = await StartOffThePrimaryAsync(cluster);
        await grain.Append("conn-1", [Media(2), Media(3)]);
        Assert.NotNull(await qa.GetDatabase().SortedSetScoreAsync(OpenKey, id));

        await CutOffCallsSlotAsync(qa);
        await grain.Append("conn-1", [Dtmf(4, "1"), Media(5)]);
        Assert.Equal(CallAckStatus.Ok, (await grain.Stop(new CallStop("callended", 6, "conn-1"))).Status);
        Assert.Equal(["start"], (await Lifecycle(qa, id)).Select(e => e["event"]));

        // Nobody calls this grain again: only the sweeper can finish the copy.
        await KillHostAsync(cluster, id);
        await RestoreCallsSlotAsync(qa);

        Assert.True(
            await RedisStreams.WaitUntilAsync(async () => (await Lifecycle(qa, id)).Any(e => e["event"] == "stop"), TimeSpan.FromSeconds(40)),
            "the sweeper copied the stop");
        Assert.True(
            await RedisStreams.WaitUntilAsync(async () => await qa.GetDatabase().SortedSetScoreAsync(OpenKey, id) is null, TimeSpan.FromSeconds(10)),
            "the call left the open set");
        await Task.Delay(TimeSpan.FromSeconds(3)); // further sweeps must not copy anything again
        var lifecycle = await Lifecycle(qa, id);
        Assert.Equal(["start", "dtmf", "stop"], lifecycle.Select(e => e["event"]));
        Assert.Equal("3", lifecycle[^1]["frames"]);
    }

    [Fact]
    public async Task On_a_Redis_Cluster_a_copy_cut_off_by_a_silo_kill_lands_once_in_order_via_the_sweeper()
    {
        await using var redis = await RedisClusterServer.StartAsync(masters: 3);
        await using var cluster = await IngestGrainCluster.StartOnAsync(redis.ConnectionString, silos: 2, serviceIdPrefix: "sweep-cluster", sweepSeconds: 1);
        using var qa = await QaConnectionAsync(cluster);
        // A call whose keys are on another master than ingest:calls: the two steps go to two shards.
        var callsMaster = await redis.MasterPortForKeyAsync("ingest:calls");
        var (id, grain) = await StartOffThePrimaryAsync(cluster, async candidate => await redis.MasterPortForKeyAsync("ingest:audio:{" + candidate + "}") != callsMaster);
        await grain.Append("conn-1", [Media(2), Media(3)]);

        await CutOffCallsSlotAsync(qa);
        await grain.Append("conn-1", [Dtmf(4, "3"), Media(5), Dtmf(6, "4")]);
        Assert.Equal(CallAckStatus.Ok, (await grain.Stop(new CallStop("callended", 7, "conn-1"))).Status);
        Assert.Equal(["start"], (await Lifecycle(qa, id)).Select(e => e["event"]));

        await KillHostAsync(cluster, id);
        await RestoreCallsSlotAsync(qa);

        Assert.True(
            await RedisStreams.WaitUntilAsync(async () => await qa.GetDatabase().SortedSetScoreAsync(OpenKey, id) is null, TimeSpan.FromSeconds(40)),
            "the sweeper finished the copy and the call left the open set");
        await Task.Delay(TimeSpan.FromSeconds(3));
        var lifecycle = await Lifecycle(qa, id);
        Assert.Equal(["start", "dtmf", "dtmf", "stop"], lifecycle.Select(e => e["event"]));
        Assert.Equal(["3", "4"], lifecycle.Where(e => e["event"] == "dtmf").Select(e => e["digit"]));
    }

    [Fact]
    public async Task A_call_whose_silo_and_gateway_both_died_is_ended_by_the_sweeper_as_gateway_lost()
    {
        await using var cluster = await IngestGrainCluster.StartAsync(silos: 2, orphanSeconds: 2, serviceIdPrefix: "orphan", sweepSeconds: 1);
        using var qa = await QaConnectionAsync(cluster);
        var (id, grain) = await StartOffThePrimaryAsync(cluster);
        await grain.Append("conn-1", [Media(2), Media(3), Media(4)]);

        await KillHostAsync(cluster, id);

        Assert.True(
            await RedisStreams.WaitUntilAsync(async () => (await Lifecycle(qa, id)).Any(e => e["event"] == "stop"), TimeSpan.FromSeconds(40)),
            "the sweeper woke the call and it ended as an orphan");
        var stop = Assert.Single(await Lifecycle(qa, id), e => e["event"] == "stop");
        Assert.Equal("gateway_lost", stop["reason"]);
        Assert.Equal("3", stop["frames"]);
    }

    /// <summary>
    /// A second Redis user for the test itself (on every node), so its reads go on while the silos' (default) user is
    /// restricted.
    /// </summary>
    private static async Task<ConnectionMultiplexer> QaConnectionAsync(IngestGrainCluster cluster)
    {
        await OnEveryNodeAsync(cluster.Connection, "ACL", "SETUSER", "qa", "on", ">qa-password", "~*", "&*", "+@all");
        return await ConnectionMultiplexer.ConnectAsync(cluster.RedisConnectionString + ",user=qa,password=qa-password");
    }

    /// <summary>The silos keep every key but <c>ingest:calls</c> and its <c>{ingest:calls}</c> companions: step one works, step two fails.</summary>
    private static Task CutOffCallsSlotAsync(IConnectionMultiplexer qa) =>
        OnEveryNodeAsync(
            qa, "ACL", "SETUSER", "default", "resetkeys",
            "~[^i{]*", "~ingest:audio:*", "~ingest:cursor:*", "~ingest:meta:*", "~ingest:lifecycle:*");

    private static Task RestoreCallsSlotAsync(IConnectionMultiplexer qa) =>
        OnEveryNodeAsync(qa, "ACL", "SETUSER", "default", "allkeys");

    private static Task OnEveryNodeAsync(IConnectionMultiplexer redis, string command, params object[] args) =>
        Task.WhenAll(redis.GetEndPoints().Select(e => redis.GetServer(e)).Where(s => s.IsConnected).Select(s => s.ExecuteAsync(command, args)));

    private static Task<IReadOnlyList<Dictionary<string, string>>> Lifecycle(IConnectionMultiplexer qa, string id) =>
        RedisStreams.ReadLifecycleAsync(qa, id);

    /// <summary>
    /// Starts a call whose grain is placed, by Orleans' placement hint, on a silo other than the test cluster's primary
    /// (which hosts the test membership table, so it must not be the one killed). <paramref name="accept"/> may refuse
    /// ids (e.g. those of a slot the test needs).
    /// </summary>
    private static async Task<(string Id, ICallStreamGrain Grain)> StartOffThePrimaryAsync(IngestGrainCluster cluster, Func<string, Task<bool>>? accept = null)
    {
        var id = Guid.NewGuid().ToString("N");
        while (accept is not null && !await accept(id))
        {
            id = Guid.NewGuid().ToString("N");
        }

        var target = cluster.Cluster.Silos.First(s => !s.SiloAddress.Equals(cluster.Cluster.Primary!.SiloAddress)).SiloAddress;
        var grain = cluster.Cluster.Client.GetGrain<ICallStreamGrain>(id);
        RequestContext.Set(IPlacementDirector.PlacementHintKey, target);
        try
        {
            Assert.Equal(CallAckStatus.Ok, (await grain.Start(Start(id))).Status);
        }
        finally
        {
            RequestContext.Remove(IPlacementDirector.PlacementHintKey);
        }

        Assert.Equal(target, (await cluster.HostsAsync([id]))[id]);
        return (id, grain);
    }

    private static async Task KillHostAsync(IngestGrainCluster cluster, string id)
    {
        var host = (await cluster.HostsAsync([id]))[id];
        var silo = cluster.Cluster.Silos.First(s => s.SiloAddress.Equals(host));
        await cluster.Cluster.KillSiloAsync(silo);
    }
}
