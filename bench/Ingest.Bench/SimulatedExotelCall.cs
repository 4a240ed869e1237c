using System.Buffers.Text;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;

namespace Ingest.Bench;

/// <summary>
/// One call as Exotel's Stream applet makes it: a WebSocket with Basic credentials, <c>connected</c>, <c>start</c>
/// (snake_case, numbers as strings), <c>media</c> frames numbered from 2, then <c>stop</c>. Media messages are written
/// into one reusable buffer so the driver spends its CPU on sending, not on serialising.
/// </summary>
public sealed class SimulatedExotelCall : IAsyncDisposable
{
    /// <summary>Sends every call's stop, 128 at a time, within two minutes in all.</summary>
    public static async Task StopAllAsync(IReadOnlyList<SimulatedExotelCall> calls)
    {
        using var gate = new SemaphoreSlim(128);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await Task.WhenAll(calls.Select(async call =>
        {
            await gate.WaitAsync();
            try
            {
                await call.StopAsync(timeout.Token);
            }
            finally
            {
                gate.Release();
            }
        }));
    }

    private static readonly TimeSpan CloseWait = TimeSpan.FromSeconds(30);

    private readonly ClientWebSocket _socket = new();
    private readonly BenchOptions _options;
    private readonly byte[] _prefix;
    private readonly byte[] _payloadBase64;
    private readonly byte[] _message;
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _receiving;
    private volatile bool _stopping;

