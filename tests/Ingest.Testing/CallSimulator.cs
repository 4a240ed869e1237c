using System.Diagnostics;
using System.Net.WebSockets;

namespace Ingest.Testing;

/// <summary>How a simulated call connects and paces itself.</summary>
public sealed class CallOptions
{
    /// <summary>The call's stream id; default a fresh <c>qa-…</c> id.</summary>
    public string? StreamId { get; set; }

    /// <summary>
    /// Real time (default): one media frame every <see cref="FrameInterval"/>, paced by a clock so it does not drift,
    /// as a phone call sends. False: flat out, as fast as the socket takes them.
    /// </summary>
    public bool RealTime { get; set; } = true;

    /// <summary>The real-time cadence; default 100 ms (Exotel's).</summary>
    public TimeSpan FrameInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The sample rate announced in the start message; default 8000.</summary>
    public int SampleRate { get; set; } = 8000;

    /// <summary>Exotel Basic user; default the cluster's (<see cref="IngestCluster.ExotelUser"/>). Null sends no credentials.</summary>
    public string? User { get; set; } = IngestCluster.ExotelUser;

    /// <summary>Exotel Basic password; default the cluster's.</summary>
    public string? Password { get; set; } = IngestCluster.ExotelPassword;

    /// <summary>Native clients' bearer token; default <see cref="IngestCluster.NativeToken"/>.</summary>
    public string? Token { get; set; }
}

/// <summary>
/// What both call simulators share: the socket, the pacing, and the record of what was sent (sequence number →
/// audio bytes) that <see cref="LandedStream.AssertMatches"/> compares with what landed.
/// </summary>
public abstract class CallSimulator : IAsyncDisposable
{
    private readonly Dictionary<long, byte[]> _sent = [];
    private readonly Stopwatch _clock = new();
    private long _paced;

    private protected CallSimulator(ClientWebSocket socket, string streamId, CallOptions options)
    {
        Socket = socket;
        StreamId = streamId;
        Options = options;
    }

    /// <summary>The stream id the call's audio lands under (<c>ingest:audio:{StreamId}</c>).</summary>
    public string StreamId { get; }

    /// <summary>Every distinct media frame sent: sequence number → audio bytes (a resend does not add an entry).</summary>
    public IReadOnlyDictionary<long, byte[]> SentFrames => _sent;

    /// <summary>How many media frames were sent a second time with <c>ResendAsync</c>.</summary>
    public int Resent { get; private protected set; }

    /// <summary>Sequence numbers deliberately never sent (<c>SkipAsync</c>), in order.</summary>
    public IReadOnlyList<long> Skipped => SkippedList;

    /// <summary>True once the call sent its stop (and the gateway closed the socket) or was aborted.</summary>
    public bool Ended { get; private protected set; }

    /// <summary>True when the call ended with <see cref="AbortAsync"/>, not a stop.</summary>
    public bool Aborted { get; private set; }

    /// <summary>The options the call was connected with.</summary>
    public CallOptions Options { get; }

    private protected List<long> SkippedList { get; } = [];

    private protected ClientWebSocket Socket { get; }

    /// <summary>Sends <paramref name="frames"/> frames of a generated 440 Hz tone, 100 ms each at the call's rate.</summary>
    public Task SendAudioAsync(int frames) =>
        SendAudioAsync(CallAudio.Tone(frames, sampleRate: Options.SampleRate, startFrame: _sent.Count));

    /// <summary>Sends a WAV file (or raw 16-bit PCM) cut into 100 ms frames at the call's rate.</summary>
    public Task SendAudioAsync(byte[] wavOrPcm) => SendAudioAsync(CallAudio.Frames(wavOrPcm, CallAudio.FrameBytes(Options.SampleRate)));

    /// <summary>Sends each of <paramref name="frames"/> as one media frame, in order, at the call's pacing.</summary>
    public Task SendAudioAsync(IEnumerable<byte[]> frames) => SendAudioAsync(frames, CancellationToken.None);

    /// <summary>
    /// As <see cref="SendAudioAsync(IEnumerable{byte[]})"/>, ending early (without an exception) once
    /// <paramref name="cancellationToken"/> is cancelled: a caller that keeps talking until the test has seen enough.
    /// </summary>
    public async Task SendAudioAsync(IEnumerable<byte[]> frames, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(frames);
        BeginPacing();
        foreach (var frame in frames)
        {
            if (!await PaceAsync(cancellationToken))
            {
                return;
            }

            var seq = await SendMediaAsync(frame);
            _sent[seq] = frame;
        }
    }

    /// <summary>The socket's state: <see cref="WebSocketState.Open"/> while the gateway keeps the call.</summary>
    public WebSocketState State => Socket.State;

    /// <summary>
    /// Waits (up to <paramref name="timeout"/>) for the gateway to close the socket, reading and dropping what it sends
    /// meanwhile; the close status it gave (null: none within the timeout, or the connection was lost).
    /// </summary>
    public async Task<WebSocketCloseStatus?> WaitForCloseAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var buffer = new byte[4096];
        try
        {
            while (Socket.State is WebSocketState.Open or WebSocketState.CloseSent)
            {
                var result = await Socket.ReceiveAsync(buffer, cts.Token);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return result.CloseStatus;
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
        }

        return Socket.CloseStatus;
    }

    /// <summary>Closes the socket abruptly: no stop, no close handshake, as a dropped phone line does.</summary>
    public Task AbortAsync()
    {
        Socket.Abort();
        Ended = true;
        Aborted = true;
        return Task.CompletedTask;
    }

    /// <summary>Sends the protocol's stop and waits (up to 30 s) for the gateway's close frame.</summary>
    public async Task StopAsync()
    {
        await SendStopAsync();
        await WaitForCloseAsync(TimeSpan.FromSeconds(30));
        Ended = true;
    }

    /// <summary>Closes the socket if the call is still open.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Socket.State == WebSocketState.Open)
        {
            try
            {
                await Socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
            }
            catch (WebSocketException)
            {
            }
        }

        Socket.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>Sends one media frame; returns the sequence number it carries.</summary>
    private protected abstract Task<long> SendMediaAsync(byte[] audio);

    private protected abstract Task SendStopAsync();

    private protected Task SendTextAsync(string json) =>
        Socket.SendAsync(System.Text.Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, true, CancellationToken.None);

    private protected bool TryGetSent(long seq, out byte[] audio) => _sent.TryGetValue(seq, out audio!);

    /// <summary>Records a frame a derived simulator sent on its own (not through <see cref="SendAudioAsync(IEnumerable{byte[]})"/>).</summary>
    private protected void RecordSent(long seq, byte[] audio) => _sent[seq] = audio;

    /// <summary>
    /// Starts the real-time schedule of one batch of frames: its first frame goes at once, the next one
    /// <see cref="CallOptions.FrameInterval"/> later, and so on. Each batch keeps its own schedule, so a pause between
    /// two batches (a test killing a silo) is a silence on the line, never a burst to catch up.
    /// </summary>
    private protected void BeginPacing()
    {
        _clock.Restart();
        _paced = 0;
    }

    /// <summary>Waits until the next frame of the batch is due; false when <paramref name="cancellationToken"/> ended the wait.</summary>
    private protected async Task<bool> PaceAsync(CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return false;
        }

        if (!Options.RealTime)
        {
            return true;
        }

        var wait = Options.FrameInterval * _paced - _clock.Elapsed;
        _paced++;
        if (wait > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(wait, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }

        return true;
    }

    private protected static string NewStreamId() => "qa-" + Guid.NewGuid().ToString("N")[..12];
}
