using System.Diagnostics;
using Ingest.Grains.Interfaces;

namespace Ingest.Grains;

/// <summary>The call grain's spans: its Start and Stop continue the caller's trace, never Append (per frame batch).</summary>
internal static class CallSpans
{
    /// <summary>
    /// A server span for the grain's Start or Stop: Orleans' activity propagation puts the caller's traceparent in the
    /// request context.
    /// </summary>
    public static Activity? StartLifecycle(string name, string streamId, bool warmup)
    {
        if (!IngestTelemetry.Source.HasListeners() || warmup)
        {
            return null;
        }

        // Orleans' server span when it made one; otherwise the caller's span, from the traceparent its outgoing filter set.
        var parent = default(ActivityContext);
        if (Activity.Current is { Recorded: true } current)
        {
            parent = current.Context;
        }
        else if (RequestContext.Get("traceparent") is string traceParent)
        {
            ActivityContext.TryParse(traceParent, RequestContext.Get("tracestate") as string, isRemote: true, out parent);
        }

        if (parent == default)
        {
            return null;
        }

        var activity = IngestTelemetry.Source.StartActivity(name, ActivityKind.Server, parent);
        activity?.SetTag("stream_id", streamId);
        return activity;
    }

    /// <summary>A span for the Redis write of the start or stop batch (child of the grain's lifecycle span).</summary>
    public static Activity? StartRedis(string batch)
    {
        if (Activity.Current is not { Source.Name: IngestTelemetry.SourceName })
        {
            return null;
        }

        var activity = IngestTelemetry.Source.StartActivity("ingest.redis.write", ActivityKind.Client);
        activity?.SetTag("db.system", "redis");
        activity?.SetTag("batch", batch);
        return activity;
    }
}
