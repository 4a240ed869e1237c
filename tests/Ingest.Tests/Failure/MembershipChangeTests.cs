using System.Diagnostics;
using System.Text.Json;
using Ingest.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Ingest.Tests.Failure;

/// <summary>
/// A silo that leaves (SIGTERM, a rolling deploy) or dies (kill -9) disturbs only its own calls: the calls of the
/// silos that stay up keep their silo (read from <c>GET /v1/admin/calls</c> before, during and after) and do not stall,
/// and the calls of the silo that changed continue elsewhere within a bound. Three real silo processes, one gateway,
/// calls at real-time cadence (docs/PERFORMANCE.md, "Membership changes", has the figures of bench/topology.sh).
/// </summary>
[RunsFor(60)]
[Trait("Category", "Slow")]
public sealed class MembershipChangeTests(ITestOutputHelper output)
{
    private const int Calls = 24;

    /// <summary>A frame interval is 100 ms; the bounds below are on the wait between two entries becoming readable.</summary>
    private const long OtherCallsBoundMs = 1_000;

    [Fact]
    public async Task Sigterm_of_one_of_three_silos_moves_only_its_calls_and_they_continue_within_3_s()
    {
        await using var run = await ThreeSilosAsync(frames: 140);
        var victim = run.Silos[0];
        var before = await run.ListUntilAllAsync();

        var signalled = run.Watch.Now;
        victim.Terminate();
        var during = await run.SampleUntilAsync(() => victim.HasExited, TimeSpan.FromSeconds(40));
        Assert.True(victim.HasExited, victim.Tail());
        var exited = run.Watch.Now;
        during.AddRange(await run.SampleUntilAsync(() => false, TimeSpan.FromSeconds(3)));
        var after = await run.ListUntilAllAsync();

        var (moved, stayed) = run.Report(before, during, after, signalled, exited + 3_000, $"SIGTERM {victim.Name} (exited after {exited - signalled} ms)");
        Assert.All(moved, m => Assert.True(m.Gap <= 3_000, $"{m.Sid} of the leaving silo waited {m.Gap} ms"));
        Assert.All(stayed, s => Assert.True(s.Gap <= OtherCallsBoundMs, $"{s.Sid} on a silo that stayed up waited {s.Gap} ms"));
        await run.FinishAsync();
    }

    [Fact]
    public async Task Kill_9_of_one_of_three_silos_moves_only_its_calls_and_they_continue_within_8_s()
    {
        await using var run = await ThreeSilosAsync(frames: 170);
        var victim = run.Silos[0];
        var before = await run.ListUntilAllAsync();

        var killed = run.Watch.Now;
        victim.Kill();
        var during = await run.SampleUntilAsync(() => false, TimeSpan.FromSeconds(10));
        var after = await run.ListUntilAllAsync();

        // Failure detection here is about 6 s (docs/OPERATIONS.md): the dead silo's calls wait for it, and 2 s more at most.
        // Calls that stayed on live silos keep their silo, but some of them wait about as long (docs/PERFORMANCE.md,
        // "Membership changes": likely their messages' directory lookups wait for the dead silo's range), so here they
        // are held to the same bound, not to the SIGTERM test's 1 s.
        var (moved, stayed) = run.Report(before, during, after, killed, killed + 10_000, $"kill -9 {victim.Name}");
        Assert.All(moved, m => Assert.True(m.Gap <= 8_000, $"{m.Sid} of the dead silo waited {m.Gap} ms"));
        Assert.All(stayed, s => Assert.True(s.Gap <= 8_000, $"{s.Sid} on a silo that stayed up waited {s.Gap} ms"));
        await run.FinishAsync();
    }

