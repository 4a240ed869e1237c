using System.Globalization;
using System.Net.WebSockets;
using System.Text.Json;

namespace Ingest.Testing;

/// <summary>
/// One call as Exotel's Stream applet makes it: Basic credentials on the upgrade, <c>connected</c>, <c>start</c>
/// (sequence 1), then media, dtmf and mark with sequence 2, 3, … and the media chunk 1, 2, …, then <c>stop</c>.
/// Duplicates (<see cref="ResendAsync"/>) and gaps (<see cref="SkipAsync"/>) are scripted on purpose.
/// </summary>
/// <example>
/// <code>
/// await using var call = await ExotelCallSimulator.ConnectAsync(cluster);
/// await call.StartAsync();
/// await call.SendAudioAsync(frames: 10);
/// await call.ResendAsync(5);
/// await call.StopAsync();
/// </code>
/// </example>
public sealed class ExotelCallSimulator : CallSimulator
{
    private readonly Dictionary<long, long> _chunkOf = [];
    private long _nextSeq = 1;
    private long _nextChunk = 1;
    private readonly Dictionary<long, byte[]> _sentOutbound = [];
    private long _inboundChunk;
    private long _outboundChunk;

    private ExotelCallSimulator(ClientWebSocket socket, string streamId, CallOptions options)
        : base(socket, streamId, options)
    {
    }

    /// <summary>The call sid sent in the start message.</summary>
    public string CallSid => "call-" + StreamId;

    /// <summary>Opens the WebSocket to the cluster's gateway with Exotel's credentials (throws if the upgrade is refused).</summary>
    public static Task<ExotelCallSimulator> ConnectAsync(IngestCluster cluster, CallOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return ConnectAsync(cluster.GatewayUri, options);
    }

    /// <summary>
    /// As <see cref="ConnectAsync(IngestCluster, CallOptions?)"/>, to any gateway's ingest endpoint
    /// (<c>ws://host:port/ingest</c>): one you started as a process, or a deployment under test.
    /// </summary>
    public static async Task<ExotelCallSimulator> ConnectAsync(Uri gateway, CallOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(gateway);
        options ??= new CallOptions();
        var socket = ExotelClient.NewSocket(Headers(options.User, options.Password));
        try
        {
            await socket.ConnectAsync(gateway, CancellationToken.None);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new ExotelCallSimulator(socket, options.StreamId ?? NewStreamId(), options);
    }

    /// <summary>
    /// Tries an upgrade with the given Basic credentials (null user: none) and returns the HTTP status the gateway
    /// answered: 101 when accepted, 401 when the credentials are refused.
    /// </summary>
    public static Task<int> TryConnectAsync(IngestCluster cluster, string? user, string? password)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return ExotelClient.TryUpgradeAsync(cluster.GatewayUri, Headers(user, password));
    }

    /// <summary>Sends <c>connected</c> and <c>start</c> (sequence 1, 16-bit PCM at the options' rate).</summary>
    public async Task StartAsync()
    {
        await SendTextAsync(JsonSerializer.Serialize(new { @event = "connected" }));
        await SendTextAsync(JsonSerializer.Serialize(new
        {
            @event = "start",
            sequence_number = Text(_nextSeq++),
            stream_sid = StreamId,
            start = new
            {
                stream_sid = StreamId,
                call_sid = CallSid,
                account_sid = "qa-account",
                from = "+919876543210",
                to = "+918047491899",
                custom_parameters = new { suite = "qa" },
                media_format = new { encoding = "audio/x-raw", sample_rate = Text(Options.SampleRate), bit_rate = "128kbps" },
            },
        }));
    }

    /// <summary>Sends a dtmf event (it takes the next sequence number).</summary>
    public Task SendDtmfAsync(string digit) => SendTextAsync(JsonSerializer.Serialize(new
    {
        @event = "dtmf",
        sequence_number = Text(_nextSeq++),
        stream_sid = StreamId,
        dtmf = new { digit, duration = "100" },
    }));

    /// <summary>Sends a mark event (it takes the next sequence number).</summary>
    public Task SendMarkAsync(string name) => SendTextAsync(JsonSerializer.Serialize(new
    {
        @event = "mark",
        sequence_number = Text(_nextSeq++),
        stream_sid = StreamId,
        mark = new { name },
    }));

