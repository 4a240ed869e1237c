using Ingest.Grains;
using Ingest.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace Ingest.Silo;

/// <summary>
/// How the per-call grains publish, as configured (CONTRACT §2 and the README's table): one property per environment
/// variable. Turned into the grains' <see cref="IngestOptions"/> at start; each starts from that option's default, so
/// every default is written once, in <see cref="IngestOptions"/>.
/// </summary>
public sealed class IngestSettingsOptions
{
    internal static readonly IngestOptions Default = new();

    [ConfigurationKeyName("INGEST_BUFFER_FRAMES")] public int BufferFrames { get; set; } = Default.BufferLimit;

    /// <summary>The lower bound that matters is the gateways' heartbeat, checked by IngestOptionsValidator with the reason.</summary>
    [ConfigurationKeyName("INGEST_ORPHAN_SECONDS")] public int OrphanSeconds { get; set; } = (int)Default.OrphanTimeout.TotalSeconds;

    /// <summary>At least 60 (CONTRACT §8): every retention the silo accepts keeps a live call whole.</summary>
    [ConfigurationKeyName("INGEST_AUDIO_TTL_SECONDS")] public int AudioTtlSeconds { get; set; } = (int)Default.StreamTtl.TotalSeconds;

    [ConfigurationKeyName("INGEST_MAX_EVENTS_PER_CALL")] public long MaxEventsPerCall { get; set; } = Default.MaxEventsPerCall;

    [ConfigurationKeyName("INGEST_BUFFER_BYTES")] public long BufferBytes { get; set; } = Default.BufferBytes;

    [ConfigurationKeyName("INGEST_SILO_BUFFER_BYTES")] public long SiloBufferBytes { get; set; } = Default.SiloBufferBytes;

    /// <summary>Replicas that must confirm each batch before it counts as written (Redis WAIT); 0: the master's word.</summary>
    [ConfigurationKeyName("INGEST_REDIS_WAIT_REPLICAS")] public int WaitReplicas { get; set; } = Default.WaitReplicas;

    [ConfigurationKeyName("INGEST_REDIS_WAIT_TIMEOUT_MS")] public int WaitTimeoutMs { get; set; } = (int)Default.WaitTimeout.TotalMilliseconds;
}

/// <summary>The ranges of <see cref="IngestSettingsOptions"/>, and the relations between them.</summary>
public sealed class IngestSettingsOptionsValidator : IValidateOptions<IngestSettingsOptions>
{
    public ValidateOptionsResult Validate(string? name, IngestSettingsOptions o)
    {
        var failures = new List<string>();
        SettingRules.Range(failures, "INGEST_BUFFER_FRAMES", o.BufferFrames, 1, 1_000_000);
        SettingRules.Range(failures, "INGEST_ORPHAN_SECONDS", o.OrphanSeconds, 1, 7 * 86_400);
        SettingRules.Range(failures, "INGEST_AUDIO_TTL_SECONDS", o.AudioTtlSeconds, 60, 30 * 86_400);
        SettingRules.Range(failures, "INGEST_MAX_EVENTS_PER_CALL", o.MaxEventsPerCall, 1, 100_000_000);
        SettingRules.Range(failures, "INGEST_BUFFER_BYTES", o.BufferBytes, 64 * 1024, 4L * 1024 * 1024 * 1024);
        SettingRules.Range(failures, "INGEST_SILO_BUFFER_BYTES", o.SiloBufferBytes, 1024 * 1024, 64L * 1024 * 1024 * 1024);
        SettingRules.Range(failures, "INGEST_REDIS_WAIT_REPLICAS", o.WaitReplicas, 0, 16);
        // Below the grain's write timeout: a wait that outlasts it would count every slow replica as Redis away.
        SettingRules.Range(failures, "INGEST_REDIS_WAIT_TIMEOUT_MS", o.WaitTimeoutMs, 1, (int)(IngestSettingsOptions.Default.WriteTimeout.TotalMilliseconds * 0.9));
        if (o.BufferBytes > o.SiloBufferBytes)
        {
            failures.Add($"INGEST_BUFFER_BYTES: {o.BufferBytes} exceeds INGEST_SILO_BUFFER_BYTES ({o.SiloBufferBytes})");
        }

        return SettingRules.Result(failures);
    }
}