    private async Task<Run> ThreeSilosAsync(int frames)
    {
        var cluster = await ProcessCluster.StartAsync();
        try
        {
            var silos = new[] { await cluster.StartSiloAsync("silo-a"), await cluster.StartSiloAsync("silo-b"), await cluster.StartSiloAsync("silo-c") };
            var gateway = await cluster.StartGatewayAsync("gateway");
            var calls = await Task.WhenAll(Enumerable.Range(1, Calls).Select(n => LiveCall.StartAsync(gateway.IngestUri, n)));
            var run = new Run(cluster, silos, gateway, calls, output) { Sending = calls.Select(c => c.SendAsync(frames)).ToArray() };
            await Task.Delay(TimeSpan.FromSeconds(3));
            return run;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private sealed class Run(ProcessCluster cluster, ChildProcess[] silos, ChildProcess gateway, LiveCall[] calls, ITestOutputHelper output) : IAsyncDisposable
    {
        private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(10) };
        private bool _passed;

        public ChildProcess[] Silos => silos;

        public ReadableWatch Watch { get; } = new(cluster.Connection, calls);

        public Task[] Sending { get; set; } = [];

        /// <summary>The calls list as stream id → silo; null when the gateway did not answer 200.</summary>
        private async Task<Dictionary<string, string>?> ListAsync()
        {
            try
            {
                using var response = await gateway.AdminGetAsync(_http, "/v1/admin/calls");
                if (!response.IsSuccessStatusCode)
                {
                    return null;
                }

                using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                return body.RootElement.EnumerateArray().ToDictionary(c => c.GetProperty("stream_id").GetString()!, c => c.GetProperty("silo").GetString()!);
            }
            catch (HttpRequestException)
            {
                return null;
            }
            catch (TaskCanceledException)
            {
                return null;
            }
        }

        /// <summary>Lists until every call is listed (a call between two silos is briefly in no list).</summary>
        public async Task<Dictionary<string, string>> ListUntilAllAsync()
        {
            var clock = Stopwatch.StartNew();
            Dictionary<string, string>? listed = null;
            while (clock.Elapsed < TimeSpan.FromSeconds(20))
            {
                listed = await ListAsync();
                if (listed is not null && calls.All(c => listed.ContainsKey(c.StreamSid)))
                {
                    return listed;
                }

                await Task.Delay(250);
            }

            throw new Xunit.Sdk.XunitException($"not every call listed within 20 s: {listed?.Count.ToString() ?? "no answer"} of {calls.Length}");
        }

        /// <summary>Samples the list every 300 ms for <paramref name="span"/> or until <paramref name="done"/>.</summary>
        public async Task<List<Dictionary<string, string>>> SampleUntilAsync(Func<bool> done, TimeSpan span)
        {
            var samples = new List<Dictionary<string, string>>();
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < span && !done())
            {
                if (await ListAsync() is { } listed)
                {
                    samples.Add(listed);
                }

                await Task.Delay(300);
            }

            return samples;
        }

        /// <summary>
        /// Checks that only the calls of one silo changed silo (in any sample) and returns, per call, the longest wait
        /// between two entries becoming readable in [<paramref name="from"/>, <paramref name="to"/>].
        /// </summary>
        public (List<(string Sid, long Gap)> Moved, List<(string Sid, long Gap)> Stayed) Report(
            Dictionary<string, string> before, List<Dictionary<string, string>> during, Dictionary<string, string> after, long from, long to, string what)
        {
            var gone = before.Values.Distinct().Except(after.Values).ToList();
            output.WriteLine($"{what}: before {Spread(before)}; after {Spread(after)}; {during.Count} samples between");
            Assert.True(gone.Count == 1, $"expected exactly the changed silo to hold no call afterwards; gone: [{string.Join(", ", gone)}], before {Spread(before)}, after {Spread(after)}");

            var changedSilo = calls.Where(c => before[c.StreamSid] != gone[0])
                .Select(c => (c.StreamSid, Seen: during.Append(after).Select(s => s.GetValueOrDefault(c.StreamSid)).Where(s => s is not null && s != before[c.StreamSid]).ToList()))
                .Where(c => c.Seen.Count > 0).ToList();
            Assert.True(changedSilo.Count == 0, "calls on silos that stayed up changed silo: " + string.Join("; ", changedSilo.Select(c => $"{c.StreamSid} {before[c.StreamSid]} -> {string.Join(", ", c.Seen.Distinct())}")));

            var gaps = Watch.LongestGaps(from, to);
            var moved = new List<(string, long)>();
            var stayed = new List<(string, long)>();
            for (var i = 0; i < calls.Length; i++)
            {
                (before[calls[i].StreamSid] == gone[0] ? moved : stayed).Add((calls[i].StreamSid, gaps[i]));
            }

            output.WriteLine($"longest wait between two entries readable: moved calls ({moved.Count}) max {moved.Select(m => m.Item2).DefaultIfEmpty(0).Max()} ms, " +
                $"calls that stayed ({stayed.Count}) max {stayed.Select(s => s.Item2).DefaultIfEmpty(0).Max()} ms");
            Assert.NotEmpty(moved);
            return (moved, stayed);
        }

        private static string Spread(Dictionary<string, string> listed) =>
            string.Join(" / ", listed.Values.GroupBy(s => s).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => g.Count()));

        /// <summary>Ends the calls and checks every one landed exactly once, in order.</summary>
        public async Task FinishAsync()
        {
            await Task.WhenAll(Sending);
            await Task.WhenAll(calls.Select(c => c.FinishAsync()));
            var problems = (await Task.WhenAll(calls.Select(c => c.VerifyAsync(cluster.Connection, TimeSpan.FromSeconds(30))))).OfType<string>().ToList();
            Assert.True(problems.Count == 0, string.Join('\n', problems));
            _passed = true;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_passed)
            {
                foreach (var child in cluster.Children)
                {
                    output.WriteLine(child.Tail(40));
                }
            }

            await Watch.DisposeAsync();
            _http.Dispose();
            await cluster.DisposeAsync();
        }
    }
}
