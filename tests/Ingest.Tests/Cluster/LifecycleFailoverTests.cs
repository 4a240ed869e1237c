using System.Collections.Immutable;
using System.Globalization;
using Ingest.Grains.Interfaces;
using Ingest.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Ingest.Tests.Cluster;

/// <summary>
/// CONTRACT §7: a call's lifecycle entries reach <c>ingest:calls</c> exactly once each through a failover of the shard
/// holding it (with <c>INGEST_REDIS_WAIT_REPLICAS</c> 0, so the promoted replica lacks the last copies and copied
/// numbers) and through an outage of that shard longer than the retention. The calls' own keys live on the other masters.
/// </summary>
[RunsFor(128)]
[Trait("Category", "Slow")]
public sealed class LifecycleFailoverTests(ITestOutputHelper output)
{
    private static long _nextIndex;

    private static CallStart Start(string streamId) =>
        new(CallProtocol.Exotel, streamId, "call-" + streamId, "acct", "+911", "+912", "pcm16le", 8000, 1,
            ImmutableDictionary<string, string>.Empty, "conn-1");

    private static CallItem Media(long seq) =>
        new(Interlocked.Increment(ref _nextIndex), CallItemKind.Media, seq, null, seq * 100, [(byte)seq, 0], null, null, null);

    private static CallItem Mark(long seq, string name) =>
        new(Interlocked.Increment(ref _nextIndex), CallItemKind.Mark, seq, null, seq * 100, null, null, null, name);

    [Fact]
    public async Task The_ingest_calls_master_killed_while_its_replica_lags_leaves_every_lifecycle_entry_once_and_no_call_wedged()
    {
        await using var redis = await RedisClusterServer.StartAsync(masters: 3, replicasPerMaster: 1, nodeTimeoutMs: 1000);
        await using var grains = await IngestGrainCluster.StartWithAsync(new Dictionary<string, string>(), redisConnectionString: redis.ConnectionString, sweepSeconds: 3);
        var master = await redis.MasterPortForKeyAsync("ingest:calls");
        var replica = redis.ReplicaOf(master);
        var calls = await CallsOffAsync(redis, master, 12);
        var before = calls[..6];
        var during = calls[6..];

        foreach (var call in before)
        {
            await call.StartAsync(grains);
            await call.SendAsync(grains, media: 5, mark: true);
        }

        // The replica freezes, and 48 MB in the slot of ingest:calls fill what the sockets between them can hold: what
        // reaches ingest:calls from now on is on the master alone, and lost with it.
        await Task.Delay(500);
        redis.PauseNode(replica);
        using (var filler = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString))
        {
            await filler.GetDatabase().StringSetAsync("{ingest:calls}:filler", new byte[48 * 1024 * 1024]);
        }

        foreach (var call in during)
        {
            await call.StartAsync(grains);
            await call.SendAsync(grains, media: 5, mark: true);
        }

        foreach (var call in before[..3])
        {
            await call.StopAsync(grains);
        }

