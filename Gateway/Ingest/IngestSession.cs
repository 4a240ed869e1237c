using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using Ingest.Grains.Interfaces;
using Ingest.ServiceDefaults;

namespace Ingest.Gateway.Ingest;

/// <summary>
/// What a session needs from the host, bundled so the protocol classes stay small. The warm-up's sessions
/// (<see cref="GatewayWarmup"/>) get one of their own: their own registry, no log lines, unexported instruments, and
/// grain keys in the warm-up's namespace (<see cref="WarmupCalls"/>).
/// </summary>
public sealed record SessionContext(
    IClusterClient Cluster,
    SessionRegistry Registry,
    GatewaySettings Settings,
    ILoggerFactory LoggerFactory)
{
    public bool Warmup { get; init; }

    public GatewayMetrics Metrics => Warmup ? GatewayMetrics.Warmup : GatewayMetrics.Live;

    /// <summary>The grain that holds a stream: its id, or for a warm-up call the id in the warm-up's namespace.</summary>
    public string GrainKey(string streamId) => Warmup ? WarmupCalls.Prefix + streamId : streamId;
}

/// <summary>
/// One accepted WebSocket carrying one call. The base class owns the socket's life: reading whole messages, the idle,
/// call-length and shutdown limits (each ends the call with its own stop reason and close code), the hand-over to a
/// <see cref="CallForwarder"/>, and ending the call however the socket goes away.
/// </summary>
public abstract partial class IngestSession : IDisposable
{
    private static readonly TimeSpan CloseHandshakeTimeout = TimeSpan.FromSeconds(5);

    private readonly Timer _startTimer;
    private readonly Timer _idleTimer;
    private readonly Timer _lifetimeTimer;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly ILogger _logger;
    private string? _endReason;
    private string? _closeReason;
    private bool _callBegun;
    private long _framesReceived;
    private Activity? _callActivity;
    private string? _endedAs;

    /// <summary>The stop reasons a label may carry; anything else a peer sends is "other" (bounded cardinality).</summary>
    private static readonly HashSet<string> KnownReasons =
    [
        "stopped", "callended", "disconnected", "idle_timeout", "gateway_shutdown", "max_duration", "refused",
        "start_timeout", "protocol_error", "message_too_large", "internal_error",
    ];
    private Lazy<Task>? _closing;
    private int _malformed;

    protected IngestSession(WebSocket socket, IPAddress remote, SessionContext context, ILogger logger)
    {
        Socket = socket;
        Remote = remote;
        Context = context;
        _logger = logger;
        ConnectionId = Guid.NewGuid().ToString("N");
        Reader = new WebSocketMessageReader(socket, context.Settings.Limits.MaxMessageBytes);
        _startTimer = new Timer(static s => ((IngestSession)s!).StartTimedOut(), this, Timeout.Infinite, Timeout.Infinite);
        _idleTimer = new Timer(static s => ((IngestSession)s!).End("idle_timeout", WebSocketCloseStatus.PolicyViolation, "idle timeout"), this, Timeout.Infinite, Timeout.Infinite);
        _lifetimeTimer = new Timer(static s => ((IngestSession)s!).End("max_duration", WebSocketCloseStatus.PolicyViolation, "maximum call duration reached"), this, Timeout.Infinite, Timeout.Infinite);
    }

    protected WebSocket Socket { get; }

    protected IPAddress Remote { get; }

    protected SessionContext Context { get; }

    protected string ConnectionId { get; }

    protected WebSocketMessageReader Reader { get; }

    protected CallForwarder? Forwarder { get; private set; }

    protected string? StreamId { get; private set; }

    /// <summary>Milliseconds since the call's start message; the <c>ts</c> of frames whose sender gives none.</summary>
    protected long ElapsedMs => _clock.ElapsedMilliseconds;

    protected bool CallEnded { get; private set; }

    /// <summary>The protocol's label on metrics and spans: exotel or native.</summary>
    protected abstract string ProtocolName { get; }

    /// <summary>Counts one audio frame received on this socket (metric by protocol, and the call span's frames tag).</summary>
    protected void FrameReceived()
    {
        _framesReceived++;
        Context.Metrics.FramesReceived.Add(1, new KeyValuePair<string, object?>("protocol", ProtocolName));
    }

