using System.Diagnostics;
using OpenTelemetry.Trace;

namespace Ingest.ServiceDefaults;

/// <summary>
/// Traces calls, not frames: a trace starts only at a call's span (<c>ingest.call</c>); any other span (Orleans' grain
/// call spans, ours) is recorded only under a recorded parent. The forwarder's per-frame Append runs with no current
/// activity, so Orleans starts no span for it (and propagates nothing); Start and Stop run under the call's spans, so
/// Orleans records them and carries their traceparent to the silo.
/// </summary>
public sealed class LifecycleSampler : Sampler
{
    public const string RootName = "ingest.call";

    public override SamplingResult ShouldSample(in SamplingParameters samplingParameters)
    {
        var parent = samplingParameters.ParentContext;
        if (parent.TraceId != default)
        {
            return new SamplingResult((parent.TraceFlags & ActivityTraceFlags.Recorded) != 0);
        }

        return new SamplingResult(samplingParameters.Name == RootName);
    }
}
