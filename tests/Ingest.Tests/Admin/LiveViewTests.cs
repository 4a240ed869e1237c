using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Ingest.Tests.EndToEnd;
using Ingest.Tests.Infrastructure;
using Ingest.Tests.Operations;
using Microsoft.AspNetCore.Builder;

namespace Ingest.Tests.Admin;

/// <summary>
/// Issue 24 item 3: the pushed live view. Each silo publishes its calls once a second on an Orleans stream; the
/// gateway serves them as server-sent events at <c>/v1/admin/calls/stream</c> (admin token, at most
/// <c>MAX_ADMIN_STREAMS</c> subscribers), and <c>ingestctl calls list --watch</c> reads them. Its 2 s bounds are a
/// timing promise, so it runs alone.
/// </summary>
[Collection(TimingCollection.Name)]
public sealed class LiveViewTests(Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime
{
    private IngestStack _stack = null!;
    private WebApplication _gateway = null!;

    public async Task InitializeAsync()
    {
        _stack = await IngestStack.StartAsync();
        try
        {
            await _stack.AddSiloAsync();
            await _stack.AddSiloAsync();
            _gateway = await _stack.AddGatewayAsync(new() { ["SUPPORT_EXOTEL"] = "true", ["MAX_ADMIN_STREAMS"] = "2" });
        }
        catch
        {
            // xunit does not call DisposeAsync when InitializeAsync fails: the stack (and its redis-server) goes here.
            await _stack.DisposeAsync();
            throw;
        }
    }

    public async Task DisposeAsync() => await _stack.DisposeAsync();

    [Fact]
    public async Task A_subscriber_sees_a_new_call_within_2_s_and_its_stop_within_2_s()
    {
        await using var view = await Subscriber.OpenAsync(_gateway);
        Assert.Empty(await view.NextAsync(TimeSpan.FromSeconds(10)));

        var call = await LiveCall.StartAsync(IngestStack.IngestUri(_gateway), 5);
        var clock = Stopwatch.StartNew();
        await call.SendAsync(frames: 2);
        var seen = await view.UntilAsync(calls => calls.Any(c => c.GetProperty("stream_id").GetString() == call.StreamSid), TimeSpan.FromSeconds(10));
        Assert.True(seen < TimeSpan.FromSeconds(2), $"the new call was pushed after {seen.TotalSeconds:F1} s ({clock.Elapsed.TotalSeconds:F1} s after its start)");

        await call.FinishAsync();
        var gone = await view.UntilAsync(calls => calls.All(c => c.GetProperty("stream_id").GetString() != call.StreamSid), TimeSpan.FromSeconds(10));
        Assert.True(gone < TimeSpan.FromSeconds(2), $"the stop was pushed after {gone.TotalSeconds:F1} s");
        output.WriteLine($"new call pushed after {seen.TotalMilliseconds:F0} ms, its stop after {gone.TotalMilliseconds:F0} ms");
    }

    [Fact]
    public async Task Without_an_admin_token_the_view_is_refused_and_beyond_MAX_ADMIN_STREAMS_it_is_503_until_a_place_is_free()
    {
        using (var none = await SendAsync(_gateway, token: null))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        }

        using (var notAdmin = await SendAsync(_gateway, Tokens.Create(role: "native")))
        {
            Assert.Equal(HttpStatusCode.Forbidden, notAdmin.StatusCode);
        }

        var first = await Subscriber.OpenAsync(_gateway);
        await using var second = await Subscriber.OpenAsync(_gateway);
        using (var third = await SendAsync(_gateway, Tokens.Create(role: "admin")))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, third.StatusCode);
            Assert.NotNull(third.Headers.RetryAfter);
            Assert.Contains("MAX_ADMIN_STREAMS", await third.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // A subscriber that leaves gives its place back.
        await first.DisposeAsync();
        Assert.True(await RedisStreams.WaitUntilAsync(async () =>
        {
            using var again = await SendAsync(_gateway, Tokens.Create(role: "admin"));
            return again.StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Ingestctl_calls_list_watch_prints_the_pushed_list_as_it_changes()
    {
        var call = await LiveCall.StartAsync(IngestStack.IngestUri(_gateway), 6);
        await call.SendAsync(frames: 2);
        using var ctl = HostRun.Start(HostRun.IngestCtlDll, new() { ["JWT_SECRET"] = IngestStack.JwtSecret, ["INGESTCTL_TOKEN"] = "" },
            ["calls", "list", "--watch", "--json", "--url", IngestStack.HttpUri(_gateway, "/").ToString()]);
        try
        {
            var sawCall = false;
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            while (!sawCall && await ctl.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                sawCall = line.Contains(call.StreamSid, StringComparison.Ordinal);
            }

            Assert.True(sawCall, "ingestctl --watch never printed the live call");
            await call.FinishAsync();
            var sawEnd = false;
            while (!sawEnd && await ctl.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                sawEnd = !line.Contains(call.StreamSid, StringComparison.Ordinal);
            }

            Assert.True(sawEnd, "ingestctl --watch never printed the list without the ended call");
            Assert.False(ctl.HasExited);
        }
        finally
        {
            ctl.Kill(entireProcessTree: true);
            await ctl.WaitForExitAsync();
        }
    }

    private static async Task<HttpResponseMessage> SendAsync(WebApplication gateway, string? token)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, IngestStack.HttpUri(gateway, "/v1/admin/calls/stream"));
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            await response.Content.LoadIntoBufferAsync();
        }

        return response;
    }

    /// <summary>An SSE client: every <c>calls</c> event's array, as it arrives.</summary>
    private sealed class Subscriber : IAsyncDisposable
    {
        private readonly HttpClient _http;
        private readonly HttpResponseMessage _response;
        private readonly Channel<JsonElement[]> _events = Channel.CreateUnbounded<JsonElement[]>();
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _reading;

        private Subscriber(HttpClient http, HttpResponseMessage response)
        {
            _http = http;
            _response = response;
            _reading = ReadAsync();
        }

        public static async Task<Subscriber> OpenAsync(WebApplication gateway)
        {
            var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
            using var request = new HttpRequestMessage(HttpMethod.Get, IngestStack.HttpUri(gateway, "/v1/admin/calls/stream"));
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Tokens.Create(role: "admin"));
            var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
            return new Subscriber(http, response);
        }

        public async Task<JsonElement[]> NextAsync(TimeSpan timeout)
        {
            using var cts = new CancellationTokenSource(timeout);
            return await _events.Reader.ReadAsync(cts.Token);
        }

        /// <summary>How long until an event satisfied <paramref name="condition"/>.</summary>
        public async Task<TimeSpan> UntilAsync(Func<JsonElement[], bool> condition, TimeSpan timeout)
        {
            var clock = Stopwatch.StartNew();
            while (!condition(await NextAsync(timeout - clock.Elapsed)))
            {
            }

            return clock.Elapsed;
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _response.Dispose();
            _http.Dispose();
            try
            {
                await _reading;
            }
            catch (Exception)
            {
            }

            _stop.Dispose();
        }

        private async Task ReadAsync()
        {
            using var reader = new StreamReader(await _response.Content.ReadAsStreamAsync(_stop.Token), Encoding.UTF8);
            string? name = null;
            while (await reader.ReadLineAsync(_stop.Token) is { } line)
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    name = line[7..];
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal) && name == "calls")
                {
                    using var document = JsonDocument.Parse(line[6..]);
                    _events.Writer.TryWrite([.. document.RootElement.EnumerateArray().Select(e => e.Clone())]);
                }
            }
        }
    }
}
