namespace Ingest.QA.Examples;

public sealed class SiloKillTests
{
    [Fact]
    public async Task Killing_the_silo_hosting_a_call_mid_call_loses_no_frame()
    {
        await using var cluster = await IngestCluster.StartAsync(new IngestClusterOptions { Silos = 2 });
        await using var call = await ExotelCallSimulator.ConnectAsync(cluster);
        await call.StartAsync();
        await call.SendAudioAsync(frames: 10);

        var host = await cluster.FindSiloHostingAsync(call.StreamId);
        Assert.NotEqual(-1, host);
        var sending = call.SendAudioAsync(frames: 40);
        await cluster.KillSiloAsync(host);
        await cluster.WaitForLivenessToStabilizeAsync();
        await sending;
        await call.StopAsync();

        var landed = await LandedStream.ReadAsync(cluster, call.StreamId, waitForStop: TimeSpan.FromSeconds(60));
        landed.AssertMatches(call);
        landed.AssertNoGaps();
    }
}

public sealed class RedisPauseTests
{
    [Fact]
    public async Task Redis_paused_for_three_seconds_mid_call_loses_no_frame()
    {
        await using var cluster = await IngestCluster.StartAsync(new IngestClusterOptions { Silos = 1 });
        await using var call = await ExotelCallSimulator.ConnectAsync(cluster);
        await call.StartAsync();
        await call.SendAudioAsync(frames: 10);

        cluster.PauseRedis();
        try
        {
            await call.SendAudioAsync(frames: 30);
        }
        finally
        {
            cluster.ResumeRedis();
        }

        await call.SendAudioAsync(frames: 10);
        await call.StopAsync();

        var landed = await LandedStream.ReadAsync(cluster, call.StreamId, waitForStop: TimeSpan.FromSeconds(60));
        landed.AssertMatches(call);
        landed.AssertNoGaps();
    }
}

public sealed class DuplicateAndGapTests
{
    [Fact]
    public async Task A_resent_frame_is_published_once()
    {
        await using var cluster = await IngestCluster.StartAsync(new IngestClusterOptions { Silos = 1 });
        await using var call = await ExotelCallSimulator.ConnectAsync(cluster, new CallOptions { RealTime = false });
        await call.StartAsync();
        await call.SendAudioAsync(frames: 10);
        await call.ResendAsync(5);
        await call.SendAudioAsync(frames: 5);
        await call.StopAsync();

        var landed = await LandedStream.ReadAsync(cluster, call.StreamId);
        Assert.Equal(1, call.Resent);
        landed.AssertMatches(call);
        Assert.Equal("15", landed.Stop!["frames"]);
    }
}

public sealed class CredentialTests
{
    [Fact]
    public async Task Wrong_exotel_password_is_refused_with_401_and_listed_as_bad_credentials()
    {
        await using var cluster = await IngestCluster.StartAsync(new IngestClusterOptions { Silos = 1 });

        var status = await ExotelCallSimulator.TryConnectAsync(cluster, IngestCluster.ExotelUser, "not-the-password");

        Assert.Equal(401, status);
        var refusals = await cluster.RefusalsAsync();
        Assert.Contains(refusals, r => r.Reason == "bad_credentials" && r.Status == 401);
    }
}
