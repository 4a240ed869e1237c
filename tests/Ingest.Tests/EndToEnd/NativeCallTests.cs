using System.Net.WebSockets;
using System.Text;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.EndToEnd;

[Collection(EndToEndCollection.Name)]
public sealed class NativeCallTests(EndToEndFixture fixture)
{
    [Fact]
    public async Task Native_call_with_a_jwt_lands_its_binary_frames_by_position()
    {
        var id = "native-" + Guid.NewGuid().ToString("N");
        using var socket = ExotelClient.NewSocket(new Dictionary<string, string> { ["Authorization"] = "Bearer " + Tokens.Create() });
        await socket.ConnectAsync(IngestStack.IngestUri(fixture.Main), CancellationToken.None);
        var start = $"{{\"event\":\"start\",\"stream_id\":\"{id}\",\"sample_rate\":16000,\"encoding\":\"pcm16le\",\"channels\":1,\"metadata\":{{\"agent\":\"a-17\"}}}}";
        await socket.SendAsync(Encoding.UTF8.GetBytes(start), WebSocketMessageType.Text, true, CancellationToken.None);
        for (var i = 1; i <= 50; i++)
        {
            await socket.SendAsync(ExotelClient.Pcm(9, i, 640), WebSocketMessageType.Binary, true, CancellationToken.None);
        }

        await socket.SendAsync("{\"event\":\"stop\"}"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        var buffer = new byte[256];
        var close = await socket.ReceiveAsync(buffer, CancellationToken.None);
        Assert.Equal(WebSocketMessageType.Close, close.MessageType);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, close.CloseStatus);

        var audio = await RedisStreams.ReadAudioAsync(fixture.Stack.Connection, id);
        Assert.Equal(Enumerable.Range(1, 50).Select(i => (long)i), audio.Select(a => a.Seq));
        Assert.Equal(ExotelClient.Pcm(9, 37, 640), audio[36].Audio);
        var lifecycle = await RedisStreams.ReadLifecycleAsync(fixture.Stack.Connection, id);
        Assert.Equal(["start", "stop"], lifecycle.Select(e => e["event"]));
        Assert.Equal("16000", lifecycle[0]["sample_rate"]);
        Assert.Equal("stopped", lifecycle[1]["reason"]);
        Assert.Equal("50", lifecycle[1]["frames"]);
    }
}
