using System.Net;
using System.Text.Json;
using Ingest.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Ingest.Tests.Failure;

/// <summary>
/// <c>GET /v1/admin/calls</c> right after a silo process is killed -9, when operators look and before the membership
/// has declared the silo dead: the calls of the silos that answer are listed (200) and the silo that does not is named
/// in <c>X-Ingest-Unreachable-Silos</c>, instead of a 503 for the whole list (seen in bench/topology.sh for 1–3 s).
/// </summary>
[RunsFor(44)]
[Trait("Category", "Slow")]
public sealed class AdminCallsDuringFailoverTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Right_after_a_kill_9_of_a_silo_the_calls_list_answers_with_the_calls_it_can_reach()
    {
        await using var cluster = await ProcessCluster.StartAsync();
        var silos = new[] { await cluster.StartSiloAsync("silo-a"), await cluster.StartSiloAsync("silo-b") };
        var gateway = await cluster.StartGatewayAsync("gateway");
        var calls = await Task.WhenAll(Enumerable.Range(1, 8).Select(n => LiveCall.StartAsync(gateway.IngestUri, n)));
        var sending = calls.Select(c => c.SendAsync(60)).ToArray();
        await Task.Delay(TimeSpan.FromSeconds(2));

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
        var before = await ListAsync(http, gateway);
        Assert.Equal(HttpStatusCode.OK, before.Status);

        var published = await Task.WhenAll(silos.Select(s => s.MetricAsync("ingest_frames_published_total")));
        var victim = published[0] >= published[1] ? silos[0] : silos[1];
        victim.Kill();

        var answers = new List<(HttpStatusCode Status, int Calls, string Unreachable)>();
        for (var i = 0; i < 8; i++)
        {
            answers.Add(await ListAsync(http, gateway));
            await Task.Delay(TimeSpan.FromMilliseconds(400));
        }

        output.WriteLine($"before the kill: {before.Calls} calls; kill -9 {victim.Name}; then: " +
            string.Join("; ", answers.Select(a => $"{(int)a.Status} ({a.Calls} calls{(a.Unreachable.Length > 0 ? ", unreachable " + a.Unreachable : "")})")));
        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.Status));
        await Task.WhenAll(sending);
        await Task.WhenAll(calls.Select(c => c.FinishAsync()));
    }

    private static async Task<(HttpStatusCode Status, int Calls, string Unreachable)> ListAsync(HttpClient http, ChildProcess gateway)
    {
        using var response = await gateway.AdminGetAsync(http, "/v1/admin/calls");
        var unreachable = response.Headers.TryGetValues("X-Ingest-Unreachable-Silos", out var values) ? string.Join(",", values) : "";
        var listed = response.IsSuccessStatusCode ? JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetArrayLength() : -1;
        return (response.StatusCode, listed, unreachable);
    }
}
