using System.Buffers;
using System.Net.WebSockets;

namespace Ingest.Gateway.Ingest;

public enum ReadStatus
{
    Message,
    Closed,
    TooLarge,
}

public readonly record struct SocketMessage(ReadStatus Status, WebSocketMessageType Type, ReadOnlyMemory<byte> Data);

/// <summary>Reads whole WebSocket messages into one pooled buffer, refusing any larger than the limit.</summary>
public sealed class WebSocketMessageReader(WebSocket socket, int maxBytes) : IDisposable
{
    // Sized for one Exotel media message (100 ms of 8 kHz PCM is ~2.2 KB of JSON); it grows by doubling for larger
    // ones. Every live call holds this buffer while it waits, so its size is paid per idle connection.
    private const int InitialBufferBytes = 4 * 1024;

    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(Math.Min(maxBytes, InitialBufferBytes));

    /// <summary>The returned data is valid until the next call.</summary>
    public async ValueTask<SocketMessage> ReadAsync(CancellationToken cancellationToken)
    {
        var count = 0;
        while (true)
        {
            if (count == _buffer.Length)
            {
                if (_buffer.Length >= maxBytes)
                {
                    return new SocketMessage(ReadStatus.TooLarge, default, default);
                }

                var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(_buffer.Length * 2, maxBytes + 1));
                _buffer.AsSpan(0, count).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = bigger;
            }

            var result = await socket.ReceiveAsync(_buffer.AsMemory(count), cancellationToken);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return new SocketMessage(ReadStatus.Closed, result.MessageType, default);
            }

            count += result.Count;
            if (count > maxBytes)
            {
                return new SocketMessage(ReadStatus.TooLarge, result.MessageType, default);
            }

            if (result.EndOfMessage)
            {
                return new SocketMessage(ReadStatus.Message, result.MessageType, _buffer.AsMemory(0, count));
            }
        }
    }

    public void Dispose()
    {
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
    }
}
