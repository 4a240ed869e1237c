using Ingest.Grains.Publishing;
using Microsoft.Extensions.DependencyInjection;

namespace Ingest.Grains;

public static class GrainServiceExtensions
{
    /// <summary>Registers what the grains need besides Orleans: options and the Redis publisher (on the shared multiplexer).</summary>
    public static IServiceCollection AddIngestGrains(this IServiceCollection services, Action<IngestOptions>? configure = null)
    {
        var builder = services.AddOptions<IngestOptions>();
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        services.AddSingleton<RedisStreamPublisher>();
        GrainMetrics.Initialize();
        return services;
    }
}
