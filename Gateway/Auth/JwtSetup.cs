using System.Security.Cryptography;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.IdentityModel.Tokens;

namespace Ingest.Gateway.Auth;

/// <summary>HS256 JWT validation for native clients (Bearer header or ?token=) and for the admin API.</summary>
public static class JwtSetup
{
    public const string AdminPolicy = "admin";
    public const string RoleClaim = "role";
    public const string HostingDiagnosticsCategory = "Microsoft.AspNetCore.Hosting.Diagnostics";

    public static IServiceCollection AddIngestJwt(this IServiceCollection services, GatewaySettings settings)
    {
        // "Request starting/finished" lines carry the full query string, so a ?token= would be written to the log at
        // Information. This rule is registered after the configuration's, so it wins over a Logging:LogLevel entry of
        // the same category; the gateway's own lines (refusals, calls) say what operators need without the query.
        services.AddLogging(b => b.AddFilter(HostingDiagnosticsCategory, LogLevel.Warning));

        // Without JWT_SECRET no token can validate: a random key nobody holds.
        var key = settings.JwtSecret ?? RandomNumberGenerator.GetBytes(64);
        services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme)
            .AddJwtBearer(o =>
            {
                o.MapInboundClaims = false;
                o.TokenValidationParameters = new TokenValidationParameters
                {
                    IssuerSigningKey = new SymmetricSecurityKey(key),
                    ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
                    ValidateIssuerSigningKey = true,
                    ValidateIssuer = settings.JwtIssuer is not null,
                    ValidIssuer = settings.JwtIssuer,
                    ValidateAudience = settings.JwtAudience is not null,
                    ValidAudience = settings.JwtAudience,
                    RequireExpirationTime = true,
                    ValidateLifetime = true,
                    RequireSignedTokens = true,
                    ClockSkew = TimeSpan.FromSeconds(30),
                    RoleClaimType = RoleClaim,
                    NameClaimType = "sub",
                };
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
            });
        services.AddAuthorizationBuilder()
            .AddPolicy(AdminPolicy, p => p.RequireAuthenticatedUser().RequireClaim(RoleClaim, "admin"));
        return services;
    }
}
