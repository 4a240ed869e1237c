using System.Diagnostics;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Operations;

/// <summary>The README's demo, run as a user runs it: help, a typo, and the same command twice.</summary>
public sealed class ExotelSimTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task Help_prints_usage_and_exits_0_without_calling_anyone()
    {
        // No gateway listens on port 1: a call attempt would fail with exit code 1.
        var outcome = await HostRun.RunAsync(HostRun.ExotelSimDll, [], ["--url", "ws://127.0.0.1:1/v1/ingest", "--help"]);
        Assert.True(outcome.ExitCode == 0, outcome.ToString());
        Assert.Contains(outcome.Stdout, l => l.StartsWith("Usage: ExotelSim", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("--frames", "abc")]
    [InlineData("--frames", "-3")]
    [InlineData("--rate", "44100")]
    [InlineData("--url", "not a url")]
    [InlineData("--colour", "blue")]
    public async Task A_bad_argument_prints_one_line_and_exits_2(string name, string value)
    {
        var outcome = await HostRun.RunAsync(HostRun.ExotelSimDll, [], [name, value]);
        Assert.True(outcome.ExitCode == 2, outcome.ToString());
        Assert.Single(outcome.Stderr);
        Assert.Contains(name, outcome.Stderr[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_same_sid_a_second_time_is_reported_as_already_ended_at_once()
    {
        await using var stack = await IngestStack.StartAsync();
        await stack.AddSiloAsync();
        var gateway = await stack.AddGatewayAsync(new() { ["SUPPORT_EXOTEL"] = "true" });
        string[] args = ["--url", IngestStack.IngestUri(gateway).ToString(), "--user", IngestStack.ExotelUser, "--pass", IngestStack.ExotelPassword, "--sid", "demo-twice", "--frames", "5"];

        var first = await HostRun.RunAsync(HostRun.ExotelSimDll, [], args);
        Assert.True(first.ExitCode == 0, first.ToString());

        // 100 frames would take 10 s to send; the second run must find out long before that.
        var clock = Stopwatch.StartNew();
        var second = await HostRun.RunAsync(HostRun.ExotelSimDll, [], [.. args[..^1], "100"]);
        output.WriteLine(second.ToString());
        Assert.Equal(1, second.ExitCode);
        Assert.Contains(second.Stderr, l => l.Contains("stream already ended", StringComparison.Ordinal));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }
}