    public async Task RunAsync()
    {
        // One trace per call, rooted here at the accepted upgrade: not a child of the HTTP request's activity (which is
        // not exported). It is the current activity for the rest of the session, so its log lines carry its trace id.
        Activity.Current = null;
        _callActivity = Context.Warmup ? null : IngestTelemetry.Source.StartActivity("ingest.call", ActivityKind.Server);
        _callActivity?.SetTag("protocol", ProtocolName);
        _callActivity?.SetTag("client.address", Remote.ToString());
        // Until the call starts only the start timeout runs: messages before start (connected, junk) do not extend it.
        _startTimer.Change(Context.Settings.Limits.StartTimeout, Timeout.InfiniteTimeSpan);
        _lifetimeTimer.Change(Context.Settings.Limits.MaxCallDuration, Timeout.InfiniteTimeSpan);
        try
        {
            await ReceiveLoopAsync();
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The peer vanished (TCP reset, abort): the call still ends below, with whatever reason applies.
        }
        catch (Exception ex)
        {
            LogSessionFailed(StreamId ?? "(none)", ex);
            End("internal_error", WebSocketCloseStatus.InternalServerError, "internal error");
        }
        finally
        {
            await EndCallAsync(_endReason ?? "disconnected", seq: null);
            if (Volatile.Read(ref _closing) is { } closing)
            {
                // The socket is disposed when this returns: first let the close frame with its code and reason go
                // out (the Lazy runs it once, whichever thread ended the session first), then read on below,
                // discarding, until the peer answers it, so the peer learns why rather than seeing a reset.
                await closing.Value;
            }
            else
            {
                await CloseQuietlyAsync();
            }

            await AwaitPeerCloseAsync();
            if (_callActivity is { } activity)
            {
                activity.SetTag("end_reason", _endedAs ?? _closeReason ?? "disconnected");
                activity.SetTag("frames", _framesReceived);
                activity.SetTag("frames_published", Forwarder?.Published ?? 0);
                activity.Dispose();
            }
        }
    }

    /// <summary>Called by the drain when the grace period is over.</summary>
    public void EndForShutdown() => End("gateway_shutdown", WebSocketCloseStatus.EndpointUnavailable, "gateway shutting down");

    protected abstract Task ReceiveLoopAsync();

    /// <summary>Reads the next message and re-arms the idle timer.</summary>
    protected async ValueTask<SocketMessage> ReadAsync()
    {
        var message = await Reader.ReadAsync(CancellationToken.None);
        if (message.Status == ReadStatus.Message && Forwarder is not null)
        {
            _idleTimer.Change(Context.Settings.Limits.IdleTimeout, Timeout.InfiniteTimeSpan);
        }
        else if (message.Status == ReadStatus.TooLarge)
        {
            Context.Metrics.Malformed.Add(1);
            LogTooLarge(StreamId ?? "(none)", Context.Settings.Limits.MaxMessageBytes);
            End("message_too_large", WebSocketCloseStatus.MessageTooBig, $"message larger than {Context.Settings.Limits.MaxMessageBytes} bytes");
        }

        return message;
    }

