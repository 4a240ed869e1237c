using Ingest.Grains;
using Ingest.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace Ingest.Silo;

/// <summary>Relations the per-call grain's options must keep with the gateways (CONTRACT §2: one line naming the setting).</summary>
internal sealed class IngestOptionsValidator : IValidateOptions<IngestOptions>
{
    public ValidateOptionsResult Validate(string? name, IngestOptions options)
    {
        var minimum = Timing.GatewayHeartbeat + Timing.OrphanMargin;
        return options.OrphanTimeout >= minimum
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail(
                $"invalid setting INGEST_ORPHAN_SECONDS: must be at least {minimum.TotalSeconds:F0} (the gateways' {Timing.GatewayHeartbeat.TotalSeconds:F0} s heartbeat plus {Timing.OrphanMargin.TotalSeconds:F0} s), or live quiet calls are ended as gateway_lost");
    }
}