    /// <summary>The outbound track's frames sent by <see cref="SendBothTracksAsync(int)"/>, by sequence number.</summary>
    public IReadOnlyDictionary<long, byte[]> SentOutboundFrames => _sentOutbound;

    /// <summary>
    /// Sends <paramref name="frames"/> frames of each track as Exotel's track selection <c>both</c> does (CONTRACT §5):
    /// per frame an inbound message (the caller: a 440 Hz tone) and an outbound one (the agent: 660 Hz), each with
    /// <c>track</c> and its own <c>chunk</c>, <c>sequence_number</c> counting both. The inbound frames are
    /// <see cref="CallSimulator.SentFrames"/>, the outbound <see cref="SentOutboundFrames"/>; check them with
    /// <see cref="LandedStream.AssertTracksMatch"/>.
    /// </summary>
    public async Task SendBothTracksAsync(int frames)
    {
        var caller = CallAudio.Tone(frames, sampleRate: Options.SampleRate, startFrame: SentFrames.Count);
        var agent = CallAudio.Tone(frames, hertz: 660, sampleRate: Options.SampleRate, startFrame: _sentOutbound.Count);
        BeginPacing();
        for (var i = 0; i < frames; i++)
        {
            await PaceAsync();
            var inboundSeq = _nextSeq++;
            await SendTrackFrameAsync(inboundSeq, "inbound", ++_inboundChunk, caller[i]);
            RecordSent(inboundSeq, caller[i]);
            var outboundSeq = _nextSeq++;
            await SendTrackFrameAsync(outboundSeq, "outbound", ++_outboundChunk, agent[i]);
            _sentOutbound[outboundSeq] = agent[i];
        }
    }

    /// <summary>Sends media frame <paramref name="seq"/> again, same chunk and bytes: a duplicate the cluster must drop.</summary>
    public async Task ResendAsync(long seq)
    {
        if (!TryGetSent(seq, out var audio))
        {
            throw new ArgumentException($"no media frame with sequence {seq} was sent", nameof(seq));
        }

        await SendMediaFrameAsync(seq, _chunkOf[seq], audio);
        Resent++;
    }

    /// <summary>Leaves out the next <paramref name="frames"/> media frames (sequence numbers and chunks): a gap.</summary>
    public Task SkipAsync(int frames = 1)
    {
        for (var i = 0; i < frames; i++)
        {
            SkippedList.Add(_nextSeq++);
            _nextChunk++;
        }

        return Task.CompletedTask;
    }

    private protected override async Task<long> SendMediaAsync(byte[] audio)
    {
        var seq = _nextSeq++;
        var chunk = _nextChunk++;
        _chunkOf[seq] = chunk;
        await SendMediaFrameAsync(seq, chunk, audio);
        return seq;
    }

    private protected override Task SendStopAsync() => SendTextAsync(JsonSerializer.Serialize(new
    {
        @event = "stop",
        sequence_number = Text(_nextSeq++),
        stream_sid = StreamId,
        stop = new { call_sid = CallSid, account_sid = "qa-account", reason = "callended" },
    }));

    private Task SendTrackFrameAsync(long seq, string track, long chunk, byte[] audio) => SendTextAsync(JsonSerializer.Serialize(new
    {
        @event = "media",
        sequence_number = Text(seq),
        stream_sid = StreamId,
        media = new { track, chunk = Text(chunk), timestamp = Text(chunk * 100), payload = Convert.ToBase64String(audio) },
    }));

    private Task SendMediaFrameAsync(long seq, long chunk, byte[] audio) => SendTextAsync(JsonSerializer.Serialize(new
    {
        @event = "media",
        sequence_number = Text(seq),
        stream_sid = StreamId,
        media = new { chunk = Text(chunk), timestamp = Text(chunk * 100), payload = Convert.ToBase64String(audio) },
    }));

    private static Dictionary<string, string> Headers(string? user, string? password)
    {
        var headers = new Dictionary<string, string>();
        if (user is not null)
        {
            headers["Authorization"] = ExotelClient.BasicHeader(user, password ?? string.Empty);
        }

        return headers;
    }

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);
}
