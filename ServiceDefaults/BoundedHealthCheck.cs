using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Ingest.ServiceDefaults;

/// <summary>
/// Wraps every registered health check so it answers within <see cref="Timeout"/> whatever it waits on: a Redis that
/// is paused (SIGSTOP, a full network buffer) accepts the PING and never answers, and a probe that times out is no
/// answer at all for a load balancer (CONTRACT §8: "not ready" within one second).
/// </summary>
internal sealed class BoundedHealthChecks : IPostConfigureOptions<HealthCheckServiceOptions>
{
    /// <summary>Each readiness check gets this long (checks run side by side); the whole /readyz answers well inside one second.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(700);

    public void PostConfigure(string? name, HealthCheckServiceOptions options)
    {
        foreach (var registration in options.Registrations)
        {
            var inner = registration.Factory;
            registration.Factory = sp => new BoundedHealthCheck(inner(sp), Timeout);
        }
    }
}

internal sealed class BoundedHealthCheck(IHealthCheck inner, TimeSpan timeout) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            // WaitAsync also bounds a check that ignores the token (SE.Redis' PingAsync takes none).
            return await inner.CheckHealthAsync(context, cancellationToken).WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"no answer within {timeout.TotalMilliseconds:F0} ms");
        }
    }
}
