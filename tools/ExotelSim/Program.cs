using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace Ingest.Tools.ExotelSim;

/// <summary>
/// Plays one call the way Exotel's Stream applet does: connected, start, 100 ms PCM16 media frames of a 440 Hz tone,
/// one dtmf, stop. Usage: ExotelSim --url ws://127.0.0.1:8080/v1/ingest --user U --pass P [--frames 50] [--rate 8000] [--sid ID]
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var options = Parse(args);
        var url = new Uri(options.GetValueOrDefault("url", "ws://127.0.0.1:8080/v1/ingest"));
        var frames = int.Parse(options.GetValueOrDefault("frames", "50"), CultureInfo.InvariantCulture);
        var rate = int.Parse(options.GetValueOrDefault("rate", "8000"), CultureInfo.InvariantCulture);
        var sid = options.GetValueOrDefault("sid", Guid.NewGuid().ToString("N"));
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

        var samplesPerFrame = rate / 10;
        for (var chunk = 1; chunk <= frames; chunk++)
        {
            var pcm = new byte[samplesPerFrame * 2];
            for (var i = 0; i < samplesPerFrame; i++)
            {
                var t = ((chunk - 1) * samplesPerFrame + i) / (double)rate;
                var sample = (short)(Math.Sin(2 * Math.PI * 440 * t) * 8000);
                pcm[2 * i] = (byte)sample;
                pcm[2 * i + 1] = (byte)(sample >> 8);
            }

            await SendAsync(socket, new
            {
                @event = "media",
                sequence_number = (++seq).ToString(CultureInfo.InvariantCulture),
                stream_sid = sid,
                media = new { chunk = chunk.ToString(CultureInfo.InvariantCulture), timestamp = ((chunk - 1) * 100).ToString(CultureInfo.InvariantCulture), payload = Convert.ToBase64String(pcm) },
            });
            if (chunk == frames / 2)
            {
                await SendAsync(socket, new { @event = "dtmf", sequence_number = (++seq).ToString(CultureInfo.InvariantCulture), stream_sid = sid, dtmf = new { digit = "5", duration = "100" } });
            }

            await Task.Delay(100);
        }

        await SendAsync(socket, new { @event = "stop", sequence_number = (++seq).ToString(CultureInfo.InvariantCulture), stream_sid = sid, stop = new { call_sid = callSid, account_sid = "exotelsim", reason = "callended" } });
        var buffer = new byte[1024];
        var result = await socket.ReceiveAsync(buffer, new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
        Console.WriteLine($"sent {frames} media frames; server closed with {result.CloseStatus} \"{result.CloseStatusDescription}\"");
        Console.WriteLine($"see them: redis-cli -p <port> XRANGE 'ingest:audio:{{{sid}}}' - + COUNT 3   and   XRANGE ingest:calls - +");
        return 0;
    }

    private static Task SendAsync(ClientWebSocket socket, object message) =>
        socket.SendAsync(JsonSerializer.SerializeToUtf8Bytes(message), WebSocketMessageType.Text, true, CancellationToken.None);

    private static Dictionary<string, string> Parse(string[] args)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            options[args[i].TrimStart('-')] = args[i + 1];
        }

        return options;
    }
}
