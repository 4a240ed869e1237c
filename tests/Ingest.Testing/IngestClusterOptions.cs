using Microsoft.AspNetCore.Builder;

namespace Ingest.Testing;

/// <summary>How <see cref="IngestCluster.StartAsync"/> builds the cluster. Every default gives a working cluster.</summary>
public sealed class IngestClusterOptions
{
    /// <summary>Silos started before <see cref="IngestCluster.StartAsync"/> returns. Default 2.</summary>
    public int Silos { get; set; } = 2;

    /// <summary>
    /// A Redis to use instead of a redis-server of the cluster's own, as a REDIS_URL: e.g.
    /// <see cref="RedisClusterServer.ConnectionString"/> to run the whole deployment on a Redis Cluster. The caller
    /// starts and disposes it; the cluster's Redis outage controls (<see cref="IngestCluster.PauseRedis"/>, …) are not
    /// available then. Default null: the cluster starts its own redis-server.
    /// </summary>
    public string? RedisConnectionString { get; set; }

    /// <summary>
    /// Contract settings given to every silo and the gateway, by their environment names (CONTRACT §2:
    /// <c>MAX_MESSAGE_BYTES</c>, <c>SUPPORT_EXOTEL</c>, <c>REDIS_TIMEOUT_MS</c>, ...). They win over the kit's defaults;
    /// a <see langword="null"/> value removes a default.
    /// </summary>
    public IDictionary<string, string?> Settings { get; } = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);

    /// <summary>Settings for the silos only; applied after <see cref="Settings"/>.</summary>
    public IDictionary<string, string?> SiloSettings { get; } = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Runs on every silo's and the gateway's host builder after the settings are added, e.g. to add a log provider
    /// that a test reads when it fails. Default null.
    /// </summary>
    public Action<WebApplicationBuilder>? ConfigureHost { get; set; }

    /// <summary>Settings for the gateway only; applied after <see cref="Settings"/>.</summary>
    public IDictionary<string, string?> GatewaySettings { get; } = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
}