    /// <summary>
    /// Takes the call on: from here its frames are kept whatever the cluster does, and the forwarder presents it to its
    /// grain (retrying while Redis or the silos are away). False (and the socket is being closed) when the stream id is
    /// live on another connection of this gateway; the grain refuses one live on another gateway the same way, later.
    /// </summary>
    protected bool BeginCall(CallStart start)
    {
        _callBegun = true;
        _callActivity?.SetTag("stream_id", start.StreamId);
        if (start.CallSid is { Length: > 0 } callSid)
        {
            _callActivity?.SetTag("call_sid", callSid);
        }

        if (!Context.Registry.TryRegisterStream(start.StreamId, this))
        {
            LogStreamHijack(start.StreamId, Remote);
            End("refused", WebSocketCloseStatus.PolicyViolation, "stream id is live on another connection", endCall: false);
            return false;
        }

        StreamId = start.StreamId;
        _clock.Restart();
        var logger = Context.LoggerFactory.CreateLogger<CallForwarder>();
        var grainKey = Context.GrainKey(start.StreamId);
        var forwarder = new CallForwarder(
            Context.Cluster.GetGrain<ICallStreamGrain>(grainKey), start with { StreamId = grainKey }, Context.Settings.Limits, logger, _callActivity?.Context, Context.Metrics);
        Forwarder = forwarder;
        _startTimer.Change(Timeout.Infinite, Timeout.Infinite);
        _idleTimer.Change(Context.Settings.Limits.IdleTimeout, Timeout.InfiniteTimeSpan);
        _ = forwarder.Completion.ContinueWith(
            static (done, state) =>
            {
                var (session, forwarder) = ((IngestSession, CallForwarder))state!;
                if (session.CallEnded || done.Result is not (CallAckStatus.Ended or CallAckStatus.Conflict))
                {
                    return;
                }

                if (!forwarder.WasAccepted)
                {
                    session.LogStreamHijack(session.StreamId ?? "(none)", session.Remote);
                }

                var why = forwarder.WasAccepted ? "the call was ended by the cluster"
                    : done.Result == CallAckStatus.Conflict ? "stream id is live on another connection"
                    : "stream already ended";
                session.End("refused", WebSocketCloseStatus.PolicyViolation, why, endCall: false);
            },
            (this, forwarder),
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnRanToCompletion,
            TaskScheduler.Default);
        forwarder.Begin();
        return true;
    }

    /// <summary>
    /// Ends the call once: everything received goes to the grain first, then the stop entry. The socket waits a short
    /// while for that; what is still unconfirmed then goes on being delivered after the socket is closed (bounded).
    /// </summary>
    protected async Task EndCallAsync(string reason, long? seq)
    {
        if (CallEnded)
        {
            return;
        }

        CallEnded = true;
        if (_callBegun)
        {
            // A refusal after the start (stream id live elsewhere, stream already ended) ends the call as "refused".
            var ended = Volatile.Read(ref _closeReason) == "refused" && Volatile.Read(ref _endReason) is null ? "refused" : reason.ToLowerInvariant();
            ended = KnownReasons.Contains(ended) ? ended : "other";
            _endedAs = ended;
            Context.Metrics.CallsEnded.Add(1, new KeyValuePair<string, object?>("reason", ended), new KeyValuePair<string, object?>("protocol", ProtocolName));
        }

        _startTimer.Change(Timeout.Infinite, Timeout.Infinite);
        _idleTimer.Change(Timeout.Infinite, Timeout.Infinite);
        if (Forwarder is { } forwarder && StreamId is { } streamId)
        {
            forwarder.Complete(reason, seq, ConnectionId);
            var status = await forwarder.WaitAsync(Context.Settings.Limits.CloseWait);
            Context.Registry.UnregisterStream(streamId, this);
            if (status is null)
            {
                LogDeliveryContinues(streamId, forwarder.HeldItems, Context.Settings.Limits.DeliveryTimeout.TotalSeconds);
                Context.Registry.DeliverInBackground(forwarder, Context.Settings.Limits.DeliveryTimeout);
            }
            else
            {
                await forwarder.DisposeAsync();
            }

            LogCallEnded(streamId, reason);
        }
    }

    /// <summary>Ends the session from any thread: records the stop reason, sends a close frame, and aborts if the peer does not answer.</summary>
    protected void End(string reason, WebSocketCloseStatus status, string description, bool endCall = true)
    {
        if (endCall)
        {
            Interlocked.CompareExchange(ref _endReason, reason, null);
        }

        Interlocked.CompareExchange(ref _closeReason, reason, null);

        var closing = new Lazy<Task>(() => CloseOutputAsync(status, description));
        if (Interlocked.CompareExchange(ref _closing, closing, null) is null)
        {
            _ = closing.Value;
        }
    }

    protected void Malformed(string what, string detail)
    {
        Context.Metrics.Malformed.Add(1);
        var n = Interlocked.Increment(ref _malformed);

        // A hostile peer must not be able to flood the log: the first ten, then one in a hundred.
        if (n <= 10 || n % 100 == 0)
        {
            LogMalformed(StreamId ?? "(none)", what, detail, n);
        }
    }

