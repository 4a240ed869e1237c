using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace Ingest.Tools.ExotelSim;

/// <summary>
/// Plays one call the way Exotel's Stream applet does: connected, start, 100 ms PCM16 media frames of a 440 Hz tone,
/// one dtmf, stop. Exit codes: 0 the call was played, 1 the server refused or ended it, 2 bad arguments.
/// </summary>
public static class Program
{
    private const string Usage = """
        Usage: ExotelSim [--url ws://127.0.0.1:8080/v1/ingest] [--user U --pass P] [--frames 50] [--rate 8000] [--sid ID]

        Plays one Exotel call: connected, start, 100 ms PCM16 frames of a 440 Hz tone, one dtmf, stop.
          --url     the gateway's WebSocket URL                    (default ws://127.0.0.1:8080/v1/ingest)
          --user    Basic user of Exotel's stream URL; --pass its password
          --frames  media frames to send, 1 to 1000000             (default 50)
          --rate    8000, 16000 or 24000                           (default 8000)
          --sid     stream_sid; a stream id can be used once only  (default: a fresh demo-… id each run)
          --help    this text
        """;

    private static readonly string[] Known = ["url", "user", "pass", "frames", "rate", "sid"];

    public static async Task<int> Main(string[] args)
    {
        if (args.Any(a => a is "--help" or "-h" or "help" or "-?"))
        {
            Console.WriteLine(Usage);
            return 0;
        }

        if (!TryParse(args, out var options, out var problem) ||
            !TryNumber(options, "frames", 50, 1, 1_000_000, out var frames, ref problem) ||
            !TryNumber(options, "rate", 8000, 8000, 24_000, out var rate, ref problem) ||
            !TryUrl(options, out var url, ref problem))
        {
            await Console.Error.WriteLineAsync($"ExotelSim: {problem} (see --help)");
            return 2;
        }

        if (rate is not (8000 or 16000 or 24000))
        {
            await Console.Error.WriteLineAsync("ExotelSim: --rate must be 8000, 16000 or 24000 (see --help)");
            return 2;
        }

        var sid = options.GetValueOrDefault("sid", "demo-" + Guid.NewGuid().ToString("N")[..8]);
        var callSid = Guid.NewGuid().ToString("N");

        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        if (options.TryGetValue("user", out var user))
        {
            var token = Convert.ToBase64String(Encoding.UTF8.GetBytes(user + ":" + options.GetValueOrDefault("pass", string.Empty)));
            socket.Options.SetRequestHeader("Authorization", "Basic " + token);
        }

        try
        {
            await socket.ConnectAsync(url, CancellationToken.None);
        }
        catch (WebSocketException ex)
        {
            await Console.Error.WriteLineAsync($"upgrade refused: HTTP {(int)socket.HttpStatusCode} ({ex.Message})");
            return 1;
        }

        Console.WriteLine($"connected to {url}; stream_sid {sid}, call_sid {callSid}");
        var seq = 1;
        await SendAsync(socket, new { @event = "connected" });
        await SendAsync(socket, new
        {
            @event = "start",
            sequence_number = seq.ToString(CultureInfo.InvariantCulture),
            stream_sid = sid,
            start = new
            {
                stream_sid = sid,
                call_sid = callSid,
                account_sid = "exotelsim",
                from = "+919876543210",
                to = "+918047491899",
                custom_parameters = new { },
                media_format = new { encoding = "audio/x-raw", sample_rate = rate.ToString(CultureInfo.InvariantCulture), bit_rate = "128kbps" },
            },
        });

        // The server may end the stream at once (a stream id that was already used: 1008 "stream already ended");
        // listen from the start so that is reported now, not after every frame has been sent into a closed stream.
        var closed = ReceiveCloseAsync(socket);
        var samplesPerFrame = rate / 10;
        for (var chunk = 1; chunk <= frames; chunk++)
        {
            if (closed.IsCompleted)
            {
                return await ReportEarlyCloseAsync(closed, sid, chunk - 1);
            }

            var pcm = new byte[samplesPerFrame * 2];
            for (var i = 0; i < samplesPerFrame; i++)
            {
                var t = ((chunk - 1) * samplesPerFrame + i) / (double)rate;
                var sample = (short)(Math.Sin(2 * Math.PI * 440 * t) * 8000);
                pcm[2 * i] = (byte)sample;
                pcm[2 * i + 1] = (byte)(sample >> 8);
            }

            if (!await TrySendAsync(socket, new
            {
                @event = "media",
                sequence_number = (++seq).ToString(CultureInfo.InvariantCulture),
                stream_sid = sid,
                media = new { chunk = chunk.ToString(CultureInfo.InvariantCulture), timestamp = ((chunk - 1) * 100).ToString(CultureInfo.InvariantCulture), payload = Convert.ToBase64String(pcm) },
            }))
            {
                return await ReportEarlyCloseAsync(closed, sid, chunk - 1);
            }

            if (chunk == frames / 2)
            {
                await SendAsync(socket, new { @event = "dtmf", sequence_number = (++seq).ToString(CultureInfo.InvariantCulture), stream_sid = sid, dtmf = new { digit = "5", duration = "100" } });
            }

            await Task.WhenAny(closed, Task.Delay(100));
        }

        if (closed.IsCompleted)
        {
            return await ReportEarlyCloseAsync(closed, sid, frames);
        }

        await SendAsync(socket, new { @event = "stop", sequence_number = (++seq).ToString(CultureInfo.InvariantCulture), stream_sid = sid, stop = new { call_sid = callSid, account_sid = "exotelsim", reason = "callended" } });
        var result = await closed.WaitAsync(TimeSpan.FromSeconds(30));
        Console.WriteLine($"sent {frames} media frames; server closed with {result.CloseStatus} \"{result.CloseStatusDescription}\"");
        Console.WriteLine($"see them: redis-cli -p <port> XRANGE 'ingest:audio:{{{sid}}}' - + COUNT 3   and   XRANGE ingest:calls - +");
        return 0;
    }

