using System.Net.WebSockets;
using Ingest.Gateway.Ingest;

namespace Ingest.Tests.Protocol;

/// <summary>The gateway's message reader: whole messages, one size limit, and no memory kept after a large message.</summary>
public sealed class WebSocketMessageReaderTests
{
    private const int Limit = 256 * 1024;

    [Fact]
    public async Task A_large_message_is_read_whole_and_its_buffer_given_back_at_the_next_read()
    {
        var large = new byte[250_000];
        Random.Shared.NextBytes(large);
        using var socket = new ScriptedSocket([large, "hi"u8.ToArray(), "ok"u8.ToArray()], chunk: 16 * 1024);
        using var reader = new WebSocketMessageReader(socket, Limit);
        var idle = reader.HeldBytes;

        var first = await reader.ReadAsync(CancellationToken.None);
        Assert.Equal(ReadStatus.Message, first.Status);
        Assert.Equal(large, first.Data.ToArray());
        Assert.True(reader.HeldBytes > Limit / 2, $"holds {reader.HeldBytes} bytes while the large message is in use");

        var second = await reader.ReadAsync(CancellationToken.None);
        Assert.Equal("hi"u8.ToArray(), second.Data.ToArray());
        Assert.Equal(idle, reader.HeldBytes);
        Assert.True(idle <= 4096, $"an idle connection holds {idle} bytes");

        Assert.Equal("ok"u8.ToArray(), (await reader.ReadAsync(CancellationToken.None)).Data.ToArray());
        Assert.Equal(ReadStatus.Closed, (await reader.ReadAsync(CancellationToken.None)).Status);
    }

    [Fact]
    public async Task A_message_of_exactly_the_limit_is_read_and_one_byte_more_is_too_large()
    {
        var exact = new byte[Limit];
        var over = new byte[Limit + 1];
        using var socket = new ScriptedSocket([exact, over], chunk: 64 * 1024);
        using var reader = new WebSocketMessageReader(socket, Limit);

        var first = await reader.ReadAsync(CancellationToken.None);
        Assert.Equal(ReadStatus.Message, first.Status);
        Assert.Equal(Limit, first.Data.Length);
        Assert.Equal(ReadStatus.TooLarge, (await reader.ReadAsync(CancellationToken.None)).Status);
    }

    /// <summary>A WebSocket that delivers the given text messages in chunks of at most <c>chunk</c> bytes, then a close.</summary>
    private sealed class ScriptedSocket(byte[][] messages, int chunk) : WebSocket
    {
        private int _message;
        private int _offset;

        public override WebSocketCloseStatus? CloseStatus => null;

        public override string? CloseStatusDescription => null;

        public override WebSocketState State => WebSocketState.Open;

        public override string? SubProtocol => null;

        public override ValueTask<ValueWebSocketReceiveResult> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken)
        {
            if (_message == messages.Length)
            {
                return ValueTask.FromResult(new ValueWebSocketReceiveResult(0, WebSocketMessageType.Close, true));
            }

            var message = messages[_message];
            var count = Math.Min(Math.Min(chunk, buffer.Length), message.Length - _offset);
            message.AsSpan(_offset, count).CopyTo(buffer.Span);
            _offset += count;
            var end = _offset == message.Length;
            if (end)
            {
                _message++;
                _offset = 0;
            }

            return ValueTask.FromResult(new ValueWebSocketReceiveResult(count, WebSocketMessageType.Text, end));
        }

        public override async Task<WebSocketReceiveResult> ReceiveAsync(ArraySegment<byte> buffer, CancellationToken cancellationToken)
        {
            var result = await ReceiveAsync(buffer.AsMemory(), cancellationToken);
            return new WebSocketReceiveResult(result.Count, result.MessageType, result.EndOfMessage);
        }

        public override void Abort()
        {
        }

        public override Task CloseAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken) => Task.CompletedTask;

        public override Task CloseOutputAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken) => Task.CompletedTask;

        public override Task SendAsync(ArraySegment<byte> buffer, WebSocketMessageType messageType, bool endOfMessage, CancellationToken cancellationToken) => Task.CompletedTask;

        public override void Dispose()
        {
        }
    }
}
