using System.Collections.Immutable;
using System.Net;
using System.Net.WebSockets;
using Ingest.Gateway.Protocol;
using Ingest.Grains.Interfaces;

namespace Ingest.Gateway.Ingest;

/// <summary>
/// Exotel's protocol (CONTRACT §5): JSON text frames <c>connected</c>, <c>start</c>, then <c>media</c>/<c>dtmf</c>/<c>mark</c>,
/// then <c>stop</c>. Parsing is lenient; a message that cannot be used is dropped, counted and logged, and the call goes on.
/// </summary>
public sealed partial class ExotelSession(
    WebSocket socket,
    IPAddress remote,
    SessionContext context,
    int? urlSampleRate,
    ILogger<ExotelSession> logger) : IngestSession(socket, remote, context, logger)
{
    protected override string ProtocolName => "exotel";

    private long _lastSeq;

    // What the start declared the payloads to be: G.711 payloads are expanded to PCM16LE before they are forwarded.
    private SourceEncoding _encoding;

    private bool _unknownTrackLogged;

    protected override async Task ReceiveLoopAsync()
    {
        while (true)
        {
            var message = await ReadAsync();
            if (message.Status != ReadStatus.Message)
            {
                return;
            }

            if (message.Type == WebSocketMessageType.Binary)
            {
                Malformed("binary frame", "Exotel sends JSON text frames only");
                End("protocol_error", WebSocketCloseStatus.InvalidMessageType, "binary frames are not part of the Exotel protocol");
                return;
            }

            if (!ExotelMessageParser.TryParse(message.Data.Span, out var parsed, out var error, out var kind))
            {
                Malformed("message", $"{error.Kind}: {error.Detail}");
                if (kind == ExotelEventKind.Start && Forwarder is null)
                {
                    // Only a start with no usable stream id or an unsupported rate gets here (its optional fields are
                    // read leniently). Dropping it would leave a call that can never begin; the sender hears why, at once.
                    End("protocol_error", WebSocketCloseStatus.InvalidPayloadData, Truncate($"invalid start: {error.Detail}"));
                    return;
                }

                continue;
            }

            if (parsed.UnknownFieldCount > 0)
            {
                Context.Metrics.UnknownEvents.Add(parsed.UnknownFieldCount);
            }

            if (!await HandleAsync(parsed))
            {
                return;
            }
        }
    }

    /// <summary>False when the session is over.</summary>
    private async Task<bool> HandleAsync(ExotelMessage message)
    {
        switch (message.Kind)
        {
            case ExotelEventKind.Connected:
                return true;
            case ExotelEventKind.Start:
                return StartCall(message);
            case ExotelEventKind.Media:
            case ExotelEventKind.Dtmf:
            case ExotelEventKind.Mark:
                if (Forwarder is null)
                {
                    Malformed(message.EventName, "arrived before start");
                    return true;
                }

                if (message.StreamSid is { } sid && sid != StreamId)
                {
                    Malformed(message.EventName, "stream_sid differs from this call's");
                    return true;
                }

                await ForwardAsync(message);
                return true;
            case ExotelEventKind.Stop:
                if (Forwarder is null)
                {
                    return false;
                }

                if (message.StreamSid is { } stopSid && stopSid != StreamId)
                {
                    Malformed("stop", "stream_sid differs from this call's");
                    return true;
                }

                await EndCallAsync(message.StopReason is { Length: > 0 } reason ? reason : "stopped", message.SequenceNumber);
                await CloseQuietlyAsync(WebSocketCloseStatus.NormalClosure, "stop received");
                return false;
            default:
                Context.Metrics.UnknownEvents.Add(1);
                LogUnknownEvent(StreamId ?? "(none)", message.EventName);
                return true;
        }
    }

    private bool StartCall(ExotelMessage message)
    {
        if (Forwarder is not null)
        {
            Malformed("start", "a second start on the same connection");
            return true;
        }

        if (message.StreamSid is not { } streamSid)
        {
            Malformed("start", "no stream_sid");
            End("protocol_error", WebSocketCloseStatus.InvalidPayloadData, "invalid start: no stream_sid");
            return false;
        }

        LogStartReceived(streamSid, message.CallSid ?? string.Empty);
        _lastSeq = message.SequenceNumber ?? 0;
        _encoding = message.SourceEncoding;
        var start = new CallStart(
            CallProtocol.Exotel,
            streamSid,
            message.CallSid,
            message.AccountSid,
            message.From,
            message.To,
            Encoding: "pcm16le",
            SampleRate: urlSampleRate ?? message.SampleRate ?? 8000,
            StartSequence: message.SequenceNumber,
            Parameters: message.CustomParameters?.ToImmutableDictionary() ?? ImmutableDictionary<string, string>.Empty,
            ConnectionId: ConnectionId,
            SourceEncoding: _encoding == SourceEncoding.Pcm16 ? null : Truncate(message.Encoding ?? string.Empty));
        return BeginCall(start);
    }

    private ValueTask ForwardAsync(ExotelMessage message)
    {
        if (message.SequenceNumber is null && _lastSeq == long.MaxValue)
        {
            Malformed(message.EventName, "no sequence_number and the previous one was the largest possible");
            return ValueTask.CompletedTask;
        }

        var seq = message.SequenceNumber ?? _lastSeq + 1;

        // An absurd number (the grain drops it as malformed) must not drag along the numbers given to later messages
        // that carry none.
        if (seq - _lastSeq <= SequenceRules.MaxJump)
        {
            _lastSeq = Math.Max(_lastSeq, seq);
        }

        var track = TrackOf(message);
        switch (message.Kind)
        {
            case ExotelEventKind.Media when message.Payload is null:
                // Received but unusable: it keeps its number, and the grain records it as a malformed gap.
                FrameReceived();
                Malformed("media", message.PayloadError ?? "payload unusable");
                return Forwarder!.EnqueueAsync(CallItem.MalformedMedia(seq, message.Chunk, message.Timestamp ?? ElapsedMs, track));
            case ExotelEventKind.Media:
                FrameReceived();
                if (_encoding == SourceEncoding.Pcm16 && message.Payload.Length % 2 != 0)
                {
                    Context.Metrics.OddLength.Add(1);
                }

                // CONTRACT §5, §7: consumers read one format; μ-law and A-law are expanded to PCM16LE (G.711).
                var audio = _encoding == SourceEncoding.Pcm16 ? message.Payload : G711.ToPcm16(message.Payload, _encoding);
                return Forwarder!.EnqueueAsync(CallItem.Media(seq, message.Chunk, message.Timestamp ?? ElapsedMs, audio, track));
            case ExotelEventKind.Dtmf:
                return Forwarder!.EnqueueAsync(CallItem.Dtmf(seq, ElapsedMs, message.Digit, message.DurationMs));
            default:
                return Forwarder!.EnqueueAsync(CallItem.Mark(seq, ElapsedMs, message.MarkName));
        }
    }

    /// <summary>
    /// The track of a media message (CONTRACT §5): none (the classic call), inbound, or outbound; a value that names
    /// neither is counted and taken as inbound.
    /// </summary>
    private CallTrack TrackOf(ExotelMessage message)
    {
        if (message.TrackUnknown)
        {
            Context.Metrics.UnknownTracks.Add(1);
            if (!_unknownTrackLogged)
            {
                _unknownTrackLogged = true;
                LogUnknownTrack(StreamId ?? "(none)", Truncate(message.TrackName ?? string.Empty));
            }
        }

        return message.Track switch
        {
            AudioTrack.Outbound => CallTrack.Outbound,
            AudioTrack.Inbound => CallTrack.Inbound,
            _ => CallTrack.Untracked,
        };
    }

    private static string Truncate(string text) => text.Length <= 120 ? text : text[..120];

    [LoggerMessage(EventId = 6101, Level = LogLevel.Information, Message = "Start event received: {{ stream_sid: {StreamSid}, call_sid: {CallSid} }}")]
    private partial void LogStartReceived(string streamSid, string callSid);

    [LoggerMessage(EventId = 6102, Level = LogLevel.Warning, Message = "Stream {StreamId}: media track '{Track}' is neither inbound nor outbound; taken as the inbound track (counted in ingest.messages.unknown_track)")]
    private partial void LogUnknownTrack(string streamId, string track);

    [LoggerMessage(EventId = 6103, Level = LogLevel.Debug, Message = "Stream {StreamId}: ignored unknown event {EventName}")]
    private partial void LogUnknownEvent(string streamId, string eventName);
}
