using Ingest.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace Ingest.Gateway;

/// <summary>
/// The gateway's protective limits as configured (CONTRACT §2 and the README's table): one property per environment
/// variable. <see cref="GatewayLimits"/> is what the code uses, built from these once at start, and it holds every
/// default: a property here starts from the limit's default, so each default is written once.
/// </summary>
public sealed class GatewayLimitsOptions
{
    private static readonly GatewayLimits Default = new();

    [ConfigurationKeyName("MAX_MESSAGE_BYTES")] public int MaxMessageBytes { get; set; } = Default.MaxMessageBytes;

    [ConfigurationKeyName("IDLE_TIMEOUT_SECONDS")] public int IdleTimeoutSeconds { get; set; } = Seconds(Default.IdleTimeout);

    [ConfigurationKeyName("MAX_CALL_SECONDS")] public int MaxCallSeconds { get; set; } = Seconds(Default.MaxCallDuration);

    [ConfigurationKeyName("START_TIMEOUT_SECONDS")] public int StartTimeoutSeconds { get; set; } = Seconds(Default.StartTimeout);

    [ConfigurationKeyName("KEEPALIVE_SECONDS")] public int KeepAliveSeconds { get; set; } = Seconds(Default.KeepAliveInterval);

    [ConfigurationKeyName("MAX_CONNECTIONS_PER_IP")] public int MaxConnectionsPerAddress { get; set; } = Default.MaxConnectionsPerAddress;

    [ConfigurationKeyName("MAX_CONNECTIONS")] public int MaxConnections { get; set; } = Default.MaxConnections;

    /// <summary>Up to MAX_CALL_SECONDS' default: a drain longer than the longest call waits for nothing.</summary>
    [ConfigurationKeyName("DRAIN_GRACE_SECONDS")] public int DrainGraceSeconds { get; set; } = Seconds(Default.DrainGrace);

    /// <summary>Unset: the drain grace plus <see cref="GatewayLimits.FlushAfterDrain"/>.</summary>
    [ConfigurationKeyName("SHUTDOWN_TIMEOUT_SECONDS")] public int? ShutdownTimeoutSeconds { get; set; }

    [ConfigurationKeyName("MAX_QUEUED_FRAMES")] public int MaxQueuedFrames { get; set; } = Default.MaxQueuedFrames;

    [ConfigurationKeyName("MAX_UNSENT_FRAMES")] public int MaxUnsentFrames { get; set; } = Default.MaxUnsentFrames;

    [ConfigurationKeyName("MAX_CALL_BUFFER_BYTES")] public long MaxCallBufferBytes { get; set; } = Default.MaxCallBufferBytes;

    [ConfigurationKeyName("MAX_GATEWAY_BUFFER_BYTES")] public long MaxGatewayBufferBytes { get; set; } = Default.MaxGatewayBufferBytes;

    [ConfigurationKeyName("DELIVERY_TIMEOUT_SECONDS")] public int DeliveryTimeoutSeconds { get; set; } = Seconds(Default.DeliveryTimeout);

    [ConfigurationKeyName("AUTH_FAILURE_LIMIT")] public int AuthFailureLimit { get; set; } = Default.AuthFailureLimit;

    [ConfigurationKeyName("AUTH_FAILURE_WINDOW_SECONDS")] public int AuthFailureWindowSeconds { get; set; } = Seconds(Default.AuthFailureWindow);

    [ConfigurationKeyName("AUTH_FAILURE_DELAY_MS")] public int AuthFailureDelayMs { get; set; } = (int)Default.AuthFailureDelay.TotalMilliseconds;

    /// <summary>One log line per refusal status, reason and address per this many seconds; 0 logs every refusal.</summary>
    [ConfigurationKeyName("REFUSAL_LOG_SECONDS")] public int RefusalLogSeconds { get; set; } = Seconds(Default.RefusalLogInterval);

    /// <summary>Live-view subscribers (server-sent events of <c>/v1/admin/calls/stream</c>) one gateway serves at once; 0 turns it off.</summary>
    [ConfigurationKeyName("MAX_ADMIN_STREAMS")] public int MaxAdminStreams { get; set; } = Default.MaxAdminStreams;

    /// <summary>Calls per round of the warm-up before /readyz (GatewayWarmup); 0 turns the warm-up off.</summary>
    [ConfigurationKeyName("WARMUP_CALLS")] public int WarmupCalls { get; set; } = Default.WarmupCalls;

