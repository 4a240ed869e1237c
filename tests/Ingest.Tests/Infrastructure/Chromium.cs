using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Ingest.Tests.Infrastructure;

/// <summary>
/// Debian's headless Chromium driven over the Chrome DevTools Protocol with a plain WebSocket: one page target, attached
/// in flat mode; navigate, evaluate JavaScript, screenshot. Launched with its own temporary profile and killed on dispose.
/// </summary>
public sealed partial class Chromium : IAsyncDisposable
{
    public const string Executable = "/usr/bin/chromium";

    private readonly Process _process;
    private readonly ClientWebSocket _socket = new();
    private readonly string _profile;
    private readonly ConcurrentDictionary<int, TaskCompletionSource<JsonObject>> _pending = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _send = new(1, 1);
    private Task _reader = Task.CompletedTask;
    private int _nextId;
    private string? _session;

    private Chromium(Process process, string profile)
    {
        _process = process;
        _profile = profile;
    }

    public static async Task<Chromium> LaunchAsync(int width = 1280, int height = 900)
    {
        if (!File.Exists(Executable))
        {
            throw new InvalidOperationException($"{Executable} is missing: apt-get install -y chromium (tools/test.sh installs it)");
        }

        var profile = Directory.CreateTempSubdirectory("ingest-chromium-").FullName;
        var start = new ProcessStartInfo(Executable)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[]
                 {
                     "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--no-default-browser-check", "--disable-extensions", "--disable-background-networking", "--disable-sync",
                     "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", $"--user-data-dir={profile}",
                     $"--window-size={width},{height}", "about:blank",
                 })
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("chromium did not start");
        var browser = new Chromium(process, profile);
        var endpoint = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var stderr = new StringBuilder();
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                endpoint.TrySetException(new InvalidOperationException("chromium exited before DevTools listened: " + stderr));
                return;
            }

            lock (stderr)
            {
                stderr.AppendLine(e.Data);
            }

            if (DevToolsLine().Match(e.Data) is { Success: true } match)
            {
                endpoint.TrySetResult(new Uri(match.Groups[1].Value));
            }
        };
        process.OutputDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        try
        {
            var uri = await endpoint.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await browser._socket.ConnectAsync(uri, CancellationToken.None);
            browser._reader = browser.ReadAsync();
            var target = await browser.SendAsync("Target.createTarget", new JsonObject { ["url"] = "about:blank" }, browserLevel: true);
            var attached = await browser.SendAsync("Target.attachToTarget", new JsonObject { ["targetId"] = target["targetId"]!.GetValue<string>(), ["flatten"] = true }, browserLevel: true);
            browser._session = attached["sessionId"]!.GetValue<string>();
            await browser.SendAsync("Page.enable");
            await browser.SendAsync("Runtime.enable");
            await browser.SendAsync("Emulation.setDeviceMetricsOverride", new JsonObject { ["width"] = width, ["height"] = height, ["deviceScaleFactor"] = 1, ["mobile"] = false });
            return browser;
        }
        catch
        {
            await browser.DisposeAsync();
            throw;
        }
    }

    [GeneratedRegex(@"DevTools listening on (ws://\S+)")]
    private static partial Regex DevToolsLine();

    public async Task<JsonObject> SendAsync(string method, JsonObject? parameters = null, bool browserLevel = false)
    {
        var id = Interlocked.Increment(ref _nextId);
        var message = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters ?? new JsonObject() };
        if (!browserLevel && _session is not null)
        {
            message["sessionId"] = _session;
        }

        var reply = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = reply;
        await _send.WaitAsync();
        try
        {
            await _socket.SendAsync(Encoding.UTF8.GetBytes(message.ToJsonString()), WebSocketMessageType.Text, true, CancellationToken.None);
        }
        finally
        {
            _send.Release();
        }

        var answer = await reply.Task.WaitAsync(TimeSpan.FromSeconds(30));
        if (answer["error"] is { } error)
        {
            throw new InvalidOperationException($"{method}: {error.ToJsonString()}");
        }

        return answer["result"]?.AsObject() ?? new JsonObject();
    }

    public async Task NavigateAsync(Uri url)
    {
        await SendAsync("Page.navigate", new JsonObject { ["url"] = url.ToString() });
        if (!await WaitForAsync("document.readyState === 'complete' && location.href !== 'about:blank'", TimeSpan.FromSeconds(15)))
        {
            throw new TimeoutException("page did not load: " + url);
        }
    }

    /// <summary>Evaluates <paramref name="expression"/> in the page (awaiting a promise) and returns its value as JSON.</summary>
    public async Task<JsonNode?> EvaluateAsync(string expression)
    {
        var result = await SendAsync("Runtime.evaluate", new JsonObject { ["expression"] = expression, ["returnByValue"] = true, ["awaitPromise"] = true });
        if (result["exceptionDetails"] is { } exception)
        {
            throw new InvalidOperationException("page script failed: " + exception.ToJsonString());
        }

        return result["result"]?["value"]?.DeepClone();
    }

    public async Task<string> TextAsync(string selector) =>
        (await EvaluateAsync($"(document.querySelector({JsonSerializer.Serialize(selector)})?.textContent ?? '')"))?.GetValue<string>() ?? string.Empty;

    /// <summary>Polls a boolean expression in the page until it is true or the time is up.</summary>
    public async Task<bool> WaitForAsync(string expression, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (await EvaluateAsync($"!!({expression})") is JsonValue value && value.GetValue<bool>())
            {
                return true;
            }

            await Task.Delay(100);
        }

        return false;
    }

    public async Task<byte[]> ScreenshotAsync() =>
        Convert.FromBase64String((await SendAsync("Page.captureScreenshot", new JsonObject { ["format"] = "png" }))["data"]!.GetValue<string>());

    private async Task ReadAsync()
    {
        var buffer = new byte[1 << 16];
        using var message = new MemoryStream();
        try
        {
            while (!_stop.IsCancellationRequested && _socket.State == WebSocketState.Open)
            {
                message.SetLength(0);
                WebSocketReceiveResult result;
                do
                {
                    result = await _socket.ReceiveAsync(buffer, _stop.Token);
                    message.Write(buffer, 0, result.Count);
                }
                while (!result.EndOfMessage && result.MessageType != WebSocketMessageType.Close);

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    break;
                }

                var node = JsonNode.Parse(message.ToArray())?.AsObject();
                if (node?["id"] is { } id && _pending.TryRemove(id.GetValue<int>(), out var reply))
                {
                    reply.TrySetResult(node);
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException)
        {
        }
        finally
        {
            foreach (var pending in _pending.Values)
            {
                pending.TrySetException(new InvalidOperationException("DevTools connection closed"));
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _socket.Dispose();
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or System.ComponentModel.Win32Exception)
        {
        }

        _process.Dispose();
        // The reader ends on the cancelled token or the disposed socket, and catches both itself.
        await _reader.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        try
        {
            Directory.Delete(_profile, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}