    private static Task SendAsync(ClientWebSocket socket, object message) =>
        socket.SendAsync(JsonSerializer.SerializeToUtf8Bytes(message), WebSocketMessageType.Text, true, CancellationToken.None);

    /// <summary>Reads (and ignores) whatever the server sends until its close frame.</summary>
    private static async Task<WebSocketReceiveResult> ReceiveCloseAsync(ClientWebSocket socket)
    {
        var buffer = new byte[4096];
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return result;
            }
        }
    }

    private static async Task<bool> TrySendAsync(ClientWebSocket socket, object message)
    {
        try
        {
            await SendAsync(socket, message);
            return true;
        }
        catch (WebSocketException)
        {
            return false;
        }
    }

    private static async Task<int> ReportEarlyCloseAsync(Task<WebSocketReceiveResult> closed, string sid, int sent)
    {
        string how;
        try
        {
            var result = await closed.WaitAsync(TimeSpan.FromSeconds(5));
            how = $"{(int?)result.CloseStatus} {result.CloseStatus} \"{result.CloseStatusDescription}\"";
        }
        catch (Exception ex) when (ex is WebSocketException or TimeoutException)
        {
            how = "the connection dropped";
        }

        await Console.Error.WriteLineAsync($"the server ended stream_sid {sid} after {sent} media frame(s): {how}");
        if (how.Contains("already ended", StringComparison.Ordinal))
        {
            await Console.Error.WriteLineAsync("that stream id was used before; run again without --sid (a fresh one is chosen) or pick a new --sid");
        }

        return 1;
    }

    private static bool TryParse(string[] args, out Dictionary<string, string> options, out string problem)
    {
        options = new Dictionary<string, string>(StringComparer.Ordinal);
        problem = string.Empty;
        for (var i = 0; i < args.Length; i += 2)
        {
            var name = args[i].StartsWith("--", StringComparison.Ordinal) ? args[i][2..] : null;
            if (name is null || !Known.Contains(name))
            {
                problem = $"unknown argument '{args[i]}'";
                return false;
            }

            if (i + 1 >= args.Length)
            {
                problem = $"--{name} needs a value";
                return false;
            }

            options[name] = args[i + 1];
        }

        return true;
    }

    private static bool TryNumber(Dictionary<string, string> options, string name, int defaultValue, int min, int max, out int value, ref string problem)
    {
        value = defaultValue;
        if (!options.TryGetValue(name, out var text))
        {
            return true;
        }

        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value >= min && value <= max)
        {
            return true;
        }

        problem = $"--{name} must be a whole number from {min} to {max}, not '{text}'";
        return false;
    }

    private static bool TryUrl(Dictionary<string, string> options, out Uri url, ref string problem)
    {
        var text = options.GetValueOrDefault("url", "ws://127.0.0.1:8080/v1/ingest");
        if (Uri.TryCreate(text, UriKind.Absolute, out url!) && url.Scheme is "ws" or "wss")
        {
            return true;
        }

        problem = $"--url must be a ws:// or wss:// URL, not '{text}'";
        return false;
    }
}