    /// <summary>Longest the warm-up may hold /readyz at 503 once the cluster and Redis answer; the gateway is ready then anyway.</summary>
    [ConfigurationKeyName("WARMUP_MAX_SECONDS")] public int WarmupMaxSeconds { get; set; } = Seconds(Default.WarmupMax);

    private static int Seconds(TimeSpan value) => (int)value.TotalSeconds;
}

/// <summary>The ranges of <see cref="GatewayLimitsOptions"/>, and the relations between them.</summary>
public sealed class GatewayLimitsOptionsValidator : IValidateOptions<GatewayLimitsOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayLimitsOptions o)
    {
        var failures = new List<string>();
        SettingRules.Range(failures, "MAX_MESSAGE_BYTES", o.MaxMessageBytes, 1024, 16 * 1024 * 1024);
        SettingRules.Range(failures, "IDLE_TIMEOUT_SECONDS", o.IdleTimeoutSeconds, 1, 86_400);
        SettingRules.Range(failures, "MAX_CALL_SECONDS", o.MaxCallSeconds, 1, 7 * 86_400);
        SettingRules.Range(failures, "START_TIMEOUT_SECONDS", o.StartTimeoutSeconds, 1, 3600);
        SettingRules.Range(failures, "KEEPALIVE_SECONDS", o.KeepAliveSeconds, 1, 3600);
        SettingRules.Range(failures, "MAX_CONNECTIONS_PER_IP", o.MaxConnectionsPerAddress, 1, int.MaxValue);
        SettingRules.Range(failures, "MAX_CONNECTIONS", o.MaxConnections, 1, int.MaxValue);
        SettingRules.Range(failures, "MAX_ADMIN_STREAMS", o.MaxAdminStreams, 0, 10_000);
        SettingRules.Range(failures, "DRAIN_GRACE_SECONDS", o.DrainGraceSeconds, 0, 14_400);
        if (o.ShutdownTimeoutSeconds is { } shutdown)
        {
            SettingRules.Range(failures, "SHUTDOWN_TIMEOUT_SECONDS", shutdown, 1, 18_000);
        }

        SettingRules.Range(failures, "MAX_QUEUED_FRAMES", o.MaxQueuedFrames, 10, int.MaxValue);
        SettingRules.Range(failures, "MAX_UNSENT_FRAMES", o.MaxUnsentFrames, 10, int.MaxValue);
        SettingRules.Range(failures, "MAX_CALL_BUFFER_BYTES", o.MaxCallBufferBytes, 64 * 1024, 4L * 1024 * 1024 * 1024);
        SettingRules.Range(failures, "MAX_GATEWAY_BUFFER_BYTES", o.MaxGatewayBufferBytes, 1024 * 1024, 64L * 1024 * 1024 * 1024);
        SettingRules.Range(failures, "DELIVERY_TIMEOUT_SECONDS", o.DeliveryTimeoutSeconds, 1, 86_400);
        SettingRules.Range(failures, "AUTH_FAILURE_LIMIT", o.AuthFailureLimit, 1, 1_000_000);
        SettingRules.Range(failures, "AUTH_FAILURE_WINDOW_SECONDS", o.AuthFailureWindowSeconds, 1, 86_400);
        SettingRules.Range(failures, "AUTH_FAILURE_DELAY_MS", o.AuthFailureDelayMs, 0, 10_000);
        SettingRules.Range(failures, "REFUSAL_LOG_SECONDS", o.RefusalLogSeconds, 0, 86_400);
        SettingRules.Range(failures, "WARMUP_CALLS", o.WarmupCalls, 0, 1000);
        SettingRules.Range(failures, "WARMUP_MAX_SECONDS", o.WarmupMaxSeconds, 1, 600);

        // One call's budget must fit the gateway's, or every call would overflow before the gateway-wide bound is met.
        if (o.MaxCallBufferBytes > o.MaxGatewayBufferBytes)
        {
            failures.Add($"MAX_CALL_BUFFER_BYTES: {o.MaxCallBufferBytes} exceeds MAX_GATEWAY_BUFFER_BYTES ({o.MaxGatewayBufferBytes})");
        }

        return SettingRules.Result(failures);
    }
}
