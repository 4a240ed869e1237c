using Ingest.Grains.Interfaces;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Ingest.ServiceDefaults;

/// <summary>What every Orleans.Ingest process shares: metrics exported to Prometheus, liveness and readiness.</summary>
public static class ServiceDefaultsExtensions
{
    /// <summary>Health checks carrying this tag decide /readyz; /healthz only says the process is alive.</summary>
    public const string ReadyTag = "ready";

    public static IHostApplicationBuilder AddServiceDefaults(this IHostApplicationBuilder builder)
    {
        // Trace and span ids of the current activity (the call's span in a session) go with every log line's scopes.
        builder.Logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId | ActivityTrackingOptions.ParentId);

        // The health check service logs an Error line for every probe that finds the process not ready (a gateway warming
        // up, a Redis away): a probe every few seconds made that a flood. /readyz's own answer names the failing check.
        builder.Logging.AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks.DefaultHealthCheckService", LogLevel.Critical);

        var otel = builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(
                builder.Configuration["OTEL_SERVICE_NAME"] is { Length: > 0 } name ? name : builder.Environment.ApplicationName))
            .WithMetrics(metrics => metrics
                .AddMeter(IngestMeter.Name)
                .AddMeter("Microsoft.Orleans")
                // Built into ASP.NET Core and .NET: connections, TLS handshakes, queue lengths; GC, threads, exceptions.
                .AddMeter("Microsoft.AspNetCore.Server.Kestrel")
                .AddRuntimeInstrumentation()
                .AddView(
                    instrumentName: "ingest.publish.latency",
                    new ExplicitBucketHistogramConfiguration { Boundaries = IngestTelemetry.SecondsBuckets })
                .AddView(
                    instrumentName: "ingest.silo.redis.write.latency",
                    new ExplicitBucketHistogramConfiguration { Boundaries = IngestTelemetry.SecondsBuckets })
                .AddPrometheusExporter());

        // Traces only when an OTLP endpoint is configured (the standard OTEL_EXPORTER_OTLP_ENDPOINT, with
        // OTEL_EXPORTER_OTLP_PROTOCOL grpc or http/protobuf): the call lifecycle spans of the "Ingest" source, and
        // Orleans' grain call spans, which Orleans' activity propagation (AddActivityPropagation) creates only when its
        // source is listened to. The sampler keeps that to the lifecycle: no span, and no propagation, per frame batch.
        if (builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"] is { Length: > 0 })
        {
            otel.WithTracing(tracing => tracing
                .SetSampler(new LifecycleSampler())
                .AddSource(IngestTelemetry.SourceName)
                .AddSource("Microsoft.Orleans.Application")
                .AddOtlpExporter());
        }

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
