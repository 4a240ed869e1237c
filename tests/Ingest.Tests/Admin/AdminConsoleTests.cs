using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Admin;

/// <summary>
/// The admin console at /admin in a real browser (Debian's headless Chromium over the DevTools protocol) against an
/// in-process stack of its own (it flips the cluster-wide flag): a silo and a gateway.
/// </summary>
public sealed class AdminConsoleTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string WrongPassword = "console-wrong-pa55word";

    private static async Task<bool> FlagFromApiAsync(Uri gateway, string token)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(gateway, "/v1/admin/flags"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.GetProperty("supportExotel").GetBoolean();
    }

    private static string Js(string text) => JsonSerializer.Serialize(text);

    private async Task PasteTokenAsync(Chromium browser, string token)
    {
        await browser.EvaluateAsync($"document.getElementById('token').value = {Js(token)}; document.getElementById('apply').click(); true");
        output.WriteLine("pasted a token");
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task Operator_pastes_a_token_sees_and_flips_the_flag_sees_a_live_call_appear_and_a_refusal_with_its_reason()
    {
        var clock = Stopwatch.StartNew();
        await using var stack = await IngestStack.StartAsync();
        await stack.AddSiloAsync();
        var gateway = await stack.AddGatewayAsync(new() { ["SUPPORT_EXOTEL"] = "true" });
        var origin = IngestStack.HttpUri(gateway, "/");
        var admin = Tokens.Create(role: "admin");

        // The page is static and public; it carries no data and no secret.
        using (var http = new HttpClient())
        {
            using var page = await http.GetAsync(new Uri(origin, "/admin"));
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
            Assert.Contains("script-src 'self'", page.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        }

        await using var browser = await Chromium.LaunchAsync();
        await browser.NavigateAsync(new Uri(origin, "/admin"));
        Assert.Contains("admin console", await browser.TextAsync("h1"), StringComparison.Ordinal);

        // A non-admin token: a clear 403 message, no data.
        await PasteTokenAsync(browser, Tokens.Create(role: "agent"));
        Assert.True(await browser.WaitForAsync("document.getElementById('status').textContent.includes('403')", TimeSpan.FromSeconds(10)), await browser.TextAsync("#status"));
        Assert.Contains("role=admin", await browser.TextAsync("#status"), StringComparison.Ordinal);

        // A forged admin token: 401.
        await PasteTokenAsync(browser, Tokens.Create(secret: "another-secret-that-is-also-long-enough!!", role: "admin"));
        Assert.True(await browser.WaitForAsync("document.getElementById('status').textContent.includes('401')", TimeSpan.FromSeconds(10)), await browser.TextAsync("#status"));

        // The admin token: the flag, its source, the silos.
        await PasteTokenAsync(browser, admin);
        Assert.True(await browser.WaitForAsync("document.getElementById('flag-value').textContent === 'on'", TimeSpan.FromSeconds(10)), await browser.TextAsync("#status"));
        Assert.False(string.IsNullOrWhiteSpace(await browser.TextAsync("#flag-source")));
        Assert.True(await browser.WaitForAsync("document.querySelector('#silos tbody').textContent.includes('Active')", TimeSpan.FromSeconds(10)));

        // Toggle: the API says it flipped; toggle back.
        await browser.EvaluateAsync("document.getElementById('flag-toggle').click(); true");
        Assert.True(await browser.WaitForAsync("document.getElementById('flag-value').textContent === 'off'", TimeSpan.FromSeconds(10)));
        Assert.False(await FlagFromApiAsync(origin, admin));
        Assert.Contains("admin API", await browser.TextAsync("#flag-source"), StringComparison.Ordinal);
        await browser.EvaluateAsync("document.getElementById('flag-toggle').click(); true");
        Assert.True(await browser.WaitForAsync("document.getElementById('flag-value').textContent === 'on'", TimeSpan.FromSeconds(10)));
        Assert.True(await FlagFromApiAsync(origin, admin));
        Assert.True(await RedisStreams.WaitUntilAsync(() => Task.FromResult(IngestStack.SupportsExotel(gateway)), TimeSpan.FromSeconds(5)));

        // A live call appears in the calls table by itself (the page polls; nobody clicks).
        var call = await LiveCall.StartAsync(IngestStack.IngestUri(gateway), 77, "console-" + Guid.NewGuid().ToString("N")[..10]);
        using var sending = new CancellationTokenSource();
        var frames = call.SendAsync(600, sending.Token);
        try
        {
            Assert.True(await browser.WaitForAsync($"document.querySelector('#calls tbody').textContent.includes({Js(call.StreamSid)})", TimeSpan.FromSeconds(10)),
                await browser.TextAsync("#calls"));

            // A refused upgrade (wrong Basic password) appears with its reason; the password does not.
            var refused = await ExotelClient.TryUpgradeAsync(IngestStack.IngestUri(gateway), new Dictionary<string, string> { ["Authorization"] = ExotelClient.BasicHeader(IngestStack.ExotelUser, WrongPassword) });
            Assert.Equal(401, refused);
            Assert.True(await browser.WaitForAsync("document.querySelector('#refusals tbody').textContent.includes('bad_credentials')", TimeSpan.FromSeconds(10)),
                await browser.TextAsync("#refusals"));

            // Frames grow on the page without a click.
            var first = await browser.EvaluateAsync($"[...document.querySelectorAll('#calls tbody tr')].find(r => r.cells[0].textContent === {Js(call.StreamSid)}).cells[2].textContent");
            Assert.True(await browser.WaitForAsync(
                $"Number([...document.querySelectorAll('#calls tbody tr')].find(r => r.cells[0].textContent === {Js(call.StreamSid)})?.cells[2].textContent) > {first!.GetValue<string>()}",
                TimeSpan.FromSeconds(10)));

            // The pictures (issue 24 item 4), drawn from the pushed view: the list comes from the live-view stream,
            // cluster frames/s and live calls are lines, the refusal is a bar of its reason, the call has its level
            // and its frames/s sparkline.
            Assert.True(await browser.WaitForAsync("document.getElementById('calls-updated').textContent.startsWith('pushed')", TimeSpan.FromSeconds(15)), await browser.TextAsync("#calls-updated"));
            Assert.True(await browser.WaitForAsync("/cluster frames\\/s: [1-9]/.test(document.querySelector('#fps-chart .chart-label').textContent) && document.querySelector('#fps-chart polyline') !== null", TimeSpan.FromSeconds(15)),
                await browser.TextAsync("#fps-chart"));
            Assert.True(await browser.WaitForAsync("document.querySelector('#calls-chart .chart-label').textContent.startsWith('live calls: 1')", TimeSpan.FromSeconds(10)), await browser.TextAsync("#calls-chart"));
            Assert.True(await browser.WaitForAsync("document.querySelector('#refusals-chart rect[data-reason=\"bad_credentials\"]') !== null && document.getElementById('refusals-legend').textContent.includes('bad_credentials')", TimeSpan.FromSeconds(10)));
            Assert.True(await browser.WaitForAsync(
                $"(r => r !== undefined && r.cells[3].querySelector('meter.level') !== null && r.cells[3].querySelector('svg.spark polyline') !== null && Number(r.cells[3].querySelector('meter').value) > 0)([...document.querySelectorAll('#calls tbody tr')].find(r => r.cells[0].textContent === {Js(call.StreamSid)}))",
                TimeSpan.FromSeconds(15)), await browser.TextAsync("#calls"));

            var source = (await browser.EvaluateAsync("document.documentElement.outerHTML"))!.GetValue<string>();
            Assert.DoesNotContain(admin, source, StringComparison.Ordinal);
            Assert.DoesNotContain(admin.Split('.')[2], source, StringComparison.Ordinal);
            Assert.DoesNotContain(WrongPassword, source, StringComparison.Ordinal);
            Assert.DoesNotContain(admin, (await browser.EvaluateAsync("location.href + JSON.stringify(sessionStorage) + JSON.stringify(localStorage) + document.cookie"))!.GetValue<string>(), StringComparison.Ordinal);

            var screenshot = await browser.ScreenshotAsync();
            var path = Path.Combine(AppContext.BaseDirectory, "admin-console.png");
            await File.WriteAllBytesAsync(path, screenshot);
            output.WriteLine($"screenshot: {path} ({screenshot.Length} bytes); test ran {clock.Elapsed.TotalSeconds:F1} s");
            Assert.Equal(0x89, screenshot[0]);
        }
        finally
        {
            await sending.CancelAsync();
            await frames;
            await call.StopAsync();
            await call.Call.DisposeAsync();
        }
    }
}
