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

/// <summary>
/// Reads whole WebSocket messages, refusing any larger than the limit (MAX_MESSAGE_BYTES). A message that fits the
/// small buffer every connection holds is read there; a larger one into a pooled buffer that goes back to the pool as
/// soon as the message has been used (at the next read), so a connection that once sent a large message holds only
/// the small buffer afterwards, however long it stays.
/// </summary>
public sealed class WebSocketMessageReader(WebSocket socket, int maxBytes) : IDisposable
{
    // Sized for one Exotel media message (100 ms of 8 kHz PCM is ~2.2 KB of JSON). Every live call holds this buffer
    // while it waits, so its size is paid per idle connection.
    private const int SmallBufferBytes = 4 * 1024;

    private byte[] _small = ArrayPool<byte>.Shared.Rent(Math.Min(maxBytes, SmallBufferBytes));

    // The pooled buffer of the last large message, returned at the next read.
    private byte[]? _large;

    // How large the last large message was: the next one is rented at that size at once instead of doubling up to it.
    private int _lastLarge;

    /// <summary>The returned data is valid until the next call.</summary>
    public async ValueTask<SocketMessage> ReadAsync(CancellationToken cancellationToken)
    {
        GiveBackLarge();
        var buffer = _small;
        var count = 0;
        while (true)
        {
            if (count == buffer.Length)
            {
                if (buffer.Length > maxBytes)
                {
                    return new SocketMessage(ReadStatus.TooLarge, default, default);
                }

                // One byte over the limit is enough to tell a message that is too large.
                var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(Math.Max(buffer.Length * 2, _lastLarge), maxBytes + 1));
                buffer.AsSpan(0, count).CopyTo(bigger);
                GiveBackLarge();
                buffer = _large = bigger;
            }

            var result = await socket.ReceiveAsync(buffer.AsMemory(count), cancellationToken);
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
                if (buffer != _small)
                {
                    _lastLarge = count + 1;
                }

                return new SocketMessage(ReadStatus.Message, result.MessageType, buffer.AsMemory(0, count));
            }
        }
    }

    /// <summary>Bytes this connection holds for reading now: the small buffer, and a large one until the next read.</summary>
    internal int HeldBytes => _small.Length + (_large?.Length ?? 0);

    public void Dispose()
    {
        GiveBackLarge();
        ArrayPool<byte>.Shared.Return(_small);
        _small = [];
    }

    private void GiveBackLarge()
    {
        if (_large is { } large)
        {
            _large = null;
            ArrayPool<byte>.Shared.Return(large);
        }
    }
}
