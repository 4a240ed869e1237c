using Ingest.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Ingest.Tests.Failure;

/// <summary>
/// A silo that stops answering without closing its sockets (SIGSTOP: a frozen VM, a long pause). Grain calls to it
/// get no reply, so they must time out (Orleans' response timeout on the call path, 3 s) and the gateway must present
/// its calls again elsewhere once the membership has declared the silo dead. When the silo wakes up it may still try
/// to write what it held: the cursor fence must refuse that. Every frame once, in order; every socket open.
/// </summary>
[RunsFor(45)]
[Trait("Category", "Slow")]
public sealed class FrozenSiloTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_frozen_silo_s_calls_move_on_and_its_writes_when_it_wakes_are_refused()
    {
        await using var cluster = await ProcessCluster.StartAsync();
        try
        {
            var silos = new[] { await cluster.StartSiloAsync("silo-a"), await cluster.StartSiloAsync("silo-b") };
            var gateway = await cluster.StartGatewayAsync("gateway");

            var calls = await Task.WhenAll(Enumerable.Range(1, 8).Select(n => LiveCall.StartAsync(gateway.IngestUri, n)));
            var sending = calls.Select(c => c.SendAsync(300)).ToArray();
            await Task.Delay(TimeSpan.FromSeconds(3));

            var published = await Task.WhenAll(silos.Select(s => s.MetricAsync("ingest_frames_published_total")));
            var victim = published[0] >= published[1] ? silos[0] : silos[1];
            var survivor = victim == silos[0] ? silos[1] : silos[0];
            output.WriteLine($"frames published so far: {silos[0].Name} {published[0]}, {silos[1].Name} {published[1]}; SIGSTOP {victim.Name}");
            victim.Pause();

            // While it is frozen: once the membership has declared it dead (probes time out: about 6–10 s), its calls
            // are presented again on the survivor, which then carries all of them: sample its published counter.
            var rates = new List<double>();
            var last = await survivor.MetricAsync("ingest_frames_published_total");
            for (var second = 1; second <= 20; second++)
            {
                await Task.Delay(TimeSpan.FromSeconds(1));
                var now = await survivor.MetricAsync("ingest_frames_published_total");
                rates.Add(now - last);
                last = now;
            }

            output.WriteLine($"{survivor.Name} frames/s while {victim.Name} was frozen 20 s: {string.Join(" ", rates)}");
            victim.Resume();
            await Task.WhenAll(sending);
            await Task.WhenAll(calls.Select(c => c.FinishAsync()));
            var problems = (await Task.WhenAll(calls.Select(c => c.VerifyAsync(cluster.Connection, TimeSpan.FromSeconds(60))))).OfType<string>().ToList();
            Assert.True(problems.Count == 0, string.Join('\n', problems) + "\n" + string.Join('\n', cluster.Children.Select(c => c.Tail(30))));

            // The calls of the frozen silo went on elsewhere while it was still frozen: in its last five seconds the
            // survivor carried every call (8 calls x 10 frames/s, less a margin for the box's load).
            Assert.True(rates.TakeLast(5).Average() >= 8 * 10 * 0.8, "the survivor did not take the frozen silo's calls over: " + string.Join(" ", rates));
        }
        catch
        {
            foreach (var child in cluster.Children)
            {
                output.WriteLine(child.Tail(60));
            }

            throw;
        }
    }
}
