using System.Buffers;
using System.Globalization;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using Ingest.Gateway.Protocol;
using Ingest.Grains.Interfaces;
using StackExchange.Redis;

namespace Ingest.Relay;

/// <summary>
/// <c>GET /v1/ingest</c> for Exotel callers: Basic auth, the gateway's parser, then XADD straight to the same keys
/// (<c>ingest:audio:{stream_sid}</c> with seq/ts/audio, <c>ingest:calls</c> start/stop). Writes of one connection are
/// pipelined (issued without waiting, in order, on the shared multiplexer) with a bounded number outstanding.
/// </summary>
public sealed partial class RelayEndpoint(RelaySettings settings, IConnectionMultiplexer redis, ILogger<RelayEndpoint> logger)
{
    private const int MaxOutstandingWrites = 128;
    private const int MaxMessageBytes = 256 * 1024;
    private const string CallsStream = StreamKeys.Calls;

    private readonly IDatabase _db = redis.GetDatabase();
    private readonly byte[] _expectedAuthorization = Encoding.ASCII.GetBytes(settings.ExpectedAuthorization);

    public async Task HandleAsync(HttpContext http)
    {
        if (!http.WebSockets.IsWebSocketRequest)
        {
            http.Response.StatusCode = StatusCodes.Status400BadRequest;
            return;
        }

        var presented = Encoding.ASCII.GetBytes(http.Request.Headers.Authorization.ToString());
        if (!CryptographicOperations.FixedTimeEquals(presented, _expectedAuthorization))
        {
            http.Response.Headers.WWWAuthenticate = "Basic realm=\"ingest\"";
            http.Response.StatusCode = StatusCodes.Status401Unauthorized;
            return;
        }

        using var socket = await http.WebSockets.AcceptWebSocketAsync();
        try
        {
            await RelayAsync(socket);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
            // The peer went away; nothing more to relay.
        }
    }

    private async Task RelayAsync(WebSocket socket)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(8 * 1024);
        var outstanding = new Queue<Task>(MaxOutstandingWrites);
        string? streamSid = null;
        RedisKey audioKey = default;
        long lastSeq = 0;
        try
        {
            while (true)
            {
                var count = 0;
                ValueWebSocketReceiveResult result;
                do
                {
                    if (count == buffer.Length)
                    {
                        if (buffer.Length >= MaxMessageBytes)
                        {
                            await socket.CloseOutputAsync(WebSocketCloseStatus.MessageTooBig, "too large", CancellationToken.None);
                            return;
                        }

                        var bigger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                        buffer.AsSpan(0, count).CopyTo(bigger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = bigger;
                    }

                    result = await socket.ReceiveAsync(buffer.AsMemory(count), CancellationToken.None);
                    count += result.Count;
                }
                while (!result.EndOfMessage && result.MessageType != WebSocketMessageType.Close);

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await DrainAsync(outstanding);
                    if (streamSid is not null)
                    {
                        await _db.StreamAddAsync(CallsStream, StopFields(streamSid, "disconnected"));
                    }

                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
                    return;
                }

                if (!ExotelMessageParser.TryParse(buffer.AsSpan(0, count), out var message, out var error))
                {
                    LogMalformed(error.Detail);
                    continue;
                }

                switch (message.Kind)
                {
                    case ExotelEventKind.Start when streamSid is null && message.StreamSid is { } sid:
                        streamSid = sid;
                        audioKey = StreamKeys.Audio(sid);
                        lastSeq = message.SequenceNumber ?? 1;
                        await _db.StreamAddAsync(CallsStream,
                        [
                            new("event", "start"),
                            new("stream_id", sid),
                            new("call_sid", message.CallSid ?? string.Empty),
                            new("encoding", "pcm16le"),
                            new("sample_rate", message.SampleRate ?? 8000),
                        ]);
                        break;
                    case ExotelEventKind.Media when streamSid is not null && message.Payload is { } payload:
                        var seq = message.SequenceNumber ?? lastSeq + 1;
                        lastSeq = seq;
                        if (outstanding.Count >= MaxOutstandingWrites)
                        {
                            await outstanding.Dequeue();
                        }

                        outstanding.Enqueue(_db.StreamAddAsync(
                            audioKey,
                            [new("seq", seq), new("ts", message.Timestamp ?? 0), new("audio", payload)],
                            maxLength: settings.AudioStreamMaxLength,
                            useApproximateMaxLength: true));
                        break;
                    case ExotelEventKind.Stop when streamSid is not null:
                        await DrainAsync(outstanding);
                        await _db.StreamAddAsync(CallsStream, StopFields(streamSid, message.StopReason ?? "stopped"));
                        streamSid = null;
                        await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "stop received", CancellationToken.None);
                        return;
                    default:
                        break;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task DrainAsync(Queue<Task> outstanding)
    {
        while (outstanding.TryDequeue(out var write))
        {
            await write;
        }
    }

    private static NameValueEntry[] StopFields(string streamSid, string reason) =>
    [
        new("event", "stop"),
        new("stream_id", streamSid),
        new("reason", reason),
        new("at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)),
    ];

    [LoggerMessage(EventId = 9101, Level = LogLevel.Warning, Message = "Dropped a malformed message: {Detail}")]
    private partial void LogMalformed(string detail);
}
