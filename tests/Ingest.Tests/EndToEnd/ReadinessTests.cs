using System.Diagnostics;
using System.Globalization;
using System.Net;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.EndToEnd;

/// <summary>
/// /readyz is what a load balancer or a test harness waits for before sending calls, so the first Exotel upgrade after
/// it turns 200 must be admitted: a gateway that reached the cluster but had not read its flags yet used to refuse it.
/// </summary>
public sealed class ReadinessTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task The_first_Exotel_upgrade_after_readyz_turns_200_is_admitted()
    {
        await using var stack = await IngestStack.StartAsync();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };

        // The gateway comes up before any silo (its start completes only once the Orleans client has a silo).
        var port = RedisServer.FreePort();
        var readyz = new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/readyz");
        var starting = stack.AddGatewayAsync(new() { ["SUPPORT_EXOTEL"] = "true", ["PORT"] = port.ToString(CultureInfo.InvariantCulture) }, waitForFlags: false);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, await PollAsync(http, readyz, s => s == HttpStatusCode.ServiceUnavailable));

        var clock = Stopwatch.StartNew();
        await stack.AddSiloAsync();
        var gateway = await starting;
        Assert.Equal(HttpStatusCode.OK, await PollAsync(http, readyz, s => s == HttpStatusCode.OK));
        output.WriteLine($"ready {clock.ElapsedMilliseconds} ms after the silo was started");

        var basic = new Dictionary<string, string> { ["Authorization"] = ExotelClient.BasicHeader(IngestStack.ExotelUser, IngestStack.ExotelPassword) };
        Assert.Equal(101, await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(gateway), basic));
    }

    /// <summary>Polls every 10 ms (bounded: 60 s) until the status satisfies <paramref name="until"/>; refused connections count as not yet.</summary>
    private static async Task<HttpStatusCode?> PollAsync(HttpClient http, Uri uri, Func<HttpStatusCode, bool> until)
    {
        var clock = Stopwatch.StartNew();
        HttpStatusCode? last = null;
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            try
            {
                using var response = await http.GetAsync(uri);
                last = response.StatusCode;
                if (until(response.StatusCode))
                {
                    return last;
                }
            }
            catch (HttpRequestException)
            {
                // Kestrel not listening yet.
            }

            await Task.Delay(10);
        }

        return last;
    }
}
