using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Ingest.ServiceDefaults;

/// <summary>
/// How every HS256 token of the platform is validated (the gateway's native and admin tokens, the silo's dashboard):
/// one algorithm, optional issuer and audience, a required expiry, and a maximum lifetime; and how one is made
/// (<see cref="Mint"/>: ingestctl's token command and the QA kit's tokens, linked into ingestctl).
/// </summary>
public static class JwtValidation
{
    public const string RoleClaim = "role";

    public static readonly TimeSpan ClockSkew = TimeSpan.FromSeconds(30);

    public static TokenValidationParameters Parameters(byte[] key, string? issuer, string? audience, TimeSpan maxLifetime) => new()
    {
        IssuerSigningKey = new SymmetricSecurityKey(key),
        ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
        ValidateIssuerSigningKey = true,
        ValidateIssuer = issuer is not null,
        ValidIssuer = issuer,
        ValidateAudience = audience is not null,
        ValidAudience = audience,
        RequireExpirationTime = true,
        ValidateLifetime = true,
        LifetimeValidator = (notBefore, expires, token, _) => LifetimeIsAcceptable(notBefore, expires, IssuedAt(token), DateTime.UtcNow, maxLifetime),
        RequireSignedTokens = true,
        ClockSkew = ClockSkew,
        RoleClaimType = RoleClaim,
        NameClaimType = "sub",
    };

    /// <summary>
    /// Not expired, already valid, and not valid for longer than <paramref name="maxLifetime"/>: neither from its issue
    /// time (iat, else nbf) to its expiry, nor from now to its expiry (a token without iat cannot hide a 10-year exp).
    /// </summary>
    public static bool LifetimeIsAcceptable(DateTime? notBefore, DateTime? expires, DateTime? issuedAt, DateTime now, TimeSpan maxLifetime)
    {
        if (expires is not { } exp || exp.ToUniversalTime() + ClockSkew < now)
        {
            return false;
        }

        exp = exp.ToUniversalTime();
        if (notBefore is { } nbf && nbf.ToUniversalTime() - ClockSkew > now)
        {
            return false;
        }

        var from = issuedAt ?? notBefore;
        return exp - now <= maxLifetime + ClockSkew && (from is not { } start || exp - start.ToUniversalTime() <= maxLifetime + ClockSkew);
    }

    private static DateTime? IssuedAt(SecurityToken token) => token switch
    {
        JsonWebToken jwt when jwt.TryGetPayloadValue<long>("iat", out var iat) => DateTimeOffset.FromUnixTimeSeconds(iat).UtcDateTime,
        _ => null,
    };

    /// <summary>An HS256 token the gateway accepts: <c>sub</c>, <c>role</c> when given, issued at its start.</summary>
    public static string Mint(byte[] key, string subject, string? role, DateTime notBefore, DateTime expires, string? issuer = null, string? audience = null)
    {
        var claims = new Dictionary<string, object> { ["sub"] = subject };
        if (role is not null)
        {
            claims[RoleClaim] = role;
        }

        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Claims = claims,
            IssuedAt = notBefore,
            NotBefore = notBefore,
            Expires = expires,
            Issuer = issuer,
            Audience = audience,
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(key), SecurityAlgorithms.HmacSha256),
        });
    }
}