    /// <summary>Sends the close frame; if the peer has not answered within the handshake timeout, aborts.</summary>
    private async Task CloseOutputAsync(WebSocketCloseStatus status, string description)
    {
        try
        {
            if (Socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                using var timeout = new CancellationTokenSource(CloseHandshakeTimeout);
                await Socket.CloseOutputAsync(status, description, timeout.Token);
            }

            _ = AbortUnlessClosedAsync();
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            Socket.Abort();
        }
    }

    /// <summary>A receive loop blocked on a peer that never answers the close is released by the abort.</summary>
    private async Task AbortUnlessClosedAsync()
    {
        await Task.Delay(CloseHandshakeTimeout);
        try
        {
            if (Socket.State != WebSocketState.Closed)
            {
                Socket.Abort();
            }
        }
        catch (ObjectDisposedException)
        {
            // The session is over and the socket already gone.
        }
    }

    /// <summary>After our close frame: discard what the peer still sends until its close arrives (bounded).</summary>
    private async Task AwaitPeerCloseAsync()
    {
        var buffer = new byte[1024];
        try
        {
            using var timeout = new CancellationTokenSource(CloseHandshakeTimeout);
            while (Socket.State == WebSocketState.CloseSent)
            {
                var result = await Socket.ReceiveAsync(buffer, timeout.Token);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            Socket.Abort();
        }
    }

    /// <summary>Closes normally after a stop, or completes the close the peer started.</summary>
    protected async Task CloseQuietlyAsync(WebSocketCloseStatus status = WebSocketCloseStatus.NormalClosure, string description = "call ended")
    {
        try
        {
            if (Socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                using var timeout = new CancellationTokenSource(CloseHandshakeTimeout);
                await Socket.CloseOutputAsync(status, description, timeout.Token);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            Socket.Abort();
        }
    }

    private void StartTimedOut()
    {
        if (Forwarder is not null)
        {
            return;
        }

        var seconds = Context.Settings.Limits.StartTimeout.TotalSeconds;
        LogStartTimeout(Remote, seconds);
        End("start_timeout", WebSocketCloseStatus.PolicyViolation, $"no start message within {seconds:0.#} s");
    }

    public void Dispose()
    {
        _startTimer.Dispose();
        _idleTimer.Dispose();
        _lifetimeTimer.Dispose();
        _callActivity?.Dispose();
        Reader.Dispose();
        GC.SuppressFinalize(this);
    }

    [LoggerMessage(EventId = 6001, Level = LogLevel.Warning, Message = "Stream {StreamId}: dropped {What}: {Detail} (malformed #{Count} on this connection)")]
    private partial void LogMalformed(string streamId, string what, string detail, int count);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Warning, Message = "Connection from {Remote} sent no start within {Seconds} s; closing with 1008")]
    private partial void LogStartTimeout(IPAddress remote, double seconds);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Warning, Message = "Stream {StreamId}: message larger than {Limit} bytes; closing with 1009")]
    private partial void LogTooLarge(string streamId, int limit);

    [LoggerMessage(EventId = 6004, Level = LogLevel.Warning, Message = "Refused stream {StreamId} from {Remote}: the stream id is live on another connection")]
    private partial void LogStreamHijack(string streamId, IPAddress remote);

    [LoggerMessage(EventId = 6005, Level = LogLevel.Warning, Message = "Stream {StreamId}: {Held} item(s) not yet confirmed when the call ended; closing the socket and delivering them for up to {Seconds} s more")]
    private partial void LogDeliveryContinues(string streamId, int held, double seconds);

    [LoggerMessage(EventId = 6006, Level = LogLevel.Information, Message = "Call ended: {{ stream_sid: {StreamId}, reason: {Reason} }}")]
    private partial void LogCallEnded(string streamId, string reason);

    [LoggerMessage(EventId = 6007, Level = LogLevel.Error, Message = "Session of stream {StreamId} failed")]
    private partial void LogSessionFailed(string streamId, Exception exception);
}
