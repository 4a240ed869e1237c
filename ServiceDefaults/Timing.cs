using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Ingest.ServiceDefaults;

/// <summary>Timing relations between processes that no single process's settings show (checked by validators).</summary>
public static class Timing
{
    /// <summary>
    /// Every gateway calls each live call's grain at least this often, even for a quiet call (the gateway's
    /// CallForwarder.HeartbeatInterval; a test keeps the two equal). A silo's INGEST_ORPHAN_SECONDS must outlast it.
    /// </summary>
    public static readonly TimeSpan GatewayHeartbeat = TimeSpan.FromSeconds(10);

    /// <summary>Room over one heartbeat for a late heartbeat and a silo failover before a call counts as orphaned.</summary>
    public static readonly TimeSpan OrphanMargin = TimeSpan.FromSeconds(5);
}

/// <summary>
/// A grain call must outlast one Redis command: the grain answers a slow Redis with a status the caller can act on, and
/// a grain-call timeout shorter than the Redis timeout turns every slow Redis answer into an abandoned call and a resend.
/// </summary>
public sealed class GrainCallTimeoutValidator<TOptions>(ConfigurationOptions redis, Func<TOptions, TimeSpan> responseTimeout) : IValidateOptions<TOptions>
    where TOptions : class
{
    public ValidateOptionsResult Validate(string? name, TOptions options)
    {
        var grainCall = responseTimeout(options);
        var redisCommand = TimeSpan.FromMilliseconds(Math.Max(redis.AsyncTimeout, redis.SyncTimeout));
        return grainCall > redisCommand
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail(
                $"invalid setting {RedisUrl.Setting}: its command timeout ({redisCommand.TotalSeconds:F1} s) must be shorter than the grain-call timeout ({grainCall.TotalSeconds:F1} s)");
    }
}