        await Task.Delay(1000);
        redis.KillNode(master);
        redis.ResumeNode(replica);
        var promoted = await redis.WaitForFailoverAsync(master, TimeSpan.FromSeconds(30));
        output.WriteLine($"ingest:calls master {master} killed with its replica {replica} frozen; {promoted} promoted");
        using (var check = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString))
        {
            Assert.False(await check.GetDatabase().KeyExistsAsync("{ingest:calls}:filler"), "the promoted replica was not behind: nothing was lost to test");
        }

        foreach (var call in calls.Where(c => !c.Stopped))
        {
            await call.SendAsync(grains, media: 5, mark: true);
            await call.StopAsync(grains);
        }

        await AssertEveryEntryOnceAsync(redis, calls, TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task The_ingest_calls_shard_away_longer_than_the_retention_then_back_leaves_every_lifecycle_entry_once()
    {
        await using var redis = await RedisClusterServer.StartAsync(masters: 3, replicasPerMaster: 0, nodeTimeoutMs: 1000);
        foreach (var port in redis.Ports)
        {
            // One shard away must not take the others down with it.
            using var node = await ConnectionMultiplexer.ConnectAsync("127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture) + ",allowAdmin=true");
            await node.GetServer("127.0.0.1", port).ExecuteAsync("CONFIG", "SET", "cluster-require-full-coverage", "no");
        }

        await using var grains = await IngestGrainCluster.StartWithAsync(
            new Dictionary<string, string> { ["StreamTtl"] = "00:01:00" }, redisConnectionString: redis.ConnectionString, sweepSeconds: 3);
        var master = await redis.MasterPortForKeyAsync("ingest:calls");
        var calls = await CallsOffAsync(redis, master, 6);
        foreach (var call in calls[..3])
        {
            await call.StartAsync(grains);
            await call.SendAsync(grains, media: 5, mark: true);
        }

        redis.PauseNode(master);
        var away = DateTime.UtcNow;
        foreach (var call in calls[3..])
        {
            await call.StartAsync(grains);
            await call.SendAsync(grains, media: 5, mark: true);
        }

        // Two stop while the shard is away (one whose start was copied, one whose start was not); the others go on quiet.
        await calls[0].StopAsync(grains);
        await calls[3].StopAsync(grains);
        while (DateTime.UtcNow - away < TimeSpan.FromSeconds(75))
        {
            await Task.Delay(TimeSpan.FromSeconds(10));
            foreach (var call in calls.Where(c => !c.Stopped))
            {
                await call.HeartbeatAsync(grains);
            }
        }

        redis.ResumeNode(master);
        output.WriteLine($"ingest:calls' master {master} was away {(DateTime.UtcNow - away).TotalSeconds:F0} s (retention 60 s)");
        foreach (var call in calls.Where(c => !c.Stopped))
        {
            await call.SendAsync(grains, media: 5, mark: true);
            await call.StopAsync(grains);
        }

        await AssertEveryEntryOnceAsync(redis, calls, TimeSpan.FromSeconds(90));
    }

    /// <summary>Waits until every call's stop is in ingest:calls and no call is left open; then each entry is there once.</summary>
    private async Task AssertEveryEntryOnceAsync(RedisClusterServer redis, IReadOnlyList<Call> calls, TimeSpan timeout)
    {
        using var qa = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var db = qa.GetDatabase();
        var done = await RedisStreams.WaitUntilAsync(
            async () =>
            {
                var landed = await RedisStreams.ReadLifecycleAsync(qa, calls[0].Id);
                var all = (await db.StreamRangeAsync("ingest:calls")).Select(e => e["stream_id"].ToString()).ToList();
                var open = await db.SortedSetLengthAsync("{ingest:calls}:open");
                return open == 0 && calls.All(c => all.Count(s => s == c.Id) >= c.Expected.Count);
            },
            timeout);

        var problems = new List<string>();
        foreach (var call in calls)
        {
            var events = (await RedisStreams.ReadLifecycleAsync(qa, call.Id)).Select(e => e["event"] + (e.TryGetValue("name", out var n) ? ":" + n : string.Empty)).ToList();
            if (!events.SequenceEqual(call.Expected))
            {
                problems.Add($"{call.Id}: [{string.Join(", ", events)}], expected [{string.Join(", ", call.Expected)}]");
            }
        }

        output.WriteLine(string.Join('\n', problems));
        Assert.True(done, "not every call's lifecycle was copied and closed in time:\n" + string.Join('\n', problems));
        Assert.Empty(problems);
    }

    /// <summary>Calls whose own keys are on other masters than <paramref name="callsMaster"/>.</summary>
    private static async Task<List<Call>> CallsOffAsync(RedisClusterServer redis, int callsMaster, int count)
    {
        var calls = new List<Call>();
        while (calls.Count < count)
        {
            var id = "lf-" + Guid.NewGuid().ToString("N")[..12];
            if (await redis.MasterPortForKeyAsync("ingest:audio:{" + id + "}") != callsMaster)
            {
                calls.Add(new Call(id));
            }
        }

        return calls;
    }

    /// <summary>One call, as a gateway would drive it, and the lifecycle entries it must leave.</summary>
    private sealed class Call(string id)
    {
        private long _seq = 2;

        public string Id { get; } = id;

        public bool Stopped { get; private set; }

        public List<string> Expected { get; } = [];

        private ICallStreamGrain Grain(IngestGrainCluster grains) => grains.Cluster.Client.GetGrain<ICallStreamGrain>(Id);

        public async Task StartAsync(IngestGrainCluster grains)
        {
            Assert.NotEqual(CallAckStatus.Conflict, (await Grain(grains).Start(Start(Id))).Status);
            Expected.Add("start");
        }

        public async Task SendAsync(IngestGrainCluster grains, int media, bool mark)
        {
            var items = Enumerable.Range(0, media).Select(_ => Media(_seq++)).ToList();
            if (mark)
            {
                items.Add(Mark(_seq++, "m" + _seq.ToString(CultureInfo.InvariantCulture)));
                Expected.Add("mark:m" + _seq.ToString(CultureInfo.InvariantCulture));
            }

            await DeliverAsync(grains, [.. items]);
        }

        public async Task HeartbeatAsync(IngestGrainCluster grains) => await DeliverAsync(grains, []);

        public async Task StopAsync(IngestGrainCluster grains)
        {
            var grain = Grain(grains);
            for (var attempt = 0; attempt < 20; attempt++)
            {
                var ack = await grain.Stop(new CallStop("callended", _seq, "conn-1"));
                if (ack.Status is CallAckStatus.Ok or CallAckStatus.Buffering)
                {
                    break;
                }

                // A fresh activation: present the call again, as the gateway does.
                await grain.Start(Start(Id));
            }

            Stopped = true;
            Expected.Add("stop");
        }

        private async Task DeliverAsync(IngestGrainCluster grains, ImmutableArray<CallItem> items)
        {
            var grain = Grain(grains);
            for (var attempt = 0; attempt < 20; attempt++)
            {
                var ack = await grain.Append("conn-1", items);
                if (ack.Status is CallAckStatus.Ok or CallAckStatus.Buffering)
                {
                    return;
                }

                Assert.Equal(CallAckStatus.NotStarted, ack.Status);
                await grain.Start(Start(Id));
            }
        }
    }
}
