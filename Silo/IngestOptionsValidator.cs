using Ingest.Grains;
using Ingest.Grains.Interfaces;
using Ingest.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace Ingest.Silo;

/// <summary>Relations the per-call grain's options must keep with the gateways (CONTRACT §2: one line naming the setting).</summary>
internal sealed class IngestOptionsValidator : IValidateOptions<IngestOptions>
{
    public ValidateOptionsResult Validate(string? name, IngestOptions options)
    {
        var minimum = Timing.GatewayHeartbeat + Timing.OrphanMargin;
        if (options.OrphanTimeout < minimum)
        {
            return ValidateOptionsResult.Fail(
                $"invalid setting INGEST_ORPHAN_SECONDS: must be at least {minimum.TotalSeconds:F0} (the gateways' {Timing.GatewayHeartbeat.TotalSeconds:F0} s heartbeat plus {Timing.OrphanMargin.TotalSeconds:F0} s), or live quiet calls are ended as gateway_lost");
        }

        // A call-path grain call waits for at most one load and one write (each bounded by WriteTimeout, the write's
        // replica wait inside it); both must end well inside the gateway's bound, or a slow Redis would look like a lost
        // silo and every call would be presented again.
        var longest = options.WriteTimeout * 2;
        return longest < CallGrainTimeout.Value
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail(
                $"invalid grain options: a grain's Redis load and write (WriteTimeout twice, {longest.TotalSeconds:F1} s) must end inside the call-path grain-call timeout ({CallGrainTimeout.Value.TotalSeconds:F1} s)");
    }
}
