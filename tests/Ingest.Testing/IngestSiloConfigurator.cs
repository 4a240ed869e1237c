using Ingest.Grains;
using Ingest.Silo;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.TestingHost;
using StackExchange.Redis;

namespace Ingest.Testing;

/// <summary>
/// The one silo configurator for Orleans <see cref="TestCluster"/>s over Ingest grains: the grains' services publishing
/// to the redis-server named by the <c>RedisConnectionString</c> builder property, the flags grain's Redis storage, and
/// the production membership tuning (<see cref="ClusterTuning.FastFailureDetection"/>). Optional property
/// <c>OrphanSeconds</c> (default 120) sets how long an idle call lives, <c>SweepSeconds</c> how soon the lifecycle sweeper wakes a call nobody looks after. For the full production wiring (Redis
/// clustering, host settings, validators) use <see cref="IngestCluster"/>, which builds silos with <see cref="SiloHost"/>.
/// </summary>
public sealed class IngestSiloConfigurator : IHostConfigurator
{
    /// <summary>The builder property holding the redis-server's connection string.</summary>
    public const string RedisProperty = "RedisConnectionString";

    /// <summary>The builder property holding the orphan timeout in seconds.</summary>
    public const string OrphanSecondsProperty = "OrphanSeconds";

    /// <summary>The builder property holding the lifecycle sweeper's round and staleness in seconds (default: production's 30 and 120).</summary>
    public const string SweepSecondsProperty = "SweepSeconds";

    /// <summary>The builder property naming a clock of <see cref="Clocks"/> the grains tell time by (a test's fake clock).</summary>
    public const string ClockProperty = "Clock";

    /// <summary>Clocks by name, for <see cref="ClockProperty"/>: the silos of a test cluster run in the test's process.</summary>
    public static readonly System.Collections.Concurrent.ConcurrentDictionary<string, TimeProvider> Clocks = new(StringComparer.Ordinal);

    /// <summary>The builder properties under this section set the grains' <see cref="IngestOptions"/> by name.</summary>
    public const string IngestSection = "Ingest";

    /// <inheritdoc />
    public void Configure(IHostBuilder hostBuilder)
    {
        ArgumentNullException.ThrowIfNull(hostBuilder);
        hostBuilder.UseOrleans((context, silo) =>
        {
            var connectionString = context.Configuration[RedisProperty]!;
            var options = Ingest.ServiceDefaults.RedisUrl.Parse(connectionString);
            var redis = ConnectionMultiplexer.Connect(options);
            silo.Services.AddSingleton<IConnectionMultiplexer>(redis);
            var orphanSeconds = int.TryParse(context.Configuration[OrphanSecondsProperty], out var seconds) ? seconds : 120;
            var sweepSeconds = int.TryParse(context.Configuration[SweepSecondsProperty], out var sweep) ? sweep : (int?)null;
            // The silo host's own wiring; only the options differ (fast retries, a long orphan timeout, the sweeper).
            SiloHost.AddIngest(silo, options, redis, o =>
            {
                o.RetryInterval = TimeSpan.FromMilliseconds(100);
                o.OrphanTimeout = TimeSpan.FromSeconds(orphanSeconds);
                if (sweepSeconds is { } s)
                {
                    o.SweepInterval = TimeSpan.FromSeconds(s);
                    o.SweepAfter = TimeSpan.FromSeconds(s);
                }
            });
            if (context.Configuration[ClockProperty] is { } clock && Clocks.TryGetValue(clock, out var time))
            {
                silo.Services.AddSingleton(time);
            }

            // Any other IngestOptions property as "Ingest:<Name>" (e.g. Ingest:StreamTtl = 00:01:00).
            silo.Services.Configure<IngestOptions>(context.Configuration.GetSection(IngestSection));
        });
    }
}
