using System.Net.WebSockets;
using System.Text.Json;

namespace Ingest.Testing;

/// <summary>
/// One call in the native protocol: a bearer JWT on the upgrade, a JSON <c>start</c>, binary audio frames numbered by
/// position (1, 2, …), a JSON <c>stop</c>. Position numbering leaves no room to script duplicates or gaps.
/// </summary>
public sealed class NativeCallSimulator : CallSimulator
{
    private long _position;

    private NativeCallSimulator(ClientWebSocket socket, string streamId, CallOptions options)
        : base(socket, streamId, options)
    {
    }

    /// <summary>Opens the WebSocket to the cluster's gateway with a bearer token (default <see cref="IngestCluster.NativeToken"/>).</summary>
    public static async Task<NativeCallSimulator> ConnectAsync(IngestCluster cluster, CallOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        options ??= new CallOptions();
        var socket = ExotelClient.NewSocket(new Dictionary<string, string> { ["Authorization"] = "Bearer " + (options.Token ?? IngestCluster.NativeToken()) });
        try
        {
            await socket.ConnectAsync(cluster.GatewayUri, CancellationToken.None);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new NativeCallSimulator(socket, options.StreamId ?? NewStreamId(), options);
    }

    /// <summary>Sends the start message (16-bit PCM, mono, the options' rate).</summary>
    public Task StartAsync() => SendTextAsync(JsonSerializer.Serialize(new
    {
        @event = "start",
        stream_id = StreamId,
        sample_rate = Options.SampleRate,
        encoding = "pcm16le",
        channels = 1,
        metadata = new { suite = "qa" },
    }));

    private protected override async Task<long> SendMediaAsync(byte[] audio)
    {
        await Socket.SendAsync(audio, WebSocketMessageType.Binary, true, CancellationToken.None);
        return ++_position;
    }

    private protected override Task SendStopAsync() => SendTextAsync("{\"event\":\"stop\"}");
}
