// Building block moved from Ingest.Tests; the type summary documents it, its members are read by the kit and the project tests.
#pragma warning disable CS1591

using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace Ingest.Testing;

/// <summary>A WebSocket client that talks like Exotel's Stream applet (snake_case, string numbers).</summary>
public sealed class ExotelClient : IAsyncDisposable
{
    private readonly ClientWebSocket _socket;

    private ExotelClient(ClientWebSocket socket) => _socket = socket;

    public ClientWebSocket Socket => _socket;

    public static string BasicHeader(string user, string password) =>
        "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(user + ":" + password));

    public static ClientWebSocket NewSocket(IDictionary<string, string>? headers = null)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            socket.Options.SetRequestHeader(name, value);
        }

        return socket;
    }

    public static async Task<ExotelClient> ConnectAsync(Uri uri, string? user = IngestStack.ExotelUser, string? password = IngestStack.ExotelPassword)
    {
        var headers = new Dictionary<string, string>();
        if (user is not null)
        {
            headers["Authorization"] = BasicHeader(user, password ?? string.Empty);
        }

        var socket = NewSocket(headers);
        await socket.ConnectAsync(uri, CancellationToken.None);
        return new ExotelClient(socket);
    }

    /// <summary>The HTTP status an upgrade attempt got (101 when it succeeded).</summary>
    public static async Task<int> TryUpgradeAsync(Uri uri, IDictionary<string, string>? headers = null)
    {
        using var socket = NewSocket(headers);
        try
        {
            await socket.ConnectAsync(uri, CancellationToken.None);
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "probe", CancellationToken.None);
            return 101;
        }
        catch (WebSocketException)
        {
            return (int)socket.HttpStatusCode;
        }
    }

    public Task SendJsonAsync(object message) =>
        SendTextAsync(JsonSerializer.Serialize(message));

    public Task SendTextAsync(string text) =>
        _socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, CancellationToken.None);

    public Task ConnectedAsync() => SendJsonAsync(new { @event = "connected" });

    public Task StartAsync(string streamSid, string callSid, int sampleRate = 8000) => SendJsonAsync(new
    {
        @event = "start",
        sequence_number = "1",
        stream_sid = streamSid,
        start = new
        {
            stream_sid = streamSid,
            call_sid = callSid,
            account_sid = "exotelt",
            from = "+919876543210",
            to = "+918047491899",
            custom_parameters = new { lang = "hi" },
            media_format = new { encoding = "audio/x-raw", sample_rate = sampleRate.ToString(System.Globalization.CultureInfo.InvariantCulture), bit_rate = "128kbps" },
        },
    });

    public Task MediaAsync(string streamSid, long seq, long chunk, byte[] audio) => SendJsonAsync(new
    {
        @event = "media",
        sequence_number = seq.ToString(System.Globalization.CultureInfo.InvariantCulture),
        stream_sid = streamSid,
        media = new { chunk = chunk.ToString(System.Globalization.CultureInfo.InvariantCulture), timestamp = (chunk * 100).ToString(System.Globalization.CultureInfo.InvariantCulture), payload = Convert.ToBase64String(audio) },
    });

    /// <summary>A media message of one track (CONTRACT §5): <c>track</c> inside <c>media</c>, and <c>chunk</c> when given.</summary>
    public Task TrackMediaAsync(string streamSid, long seq, long? chunk, string track, byte[] audio) => SendJsonAsync(chunk is { } c
        ? new
        {
            @event = "media",
            sequence_number = seq.ToString(System.Globalization.CultureInfo.InvariantCulture),
            stream_sid = streamSid,
            media = (object)new { track, chunk = c.ToString(System.Globalization.CultureInfo.InvariantCulture), timestamp = (c * 100).ToString(System.Globalization.CultureInfo.InvariantCulture), payload = Convert.ToBase64String(audio) },
        }
        : new
        {
            @event = "media",
            sequence_number = seq.ToString(System.Globalization.CultureInfo.InvariantCulture),
            stream_sid = streamSid,
            media = (object)new { track, payload = Convert.ToBase64String(audio) },
        });

    public Task DtmfAsync(string streamSid, long seq, string digit) => SendJsonAsync(new
    {
        @event = "dtmf",
        sequence_number = seq.ToString(System.Globalization.CultureInfo.InvariantCulture),
        stream_sid = streamSid,
        dtmf = new { digit, duration = "100" },
    });

    public Task StopAsync(string streamSid, long seq, string reason = "callended") => SendJsonAsync(new
    {
        @event = "stop",
        sequence_number = seq.ToString(System.Globalization.CultureInfo.InvariantCulture),
        stream_sid = streamSid,
        stop = new { call_sid = "call", account_sid = "exotelt", reason },
    });

    /// <summary>Waits for the server's close frame; returns its status, or null if the socket died without one.</summary>
    public async Task<WebSocketCloseStatus?> WaitForCloseAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                var result = await _socket.ReceiveAsync(buffer, cts.Token);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return result.CloseStatus;
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
            return _socket.CloseStatus;
        }
    }

    public static byte[] Pcm(int streamNumber, long seq, int bytes = 320)
    {
        var audio = new byte[bytes];
        new Random(HashCode.Combine(streamNumber, seq)).NextBytes(audio);
        return audio;
    }

    public async ValueTask DisposeAsync()
    {
        if (_socket.State == WebSocketState.Open)
        {
            try
            {
                await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
            {
                // The server closed or reset it first (a hostile test's socket): nothing left to close. The socket
                // reports an abort by the peer as OperationCanceledException("Aborted") around a WebSocketException.
            }
        }

        _socket.Dispose();
    }
}
