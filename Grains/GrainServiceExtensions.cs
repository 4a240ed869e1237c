using Ingest.Grains.Publishing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Orleans.Hosting;

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

        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<SiloBuffers>();
        services.AddSingleton<LiveCalls>();
        services.AddPlacementDirector<SiloKeyedPlacement, SiloKeyedPlacementDirector>();
        services.AddSingleton<CallStreamStore>();
        services.AddHostedService<LifecycleSweeper>();
        services.AddHostedService<ZeroSeriesAtStart>();
        return services;
    }

    /// <summary>
    /// Touches every counter once the host has started, when the meter provider listens: a series touched before that
    /// (as at registration, before this) is not exported, and a fresh silo's /metrics lacked them until its first call.
    /// </summary>
    private sealed class ZeroSeriesAtStart(Microsoft.Extensions.Hosting.IHostApplicationLifetime lifetime) : Microsoft.Extensions.Hosting.IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            lifetime.ApplicationStarted.Register(GrainMetrics.Initialize);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
