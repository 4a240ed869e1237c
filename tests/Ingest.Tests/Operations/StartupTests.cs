using System.Globalization;

namespace Ingest.Tests.Operations;

/// <summary>What an operator sees when a silo starts while its Redis cannot be reached (Orleans membership needs it).</summary>
public sealed class StartupTests
{
    [Fact]
    public async Task A_silo_that_cannot_reach_Redis_at_start_exits_1_with_one_line_and_no_stack_trace()
    {
        var outcome = await HostRun.RunAsync(HostRun.SiloDll, new()
        {
            ["REDIS_URL"] = "127.0.0.1:1",
            ["SILO_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            ["GATEWAY_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            ["SILO_HTTP_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
        });

        Assert.True(outcome.ExitCode == 1, outcome.ToString());
        Assert.True(outcome.Stderr.Length == 1, outcome.ToString());
        Assert.StartsWith("cannot start: Redis (REDIS_URL) could not be reached", outcome.Stderr[0], StringComparison.Ordinal);
        Assert.DoesNotContain(outcome.Stdout.Concat(outcome.Stderr), l => l.StartsWith("at ", StringComparison.Ordinal));
    }
}
