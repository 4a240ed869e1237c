using System.Globalization;
using Ingest.Tests.Operations;
using StackExchange.Redis;

namespace Ingest.Tests.Cluster;

/// <summary>One three-master Redis Cluster for the kit's own checks that need no failover.</summary>
public sealed class ThreeMasterFixture : IAsyncLifetime
{
    public RedisClusterServer Redis { get; private set; } = null!;

    public IConnectionMultiplexer Connection { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Redis = await RedisClusterServer.StartAsync(masters: 3);
        Connection = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
    }

    public async Task DisposeAsync()
    {
        Connection.Dispose();
        await Redis.DisposeAsync();
    }
}

/// <summary>The QA kit's Redis Cluster: it starts whole, says which master holds a key, and fails over when one dies.</summary>
public sealed class RedisClusterServerTests(ThreeMasterFixture f) : IClassFixture<ThreeMasterFixture>
{
    [Fact]
    public async Task Three_masters_share_all_16384_slots_and_the_connection_string_names_each_node()
    {
        var nodes = await f.Redis.ReadNodesAsync();
        Assert.Equal(3, nodes.Count(n => n.IsMaster && !n.Failed));
        Assert.Equal(RedisClusterServer.SlotCount, nodes.Sum(n => n.Slots.Sum(r => r.To - r.From + 1)));
        Assert.Equal(f.Redis.Ports.Select(p => "127.0.0.1:" + p.ToString(CultureInfo.InvariantCulture)), f.Redis.ConnectionString.Split(','));
        Assert.All(f.Redis.Nodes, n => Assert.Equal("master", n.Role));
    }

    [Fact]
    public async Task The_master_named_for_a_key_is_the_node_that_holds_it()
    {
        var keys = Enumerable.Range(1, 12).Select(i => "ingest:audio:{kit-" + i.ToString(CultureInfo.InvariantCulture) + "}").ToList();
        var db = f.Connection.GetDatabase();
        foreach (var key in keys)
        {
            await db.StreamAddAsync(key, "seq", 1);
        }

        var masters = new List<int>();
        foreach (var key in keys)
        {
            var port = await f.Redis.MasterPortForKeyAsync(key);
            masters.Add(port);

            // COUNTKEYSINSLOT counts only the keys the asked node holds itself.
            var node = f.Connection.GetServer("127.0.0.1", port);
            var slot = f.Connection.HashSlot(key);
            Assert.Equal(1L, (long)await node.ExecuteAsync("CLUSTER", "COUNTKEYSINSLOT", slot));
        }

        Assert.True(masters.Distinct().Count() > 1, "twelve hash tags all on one master: " + string.Join(",", masters));
    }

    [Fact]
    public async Task Landed_stream_reads_a_call_whose_audio_and_lifecycle_live_on_different_masters()
    {
        // A call whose audio key is on another master than ingest:calls: a two-key command would be CROSSSLOT.
        var db = f.Connection.GetDatabase();
        var callsMaster = await f.Redis.MasterPortForKeyAsync("ingest:calls");
        var id = string.Empty;
        for (var i = 1; id.Length == 0; i++)
        {
            var candidate = "kit-landed-" + i.ToString(CultureInfo.InvariantCulture);
            if (await f.Redis.MasterPortForKeyAsync("ingest:audio:{" + candidate + "}") != callsMaster)
            {
                id = candidate;
            }
        }

        await db.StreamAddAsync("ingest:calls", [new("event", "start"), new("stream_id", id), new("encoding", "pcm16"), new("sample_rate", 8000)]);
        await db.StreamAddAsync("ingest:audio:{" + id + "}", [new("seq", 2), new("ts", 0), new("audio", new byte[] { 1, 2 })]);
        await db.StreamAddAsync("ingest:audio:{" + id + "}", [new("seq", 3), new("ts", 100), new("audio", new byte[] { 3, 4 })]);
        await db.StreamAddAsync("ingest:calls", [new("event", "stop"), new("stream_id", id), new("reason", "callended"), new("frames", 2)]);

        var landed = await LandedStream.ReadAsync(f.Connection, id, TimeSpan.FromSeconds(5));
        landed.AssertExactlyOnceInOrder(new Dictionary<long, byte[]> { [2] = [1, 2], [3] = [3, 4] });
        Assert.Equal(["start", "stop"], landed.Lifecycle.Select(e => e["event"]));
        Assert.Equal(2, (await RedisStreams.ReadAudioAsync(f.Connection, id)).Count);
    }
}

