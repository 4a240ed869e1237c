namespace Ingest.QA.Examples;

public sealed class HappyCallTests
{
    [Fact]
    public async Task Every_frame_of_a_real_time_call_lands_once_in_order_byte_for_byte()
    {
        await using var cluster = await IngestCluster.StartAsync();
        await using var call = await ExotelCallSimulator.ConnectAsync(cluster);

        await call.StartAsync();
        await call.SendAudioAsync(frames: 10);
        await call.SendDtmfAsync("5");
        await call.SendAudioAsync(frames: 10);
        await call.SendMarkAsync("greeting-done");
        await call.StopAsync();

        var landed = await LandedStream.ReadAsync(cluster, call.StreamId);
        landed.AssertMatches(call);
        landed.AssertNoGaps();
        Assert.Equal("callended", landed.Stop!["reason"]);
        Assert.Equal(["dtmf", "mark"], landed.Events.Select(e => e.Event));
    }

    [Fact]
    public async Task A_call_with_both_tracks_lands_the_caller_and_the_agent_in_their_own_streams()
    {
        await using var cluster = await IngestCluster.StartAsync(new IngestClusterOptions { Silos = 1 });
        await using var call = await ExotelCallSimulator.ConnectAsync(cluster, new CallOptions { RealTime = false });

        await call.StartAsync();
        await call.SendBothTracksAsync(frames: 20);
        await call.StopAsync();

        var landed = await LandedStream.ReadAsync(cluster, call.StreamId);
        landed.AssertTracksMatch(call);
        landed.AssertNoGaps();
        Assert.Equal(20, landed.OutboundFrames.Count);
    }

    [Fact]
    public async Task A_native_call_with_a_token_lands_a_wav_file_frame_by_frame()
    {
        await using var cluster = await IngestCluster.StartAsync(new IngestClusterOptions { Silos = 1 });
        await using var call = await NativeCallSimulator.ConnectAsync(cluster, new CallOptions { RealTime = false, SampleRate = 16000 });
        var wav = Wav(CallAudio.Tone(frames: 25, sampleRate: 16000));

        await call.StartAsync();
        await call.SendAudioAsync(wav);
        await call.StopAsync();

        var landed = await LandedStream.ReadAsync(cluster, call.StreamId);
        landed.AssertMatches(call);
        Assert.Equal(25, landed.Frames.Count);
        Assert.Equal("16000", landed.Start!["sample_rate"]);
    }

    /// <summary>A minimal 16-bit mono WAV file around <paramref name="frames"/>, as a recording tool writes one.</summary>
    private static byte[] Wav(IEnumerable<byte[]> frames)
    {
        var data = frames.SelectMany(f => f).ToArray();
        using var stream = new MemoryStream();
        using var writer = new BinaryWriter(stream);
        writer.Write("RIFF"u8);
        writer.Write(36 + data.Length);
        writer.Write("WAVEfmt "u8);
        writer.Write(16);
        writer.Write((short)1);
        writer.Write((short)1);
        writer.Write(16000);
        writer.Write(32000);
        writer.Write((short)2);
        writer.Write((short)16);
        writer.Write("data"u8);
        writer.Write(data.Length);
        writer.Write(data);
        writer.Flush();
        return stream.ToArray();
    }
}