    public SimulatedExotelCall(string streamSid, BenchOptions options, long[]? sendTicks)
    {
        StreamSid = streamSid;
        _options = options;
        SendTicks = sendTicks;
        _socket.Options.SetRequestHeader("Authorization", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(options.User + ":" + options.Password)));
        _socket.Options.KeepAliveInterval = TimeSpan.Zero;
        _prefix = Encoding.ASCII.GetBytes("{\"event\":\"media\",\"stream_sid\":\"" + streamSid + "\",\"sequence_number\":\"");
        _payloadBase64 = Encoding.ASCII.GetBytes(Convert.ToBase64String(SentAudioOf(streamSid, options)));
        _message = new byte[_prefix.Length + _payloadBase64.Length + 128];
    }

    public string StreamSid { get; }

    /// <summary>Stopwatch ticks at which each media frame was handed to the socket, indexed by seq - 2; null when not observed.</summary>
    public long[]? SendTicks { get; }

    public long FramesSent { get; private set; }

    /// <summary>How the socket ended before the driver sent stop ("1011 reason", "aborted: ..."); null while it had not.</summary>
    public string? EarlyClose { get; private set; }

    /// <summary>UTC time of <see cref="EarlyClose"/>.</summary>
    public DateTimeOffset? EarlyCloseAt { get; private set; }

    /// <summary>How the socket ended after the driver's stop: "1000 ..." is the server's normal close.</summary>
    public string? CloseAfterStop { get; private set; }

    /// <summary>Largest delay between a frame's scheduled time and its send (real-time mode), in Stopwatch ticks.</summary>
    public long MaxLagTicks { get; private set; }

    /// <summary>The deterministic PCM of a stream, so the verifier can check audio bytes without storing them.</summary>
    /// <summary>What a frame's payload is: PCM16 of the frame's length, or μ-law codes (one byte a sample).</summary>
    public static byte[] SentAudioOf(string streamSid, BenchOptions options) =>
        AudioOf(streamSid, options.Encoding == "mulaw" ? options.FrameBytes / 2 : options.FrameBytes);

    /// <summary>What lands for a frame (CONTRACT §7: always PCM16LE): the payload, or its G.711 decode.</summary>
    public static byte[] LandedAudioOf(string streamSid, BenchOptions options) => options.Encoding == "mulaw"
        ? Ingest.Gateway.Protocol.G711.ToPcm16(SentAudioOf(streamSid, options), Ingest.Gateway.Protocol.SourceEncoding.MuLaw)
        : SentAudioOf(streamSid, options);

    public static byte[] AudioOf(string streamSid, int bytes)
    {
        var audio = new byte[bytes];
        new Random(StringComparer.Ordinal.GetHashCode(streamSid) & 0x7fffffff).NextBytes(audio);
        return audio;
    }

    public async Task ConnectAndStartAsync(CancellationToken cancellationToken)
    {
        await _socket.ConnectAsync(_options.Url, cancellationToken);
        _receiving = ReceiveUntilClosedAsync();
        await SendTextAsync("{\"event\":\"connected\"}", cancellationToken);
        var rate = _options.SampleRate.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await SendTextAsync(
            "{\"event\":\"start\",\"sequence_number\":\"1\",\"stream_sid\":\"" + StreamSid + "\",\"start\":{\"stream_sid\":\"" + StreamSid +
            "\",\"call_sid\":\"call-" + StreamSid + "\",\"account_sid\":\"bench\",\"from\":\"+910000000000\",\"to\":\"+910000000001\"," +
            "\"custom_parameters\":{},\"media_format\":{\"encoding\":\"" + (_options.Encoding == "mulaw" ? "audio/x-mulaw;rate=" + rate : "audio/x-raw") + "\",\"sample_rate\":\"" + rate + "\",\"bit_rate\":\"128kbps\"}}}",
            cancellationToken);
    }

    /// <summary>Sends frames 1..<paramref name="frames"/> (seq 2..frames+1), each at its scheduled time or, when <paramref name="cadenceTicks"/> is 0, as fast as the server reads.</summary>
    public async Task SendMediaAsync(int frames, long firstDueTicks, long cadenceTicks, CancellationToken cancellationToken)
    {
        for (var chunk = 1; chunk <= frames && !cancellationToken.IsCancellationRequested; chunk++)
        {
            if (cadenceTicks > 0)
            {
                var due = firstDueTicks + (chunk - 1) * cadenceTicks;
                var wait = due - Stopwatch.GetTimestamp();
                if (wait > 0)
                {
                    await Task.Delay(TimeSpan.FromTicks(wait * TimeSpan.TicksPerSecond / Stopwatch.Frequency), cancellationToken);
                }

                MaxLagTicks = Math.Max(MaxLagTicks, Stopwatch.GetTimestamp() - due);
            }

            var seq = chunk + 1;
            var length = WriteMedia(seq, chunk);
            SendTicks?[chunk - 1] = Stopwatch.GetTimestamp();

            await _socket.SendAsync(_message.AsMemory(0, length), WebSocketMessageType.Text, true, cancellationToken);
            FramesSent++;
        }
    }

    /// <summary>Sends stop and waits (bounded) for the server to close: by then everything it holds is settled.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        try
        {
            var seq = (FramesSent + 2).ToString(System.Globalization.CultureInfo.InvariantCulture);
            await SendTextAsync("{\"event\":\"stop\",\"sequence_number\":\"" + seq + "\",\"stream_sid\":\"" + StreamSid + "\",\"stop\":{\"call_sid\":\"call\",\"account_sid\":\"bench\",\"reason\":\"callended\"}}", cancellationToken);
            await _closed.Task.WaitAsync(CloseWait, cancellationToken);
            if (_socket.State == WebSocketState.CloseReceived)
            {
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", cancellationToken);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or TimeoutException or OperationCanceledException)
        {
            CloseAfterStop ??= ex is TimeoutException ? "no close from the server within 30 s of stop" : $"stop failed: {ex.Message}";
            _socket.Abort();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stopping = true;
        _socket.Abort();
        if (_receiving is not null)
        {
            await _receiving;
        }

        _socket.Dispose();
    }

    /// <summary>
    /// Sends one message of about <paramref name="bytes"/> bytes that carries no audio (an event the gateway ignores
    /// and counts): what a connection is left holding after one large message.
    /// </summary>
    public Task SendLargeMessageAsync(int bytes, CancellationToken cancellationToken) =>
        SendTextAsync("{\"event\":\"bench_padding\",\"stream_sid\":\"" + StreamSid + "\",\"padding\":\"" + new string('x', Math.Max(0, bytes - 128)) + "\"}", cancellationToken);

    private Task SendTextAsync(string text, CancellationToken cancellationToken) =>
        _socket.SendAsync(Encoding.ASCII.GetBytes(text), WebSocketMessageType.Text, true, cancellationToken);

    private int WriteMedia(long seq, long chunk)
    {
        var span = _message.AsSpan();
        _prefix.CopyTo(span);
        var at = _prefix.Length;
        at += WriteNumber(span[at..], seq);
        at += WriteAscii(span[at..], "\",\"media\":{\"chunk\":\""u8);
        at += WriteNumber(span[at..], chunk);
        at += WriteAscii(span[at..], "\",\"timestamp\":\""u8);
        at += WriteNumber(span[at..], chunk * _options.CadenceMs);
        at += WriteAscii(span[at..], "\",\"payload\":\""u8);
        at += WriteAscii(span[at..], _payloadBase64);
        at += WriteAscii(span[at..], "\"}}"u8);
        return at;
    }

    private static int WriteNumber(Span<byte> destination, long value) =>
        Utf8Formatter.TryFormat(value, destination, out var written) ? written : throw new InvalidOperationException("media buffer too small");

    private static int WriteAscii(Span<byte> destination, ReadOnlySpan<byte> text)
    {
        text.CopyTo(destination);
        return text.Length;
    }

    private void Ended(string how)
    {
        if (_stopping)
        {
            CloseAfterStop ??= how;
        }
        else
        {
            EarlyCloseAt = DateTimeOffset.UtcNow;
            EarlyClose = how;
        }
    }

    // The server pings (KeepAliveTimeout) and a ClientWebSocket only answers while a receive is pending.
    private async Task ReceiveUntilClosedAsync()
    {
        var buffer = new byte[256];
        try
        {
            while (true)
            {
                var result = await _socket.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    Ended(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{(int?)_socket.CloseStatus} {_socket.CloseStatusDescription}"));
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Aborted by us or reset by the server: either way the call is over.
            Ended("aborted: " + ex.Message);
        }
        finally
        {
            _closed.TrySetResult();
        }
    }
}
