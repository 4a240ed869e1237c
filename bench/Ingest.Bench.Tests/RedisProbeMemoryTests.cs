using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;
using Xunit;

namespace Ingest.Bench.Tests;

/// <summary>The bytes-per-entry measurement the bench now records, against a redis-server of its own (skipped without one).</summary>
public sealed class RedisProbeMemoryTests
{
    [Fact]
    public async Task Bytes_per_audio_entry_is_memory_usage_over_entries()
    {
        if (!File.Exists("/usr/bin/redis-server"))
        {
            return; // tools/ensure-redis.sh installs it; the arithmetic tests do not need it
        }

        await using var server = OwnRedis.Start();
        using var direct = await ConnectAsync(server.Endpoint);
        await using var probe = await RedisProbe.ConnectAsync(server.Endpoint);
        var options = new BenchOptions();
        await using var call = new SimulatedExotelCall("capacity-test", options, null);
        await using var empty = new SimulatedExotelCall("capacity-test-empty", options, null);
        var db = direct.GetDatabase();
        var audio = SimulatedExotelCall.AudioOf(call.StreamSid, 1600);
        for (var seq = 2; seq < 602; seq++)
        {
            await db.StreamAddAsync(RedisProbe.AudioKey(call.StreamSid), [new("seq", seq), new("ts", (seq - 2) * 100), new("audio", audio)]);
        }

        var bytes = await probe.BytesPerAudioEntryAsync([call, empty]);

        // A stream entry costs its payload plus listpack and allocator overhead: 1,947 B for 1,600 B on Redis 7.0.
        Assert.NotNull(bytes);
        Assert.InRange(bytes!.Value, 1600 * 1.05, 1600 * 1.5);
        Assert.Null(await probe.BytesPerAudioEntryAsync([empty]));
    }

    [Fact]
    public async Task Redis_time_in_the_drivers_own_reads_is_told_apart_from_the_systems_writes()
    {
        if (!File.Exists("/usr/bin/redis-server"))
        {
            return; // tools/ensure-redis.sh installs it
        }

        await using var server = OwnRedis.Start();
        using var direct = await ConnectAsync(server.Endpoint);
        await using var probe = await RedisProbe.ConnectAsync(server.Endpoint);
        var options = new BenchOptions();
        await using var call = new SimulatedExotelCall("commandstats-test", options, null);
        var before = await probe.CommandMicrosecondsAsync();

        // The system's writes (XADD), then the driver's counting (XLEN), many times so each is measurable in usec.
        var db = direct.GetDatabase();
        var audio = SimulatedExotelCall.AudioOf(call.StreamSid, 1600);
        for (var seq = 2; seq < 2002; seq++)
        {
            await db.StreamAddAsync(RedisProbe.AudioKey(call.StreamSid), [new("seq", seq), new("ts", (seq - 2) * 100), new("audio", audio)]);
        }

        for (var i = 0; i < 2000; i++)
        {
            Assert.Equal(2000, await probe.CountReadableAsync([call]));
        }

        var after = await probe.CommandMicrosecondsAsync();
        long Spent(string command) => after.GetValueOrDefault(command) - before.GetValueOrDefault(command);
        Assert.True(Spent("xadd") > 0, "the system's XADDs are counted");
        Assert.True(Spent("xlen") > 0, "the driver's XLENs are counted");
        Assert.Contains("xlen", RedisProbe.DriverCommands);
        Assert.DoesNotContain("xadd", RedisProbe.DriverCommands);
    }

    /// <summary>A redis-server of the test's own on a free loopback port, without persistence; killed on dispose.</summary>
    private sealed class OwnRedis(Process process, int port) : IAsyncDisposable
    {
        public string Endpoint => $"127.0.0.1:{port}";

        public static OwnRedis Start()
        {
            var port = FreePort();
            var process = Process.Start(new ProcessStartInfo("/usr/bin/redis-server", $"--port {port} --bind 127.0.0.1 --save \"\" --appendonly no")
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            })!;
            return new OwnRedis(process, port);
        }

        public async ValueTask DisposeAsync()
        {
            process.Kill();
            await process.WaitForExitAsync();
            process.Dispose();
        }
    }

    private static async Task<ConnectionMultiplexer> ConnectAsync(string configuration)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await ConnectionMultiplexer.ConnectAsync(configuration);
            }
            catch (RedisConnectionException) when (attempt < 50)
            {
                await Task.Delay(100);
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
