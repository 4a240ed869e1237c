using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;

namespace Ingest.ServiceDefaults;

/// <summary>What every Orleans.Ingest process shares: metrics exported to Prometheus, liveness and readiness.</summary>
public static class ServiceDefaultsExtensions
{
    /// <summary>Health checks carrying this tag decide /readyz; /healthz only says the process is alive.</summary>
    public const string ReadyTag = "ready";

    public static IHostApplicationBuilder AddServiceDefaults(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(IngestMeter.Name)
            .AddMeter("Microsoft.Orleans")
            .AddView(
                instrumentName: "ingest.publish.latency",
                new ExplicitBucketHistogramConfiguration { Boundaries = [0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2500, 5000, 10000] })
            .AddView(
                instrumentName: "ingest.forward.latency",
                new ExplicitBucketHistogramConfiguration { Boundaries = [0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2500, 5000, 10000] })
            .AddPrometheusExporter());

        builder.Services.AddHealthChecks();
        builder.Services.AddSingleton<Microsoft.Extensions.Options.IPostConfigureOptions<HealthCheckServiceOptions>, BoundedHealthChecks>();
        return builder;
    }

    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        // Liveness only: no check runs, so a Redis or cluster outage never turns it red (CONTRACT §8).
        app.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks("/readyz", new HealthCheckOptions
        {
            Predicate = check => check.Tags.Contains(ReadyTag),
            ResponseWriter = WriteReport,
        });
        app.MapPrometheusScrapingEndpoint("/metrics");
        return app;
    }

    private static Task WriteReport(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "text/plain; charset=utf-8";
        var lines = report.Entries.Select(e =>
            $"{e.Key}: {e.Value.Status}{(e.Value.Description is { Length: > 0 } d ? " (" + d + ")" : string.Empty)}");
        return context.Response.WriteAsync($"{report.Status}\n{string.Join('\n', lines)}\n");
    }
}
