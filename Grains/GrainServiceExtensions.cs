using Ingest.Grains.Publishing;
using Microsoft.Extensions.DependencyInjection;

namespace Ingest.Grains;

public static class GrainServiceExtensions
{
    /// <summary>Registers what the grains need besides Orleans: options and the call streams' store (on the shared multiplexer) and the lifecycle sweeper.</summary>
    public static IServiceCollection AddIngestGrains(this IServiceCollection services, Action<IngestOptions>? configure = null)
    {
        var builder = services.AddOptions<IngestOptions>();
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        services.AddSingleton<CallStreamStore>();
        services.AddHostedService<LifecycleSweeper>();
        GrainMetrics.Initialize();
        return services;
    }
}
