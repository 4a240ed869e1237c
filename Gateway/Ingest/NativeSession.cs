using System.Collections.Immutable;
using System.Net;
using System.Net.WebSockets;
using Ingest.Gateway.Protocol;
using Ingest.Grains.Interfaces;

namespace Ingest.Gateway.Ingest;

/// <summary>
/// The native protocol (CONTRACT §6): a JSON start, binary frames numbered by position (1, 2, ...), a JSON stop, and
/// then the server closes normally.
/// </summary>
public sealed partial class NativeSession(
    WebSocket socket,
    IPAddress remote,
    SessionContext context,
    ILogger<NativeSession> logger) : IngestSession(socket, remote, context, logger)
{
    private long _position;

    protected override string ProtocolName => "native";

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
                if (Forwarder is null)
                {
                    Malformed("binary frame", "arrived before start");
                    End("protocol_error", WebSocketCloseStatus.PolicyViolation, "send the start message before audio");
                    return;
                }

                // Its position is its sequence number whatever happens to it, so a dropped frame shows up as a gap.
                var seq = ++_position;
                FrameReceived();
                if (message.Data.Length % 2 != 0)
                {
                    // Not whole 16-bit samples: published byte for byte all the same, and counted (CONTRACT §5).
                    Context.Metrics.OddLength.Add(1);
                }

                // A frame that only joins an open overflow gap is not copied: a flat-out sender into a cluster that takes
                // nothing would otherwise allocate (and collect) every frame it sends.
                if (!Forwarder.TryOverflow(seq, message.Data.Length))
                {
                    await Forwarder.EnqueueAsync(CallItem.Media(seq, null, ElapsedMs, message.Data.ToArray()));
                }
                continue;
            }

            if (!NativeProtocol.TryParseControl(message.Data.Span, out var kind, out var start, out var error))
            {
                if (Forwarder is null)
                {
                    Malformed("start", $"{error.Kind}: {error.Detail}");
                    End("protocol_error", WebSocketCloseStatus.InvalidPayloadData, Truncate($"invalid start: {error.Detail}"));
                    return;
                }

                Malformed("control message", $"{error.Kind}: {error.Detail}");
                continue;
            }

            switch (kind)
            {
                case NativeControlKind.Start when Forwarder is null:
                    LogStartReceived(start!.StreamId, start.SampleRate);
                    var call = new CallStart(
                        CallProtocol.Native,
                        start.StreamId,
                        CallSid: null,
                        AccountSid: null,
                        From: null,
                        To: null,
                        start.Encoding,
                        start.SampleRate,
                        StartSequence: 0,
                        Parameters: start.Metadata.ToImmutableDictionary(),
                        ConnectionId: ConnectionId);
                    if (!BeginCall(call))
                    {
                        return;
                    }

                    break;
                case NativeControlKind.Start:
                    Malformed("start", "a second start on the same connection");
                    break;
                case NativeControlKind.Stop when Forwarder is not null:
                    await EndCallAsync("stopped", null);
                    await CloseQuietlyAsync(WebSocketCloseStatus.NormalClosure, "stop received");
                    return;
                case NativeControlKind.Stop:
                    await CloseQuietlyAsync(WebSocketCloseStatus.NormalClosure, "stop received");
                    return;
                default:
                    Context.Metrics.UnknownEvents.Add(1);
                    break;
            }
        }
    }

    private static string Truncate(string text) => text.Length <= 120 ? text : text[..120];

    [LoggerMessage(EventId = 6151, Level = LogLevel.Information, Message = "Native start received: {{ stream_id: {StreamId}, sample_rate: {SampleRate} }}")]
    private partial void LogStartReceived(string streamId, int sampleRate);
}
