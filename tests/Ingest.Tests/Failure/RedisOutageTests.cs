using System.Diagnostics;
using System.Globalization;
using Ingest.Tests.Infrastructure;
using Xunit.Abstractions;
using Orleans.Runtime;
using Microsoft.Extensions.DependencyInjection;

namespace Ingest.Tests.Failure;

/// <summary>
/// Redis stopped mid-call (SHUTDOWN SAVE, like an operator's restart) and started again on the same port by the test,
/// under a silo and a gateway built by the shipped host code. Redis also holds the Orleans membership table, so the
/// cluster itself rides out the outage too.
/// </summary>
[RunsFor(122)]
[Trait("Category", "Slow")]
public sealed class RedisOutageTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Redis_down_for_five_seconds_mid_call_loses_nothing_and_keeps_order()
    {
        await using var stack = await IngestStack.StartAsync();
        await stack.AddSiloAsync();
        var gateway = await stack.AddGatewayAsync(new() { ["SUPPORT_EXOTEL"] = "true" });
        await WaitForExotelAsync(gateway);

        var calls = await Task.WhenAll(Enumerable.Range(1, 5).Select(n => LiveCall.StartAsync(IngestStack.IngestUri(gateway), n)));
        var sending = calls.Select(c => c.SendAsync(110)).ToArray();
        await Task.Delay(TimeSpan.FromSeconds(2));

        var clock = Stopwatch.StartNew();
        await stack.Redis.ShutdownSaveAsync();
        output.WriteLine($"redis down (SHUTDOWN SAVE took {clock.ElapsedMilliseconds} ms)");
        await Task.Delay(Outage - clock.Elapsed);
        await stack.Redis.StartProcessAsync();
        output.WriteLine($"redis back after {clock.ElapsedMilliseconds} ms");

        await Task.WhenAll(sending);
        await Task.WhenAll(calls.Select(c => c.FinishAsync()));
        var problems = (await Task.WhenAll(calls.Select(c => c.VerifyAsync(stack.Connection, TimeSpan.FromSeconds(30))))).OfType<string>().ToList();
        var stalls = await Task.WhenAll(calls.Select(c => c.LongestStallAsync(stack.Connection)));
        output.WriteLine($"longest stall (gap between two consecutive audio entries being written): {stalls.Max().TotalMilliseconds} ms");
        Assert.True(problems.Count == 0, string.Join('\n', problems));
        Assert.True(stalls.Max() >= Outage - TimeSpan.FromSeconds(1), "the outage did not stall publishing; was Redis really down?");
    }

    [Fact]
    public async Task Redis_down_for_thirty_seconds_under_two_silos_loses_nothing_and_the_cluster_stays_whole()
    {
        await using var stack = await IngestStack.StartAsync();
        await stack.AddSiloAsync();
        await stack.AddSiloAsync();
        var gateway = await stack.AddGatewayAsync(new() { ["SUPPORT_EXOTEL"] = "true" });
        await WaitForExotelAsync(gateway);

        var calls = await Task.WhenAll(Enumerable.Range(1, 4).Select(n => LiveCall.StartAsync(IngestStack.IngestUri(gateway), n)));
        var sending = calls.Select(c => c.SendAsync(360)).ToArray();
        await Task.Delay(TimeSpan.FromSeconds(2));

        var clock = Stopwatch.StartNew();
        await stack.Redis.ShutdownSaveAsync();
        await Task.Delay(TimeSpan.FromSeconds(30) - clock.Elapsed);
        await stack.Redis.StartProcessAsync();
        output.WriteLine($"redis back after {clock.ElapsedMilliseconds} ms");

        // A call that starts right after the outage must work too (the client still has its gateways).
        var fresh = await LiveCall.StartAsync(IngestStack.IngestUri(gateway), 9);
        await fresh.SendAsync(10);
        await Task.WhenAll(sending);
        var all = calls.Append(fresh).ToArray();
        await Task.WhenAll(all.Select(c => c.FinishAsync()));
        var problems = (await Task.WhenAll(all.Select(c => c.VerifyAsync(stack.Connection, TimeSpan.FromSeconds(30))))).OfType<string>().ToList();
        var stalls = await Task.WhenAll(calls.Select(c => c.LongestStallAsync(stack.Connection)));
        output.WriteLine($"longest stall: {stalls.Max().TotalMilliseconds} ms");
        Assert.True(problems.Count == 0, string.Join('\n', problems));
        Assert.True(stalls.Max() >= TimeSpan.FromSeconds(29), $"the longest stall was {stalls.Max().TotalMilliseconds} ms: was Redis really down for 30 s?");

        // The cluster stayed whole: both silos still active members, as the gateway's client sees them and as they see
        // each other in the membership table (which is in the Redis that was down).
        var management = gateway.Services.GetRequiredService<IClusterClient>().GetGrain<IManagementGrain>(0);
        var active = await management.GetHosts(onlyActive: true);
        var addresses = stack.Silos.Select(s => s.Services.GetRequiredService<ILocalSiloDetails>().SiloAddress).ToHashSet();
        output.WriteLine($"active after the outage: {string.Join(", ", active.Keys)}");
        Assert.True(addresses.SetEquals(active.Keys), $"active members {string.Join(", ", active.Keys)}, silos {string.Join(", ", addresses)}");
    }

    [Fact]
    public async Task Frames_beyond_the_buffer_during_an_outage_become_one_counted_buffer_overflow_gap_and_the_gateway_stays_ready()
    {
        await using var stack = await IngestStack.StartAsync();
        await stack.AddSiloAsync(new() { ["INGEST_BUFFER_FRAMES"] = "10" });
        var gateway = await stack.AddGatewayAsync(new() { ["SUPPORT_EXOTEL"] = "true" });
        await WaitForExotelAsync(gateway);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };

        var call = await LiveCall.StartAsync(IngestStack.IngestUri(gateway), 1);
        var sending = call.SendAsync(90);
        await Task.Delay(TimeSpan.FromSeconds(2));

        var clock = Stopwatch.StartNew();
        await stack.Redis.ShutdownSaveAsync();
        // CONTRACT §8: the gateway stays in the load balancer (a call that starts now is kept); /readyz's body says Redis is away.
        var statuses = new List<int>();
        var degraded = await RedisStreams.WaitUntilAsync(
            async () =>
            {
                using var response = await http.GetAsync(IngestStack.HttpUri(gateway, "/readyz"));
                statuses.Add((int)response.StatusCode);
                return (await response.Content.ReadAsStringAsync()).Contains("redis: Degraded", StringComparison.Ordinal);
            },
            TimeSpan.FromSeconds(5));
        output.WriteLine($"/readyz during the outage: {string.Join(",", statuses)}, Redis shown degraded: {degraded} ({clock.ElapsedMilliseconds} ms after the stop)");
        await Task.Delay(Outage - clock.Elapsed);
        await stack.Redis.StartProcessAsync();
        var readyAgain = await RedisStreams.WaitUntilAsync(
            async () => (int)(await http.GetAsync(IngestStack.HttpUri(gateway, "/readyz"))).StatusCode == 200,
            TimeSpan.FromSeconds(10));

        await sending;
        await call.FinishAsync();
        await RedisStreams.WaitUntilAsync(
            async () => (await RedisStreams.ReadLifecycleAsync(stack.Connection, call.StreamSid)).Any(e => e["event"] == "stop"),
            TimeSpan.FromSeconds(30));

        var seqs = (await RedisStreams.ReadAudioAsync(stack.Connection, call.StreamSid)).Select(a => a.Seq).ToList();
        var lifecycle = await RedisStreams.ReadLifecycleAsync(stack.Connection, call.StreamSid);
        output.WriteLine($"{seqs.Count} of {call.Sent} frames published; lifecycle: " +
            string.Join("; ", lifecycle.Select(e => string.Join(',', e.Where(kv => kv.Key != "audio").Select(kv => kv.Key + "=" + kv.Value)))));

        Assert.All(statuses, status => Assert.Equal(200, status));
        Assert.True(degraded, "/readyz did not show Redis away while it was down");
        Assert.True(readyAgain, "/readyz was not 200 after Redis came back");
        Assert.Equal(seqs.Distinct().Order(), seqs);
        var gap = Assert.Single(lifecycle, e => e["event"] == "gap");
        Assert.Equal("buffer_overflow", gap["reason"]);
        var from = long.Parse(gap["from_seq"], CultureInfo.InvariantCulture);
        var to = long.Parse(gap["to_seq"], CultureInfo.InvariantCulture);
        var missing = long.Parse(gap["missing"], CultureInfo.InvariantCulture);

        // Exactly the frames of the gap are absent, and nothing else.
        var expected = Enumerable.Range(2, call.Sent).Select(i => (long)i).Where(s => s < from || s > to).ToList();
        Assert.Equal(expected, seqs);
        Assert.Equal(to - from + 1, missing);
        Assert.InRange(missing, 1, call.Sent);
        Assert.Equal(["start", "gap", "stop"], lifecycle.Select(e => e["event"]));
        Assert.Equal(seqs.Count.ToString(CultureInfo.InvariantCulture), lifecycle[2]["frames"]);
    }

    [Fact]
    public async Task Slow_redis_that_stays_connected_loses_and_duplicates_nothing()
    {
        await using var stack = await IngestStack.StartAsync();
        await stack.AddSiloAsync(new() { ["INGEST_BUFFER_FRAMES"] = "5" });
        var gateway = await stack.AddGatewayAsync(new() { ["SUPPORT_EXOTEL"] = "true" });
        await WaitForExotelAsync(gateway);

        var call = await LiveCall.StartAsync(IngestStack.IngestUri(gateway), 1);
        var sending = call.SendAsync(100);
        await Task.Delay(TimeSpan.FromSeconds(2));

        // Writes block for 7 s while every connection stays up: batch writes time out (5 s), and a timed-out write may
        // still land when the pause ends (the fence then turns the retry into a resend). No frame lost or doubled.
        await stack.Connection.GetServer(stack.Connection.GetEndPoints()[0]).ExecuteAsync("CLIENT", "PAUSE", "7000", "WRITE");
        await sending;
        await call.FinishAsync();

        var problem = await call.VerifyAsync(stack.Connection, TimeSpan.FromSeconds(40));
        var stall = await call.LongestStallAsync(stack.Connection);
        output.WriteLine($"longest stall under a 7 s write pause: {stall.TotalMilliseconds} ms; {problem ?? "all frames once, in order"}");
        Assert.Null(problem);
        // The pause happened and held writes back: no audio entry was written for most of it.
        Assert.True(stall >= TimeSpan.FromSeconds(6), $"the longest stall was {stall.TotalMilliseconds} ms: did CLIENT PAUSE hold the writes?");
    }

    [Fact]
    public async Task A_call_that_starts_while_Redis_is_down_is_kept_and_lands_whole_when_Redis_returns()
    {
        await using var stack = await IngestStack.StartAsync();
        await stack.AddSiloAsync();
        var gateway = await stack.AddGatewayAsync(new() { ["SUPPORT_EXOTEL"] = "true", ["START_TIMEOUT_SECONDS"] = "3" });
        await WaitForExotelAsync(gateway);

        await stack.Redis.ShutdownSaveAsync();
        var clock = Stopwatch.StartNew();

        // The start (and 12 s of audio) arrive while Redis is away: longer than the start timeout, which must not fire.
        var call = await LiveCall.StartAsync(IngestStack.IngestUri(gateway), 1);
        var sending = call.SendAsync(120);
        await Task.Delay(TimeSpan.FromSeconds(10) - clock.Elapsed);
        await stack.Redis.StartProcessAsync();
        output.WriteLine($"redis back after {clock.ElapsedMilliseconds} ms");
        await sending;
        Assert.Equal(System.Net.WebSockets.WebSocketState.Open, call.Call.State);
        await call.FinishAsync();

        var problem = await call.VerifyAsync(stack.Connection, TimeSpan.FromSeconds(40));
        Assert.True(problem is null, problem);
    }

    [Fact]
    public async Task Redis_frozen_by_sigstop_under_flat_out_large_frames_loses_nothing_silently()
    {
        await using var stack = await IngestStack.StartAsync();
        await stack.AddSiloAsync();
        var gateway = await stack.AddGatewayAsync();

        // Two native calls send 64 KB frames flat out; Redis is frozen (SIGSTOP: connected, answering nothing) for 10 s.
        // Far more arrives than any budget holds: every frame must be published once, in order, or lie inside a gap
        // that says why (buffer_overflow), never vanish or be called "missing" (nothing was lost on the way).
        var ids = new[] { "frozen-a-" + Guid.NewGuid().ToString("N")[..8], "frozen-b-" + Guid.NewGuid().ToString("N")[..8] };
        var sent = new int[ids.Length];
        using var stop = new CancellationTokenSource();
        var senders = ids.Select((id, n) => Task.Run(async () =>
        {
            using var socket = ExotelClient.NewSocket(new Dictionary<string, string> { ["Authorization"] = "Bearer " + Tokens.Create() });
            await socket.ConnectAsync(IngestStack.IngestUri(gateway), CancellationToken.None);
            await socket.SendAsync(System.Text.Encoding.UTF8.GetBytes($$"""{"event":"start","stream_id":"{{id}}","sample_rate":16000,"encoding":"pcm16le","channels":1}"""), System.Net.WebSockets.WebSocketMessageType.Text, true, CancellationToken.None);
            var frame = new byte[64 * 1024];
            while (!stop.IsCancellationRequested)
            {
                sent[n]++;
                BitConverter.TryWriteBytes(frame, sent[n]);
                await socket.SendAsync(frame, System.Net.WebSockets.WebSocketMessageType.Binary, true, CancellationToken.None);
            }

            await socket.SendAsync("""{"event":"stop"}"""u8.ToArray(), System.Net.WebSockets.WebSocketMessageType.Text, true, CancellationToken.None);
            var buffer = new byte[1024];
            using var closeWait = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (socket.State == System.Net.WebSockets.WebSocketState.Open)
            {
                if ((await socket.ReceiveAsync(buffer, closeWait.Token)).MessageType == System.Net.WebSockets.WebSocketMessageType.Close)
                {
                    break;
                }
            }
        })).ToArray();

        await Task.Delay(TimeSpan.FromSeconds(2));
        stack.Redis.Pause();
        await Task.Delay(TimeSpan.FromSeconds(10));
        stack.Redis.Resume();
        await Task.Delay(TimeSpan.FromSeconds(2));
        await stop.CancelAsync();
        await Task.WhenAll(senders);

        for (var n = 0; n < ids.Length; n++)
        {
            Assert.True(await RedisStreams.WaitUntilAsync(
                async () => (await RedisStreams.ReadLifecycleAsync(stack.Connection, ids[n])).Any(e => e["event"] == "stop"),
                TimeSpan.FromSeconds(40)), $"{ids[n]}: no stop");
            var audio = await RedisStreams.ReadAudioAsync(stack.Connection, ids[n]);
            var gaps = (await RedisStreams.ReadLifecycleAsync(stack.Connection, ids[n])).Where(e => e["event"] == "gap").ToList();
            var seqs = audio.Select(a => a.Seq).ToList();
            Assert.True(seqs.Zip(seqs.Skip(1)).All(p => p.Second > p.First), $"{ids[n]}: audio not strictly in order");
            Assert.All(audio, a => Assert.Equal((int)a.Seq, BitConverter.ToInt32(a.Audio)));
            var covered = new HashSet<long>(seqs);
            foreach (var gap in gaps)
            {
                Assert.Equal("buffer_overflow", gap["reason"]);
                for (var s = long.Parse(gap["from_seq"], CultureInfo.InvariantCulture); s <= long.Parse(gap["to_seq"], CultureInfo.InvariantCulture); s++)
                {
                    Assert.True(covered.Add(s), $"{ids[n]}: frame {s} both published and in a gap");
                }
            }

            var unaccounted = Enumerable.Range(1, sent[n]).Where(s => !covered.Contains(s)).ToList();
            output.WriteLine($"{ids[n]}: sent {sent[n]}, published {seqs.Count}, gaps {gaps.Count}, unaccounted {unaccounted.Count}");
            Assert.True(unaccounted.Count == 0, $"{ids[n]}: {unaccounted.Count} frame(s) neither published nor in a gap, e.g. {string.Join(",", unaccounted.Take(5))}");
        }
    }

    private static async Task WaitForExotelAsync(Microsoft.AspNetCore.Builder.WebApplication gateway)
    {
        var ready = await RedisStreams.WaitUntilAsync(() => Task.FromResult(IngestStack.SupportsExotel(gateway)), TimeSpan.FromSeconds(10));
        Assert.True(ready, "SUPPORT_EXOTEL did not reach the gateway");
    }
}
