using Ingest.ServiceDefaults;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.IdentityModel.Tokens;

namespace Ingest.Gateway.Auth;

/// <summary>HS256 JWT validation for native clients (Bearer header or ?token=) and for the admin API.</summary>
public static class JwtSetup
{
    public const string AdminPolicy = "admin";
    public const string AdminScheme = "AdminBearer";
    public static readonly TimeSpan ClockSkew = JwtValidation.ClockSkew;
    public const string RoleClaim = JwtValidation.RoleClaim;
    public const string HostingDiagnosticsCategory = "Microsoft.AspNetCore.Hosting.Diagnostics";

    public static IServiceCollection AddIngestJwt(this IServiceCollection services, GatewaySettings settings)
    {
        // "Request starting/finished" lines carry the full query string, so a ?token= would be written to the log at
        // Information. This rule is registered after the configuration's, so it wins over a Logging:LogLevel entry of
        // the same category; the gateway's own lines (refusals, calls) say what operators need without the query.
        services.AddLogging(b => b.AddFilter(HostingDiagnosticsCategory, LogLevel.Warning));

        // Without JWT_SECRET no token can validate: a random key nobody holds.
        var key = settings.JwtSecret ?? RandomNumberGenerator.GetBytes(64);

        // With ADMIN_JWT_SECRET set, admin tokens are checked with it alone: a leaked native-client key mints no admin.
        var adminKey = settings.AdminJwtSecret ?? key;
        services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme)
            .AddJwtBearer(o =>
            {
                o.MapInboundClaims = false;
                o.TokenValidationParameters = Parameters(settings, key, settings.JwtMaxLifetime);
                o.Events = new JwtBearerEvents
                {
                    OnMessageReceived = context =>
                    {
                        // Browsers and some SIP bridges cannot set headers on a WebSocket upgrade.
                        if (string.IsNullOrEmpty(context.Token) &&
                            !context.Request.Headers.Authorization.Any(v => v?.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) == true) &&
                            context.Request.Query.TryGetValue("token", out var token))
                        {
                            context.Token = token.ToString();
                        }

                        return Task.CompletedTask;
                    },
                };
            })

            // Admin tokens come in the Authorization header only: a URL ends up in proxy logs and browser history.
            .AddJwtBearer(AdminScheme, o =>
            {
                o.MapInboundClaims = false;
                o.TokenValidationParameters = Parameters(settings, adminKey, settings.AdminJwtMaxLifetime);
            });
        services.AddAuthorizationBuilder()
            .AddPolicy(AdminPolicy, p => p.AddAuthenticationSchemes(AdminScheme).RequireAuthenticatedUser().RequireClaim(RoleClaim, "admin"));
        return services;
    }

    private static TokenValidationParameters Parameters(GatewaySettings settings, byte[] key, TimeSpan maxLifetime) =>
        JwtValidation.Parameters(key, settings.JwtIssuer, settings.JwtAudience, maxLifetime);
}
