using Ingest.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace Ingest.Gateway;

/// <summary>
/// The gateway's protective limits as configured (CONTRACT §2 and the README's table): one property per environment
/// variable, with its default. <see cref="GatewayLimits"/> is what the code uses, built from these once at start.
/// </summary>
public sealed class GatewayLimitsOptions
{
    [ConfigurationKeyName("MAX_MESSAGE_BYTES")] public int MaxMessageBytes { get; set; } = 256 * 1024;

    [ConfigurationKeyName("IDLE_TIMEOUT_SECONDS")] public int IdleTimeoutSeconds { get; set; } = 30;

    [ConfigurationKeyName("MAX_CALL_SECONDS")] public int MaxCallSeconds { get; set; } = 4 * 3600;

    [ConfigurationKeyName("START_TIMEOUT_SECONDS")] public int StartTimeoutSeconds { get; set; } = 10;

    [ConfigurationKeyName("KEEPALIVE_SECONDS")] public int KeepAliveSeconds { get; set; } = 15;

    [ConfigurationKeyName("MAX_CONNECTIONS_PER_IP")] public int MaxConnectionsPerAddress { get; set; } = 4000;

    [ConfigurationKeyName("MAX_CONNECTIONS")] public int MaxConnections { get; set; } = 10_000;

    /// <summary>Up to MAX_CALL_SECONDS' default: a drain longer than the longest call waits for nothing.</summary>
    [ConfigurationKeyName("DRAIN_GRACE_SECONDS")] public int DrainGraceSeconds { get; set; } = 20;

    /// <summary>Unset: the drain grace plus <see cref="GatewayLimits.FlushAfterDrain"/>.</summary>
    [ConfigurationKeyName("SHUTDOWN_TIMEOUT_SECONDS")] public int? ShutdownTimeoutSeconds { get; set; }

    [ConfigurationKeyName("MAX_QUEUED_FRAMES")] public int MaxQueuedFrames { get; set; } = 3000;

    [ConfigurationKeyName("MAX_UNSENT_FRAMES")] public int MaxUnsentFrames { get; set; } = 600;

    [ConfigurationKeyName("MAX_CALL_BUFFER_BYTES")] public long MaxCallBufferBytes { get; set; } = 8L * 1024 * 1024;

    [ConfigurationKeyName("MAX_GATEWAY_BUFFER_BYTES")] public long MaxGatewayBufferBytes { get; set; } = 192L * 1024 * 1024;

    [ConfigurationKeyName("DELIVERY_TIMEOUT_SECONDS")] public int DeliveryTimeoutSeconds { get; set; } = 300;

    [ConfigurationKeyName("AUTH_FAILURE_LIMIT")] public int AuthFailureLimit { get; set; } = 60;

    [ConfigurationKeyName("AUTH_FAILURE_WINDOW_SECONDS")] public int AuthFailureWindowSeconds { get; set; } = 60;

    [ConfigurationKeyName("AUTH_FAILURE_DELAY_MS")] public int AuthFailureDelayMs { get; set; } = 250;

    /// <summary>Live-view subscribers (server-sent events of <c>/v1/admin/calls/stream</c>) one gateway serves at once; 0 turns it off.</summary>
    [ConfigurationKeyName("MAX_ADMIN_STREAMS")] public int MaxAdminStreams { get; set; } = 16;

    /// <summary>Calls per round of the warm-up before /readyz (GatewayWarmup); 0 turns the warm-up off.</summary>
    [ConfigurationKeyName("WARMUP_CALLS")] public int WarmupCalls { get; set; } = 128;

    /// <summary>Longest the warm-up may hold /readyz at 503 once the cluster and Redis answer; the gateway is ready then anyway.</summary>
    [ConfigurationKeyName("WARMUP_MAX_SECONDS")] public int WarmupMaxSeconds { get; set; } = 30;
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