/// <summary>Failover: a master with a replica is killed and the replica serves its slots.</summary>
[Trait("Category", "Slow")]
public sealed class RedisClusterFailoverTests
{
    [Fact]
    public async Task Killing_a_master_with_a_replica_promotes_the_replica_and_its_keys_are_served_again()
    {
        await using var redis = await RedisClusterServer.StartAsync(masters: 3, replicasPerMaster: 1);
        Assert.Equal(6, redis.Nodes.Count);
        Assert.Equal(3, redis.Nodes.Count(n => n.IsMaster));
        Assert.All(redis.Nodes.Where(n => !n.IsMaster), n => Assert.Contains(n.MasterPort!.Value, redis.Nodes.Where(m => m.IsMaster).Select(m => m.Port)));

        using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        const string key = "ingest:audio:{failover}";
        await connection.GetDatabase().StreamAddAsync(key, "seq", 1);
        var master = await redis.MasterPortForKeyAsync(key);

        // Make sure the replica has the entry before its master dies (replication is asynchronous).
        var acked = (long)await connection.GetServer("127.0.0.1", master).ExecuteAsync("WAIT", 1, 5000);
        Assert.Equal(1, acked);

        var replica = redis.Nodes.Single(n => n.MasterPort == master).Port;
        redis.KillNode(master);
        var promoted = await redis.WaitForFailoverAsync(master, TimeSpan.FromSeconds(30));

        Assert.Equal(replica, promoted);
        Assert.Equal(promoted, await redis.MasterPortForKeyAsync(key));
        using var fresh = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString + ",abortConnect=false");
        Assert.Equal(1, await fresh.GetDatabase().StreamLengthAsync(key));
    }
}

/// <summary><c>ingestctl tail</c> on a Redis Cluster, where a call's audio and <c>ingest:calls</c> are on different masters.</summary>
public sealed class IngestCtlTailOnClusterTests(ThreeMasterFixture f) : IClassFixture<ThreeMasterFixture>
{
    [Fact]
    public async Task Tail_follows_a_call_whose_audio_and_lifecycle_are_on_different_masters_to_its_stop()
    {
        var db = f.Connection.GetDatabase();
        var callsMaster = await f.Redis.MasterPortForKeyAsync("ingest:calls");
        var id = string.Empty;
        for (var i = 1; id.Length == 0; i++)
        {
            var candidate = "ctl-cluster-" + Guid.NewGuid().ToString("N")[..6];
            if (await f.Redis.MasterPortForKeyAsync("ingest:audio:{" + candidate + "}") != callsMaster)
            {
                id = candidate;
            }
        }

        await db.StreamAddAsync("ingest:calls", [new("event", "start"), new("stream_id", id), new("encoding", "pcm16"), new("sample_rate", 8000)]);
        for (var seq = 2; seq < 7; seq++)
        {
            await db.StreamAddAsync("ingest:audio:{" + id + "}", [new("seq", seq), new("ts", (seq - 2) * 100), new("audio", new byte[1600])]);
        }

        await db.StreamAddAsync("ingest:calls", [new("event", "gap"), new("stream_id", id), new("from_seq", 7), new("to_seq", 7), new("missing", 1), new("reason", "missing")]);
        await db.StreamAddAsync("ingest:calls", [new("event", "stop"), new("stream_id", id), new("reason", "callended"), new("frames", 5)]);

        var tail = await HostRun.RunAsync(HostRun.IngestCtlDll, [], ["tail", id, "--redis", f.Redis.ConnectionString, "--timeout", "20"], TimeSpan.FromSeconds(40));
        Assert.True(tail.ExitCode == 0, tail.ToString());
        Assert.Contains(tail.Stdout, l => l.Trim() == "start: 8000 Hz pcm16");
        Assert.Contains(tail.Stdout, l => l.Trim() == "gap seq 7-7: 1 missing (missing)");
        Assert.Contains(tail.Stdout, l => l.Trim() == "stop: callended, 5 frames published; 5 seen, 1 gap(s)");
    }
}
