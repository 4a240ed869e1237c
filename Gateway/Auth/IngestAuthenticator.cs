using System.Net;
using System.Security.Cryptography;
using System.Text;
using Ingest.Gateway.Flags;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;

namespace Ingest.Gateway.Auth;

public enum CallerKind
{
    None,
    Exotel,
    Native,
}

/// <summary>Who is upgrading, decided once at the HTTP upgrade. <see cref="Reason"/> is safe to log: it never holds a credential.</summary>
/// <remarks>
/// <see cref="BadCredential"/> marks a refusal of a credential that was presented and is wrong (a Basic password, a
/// token): the kind of attempt a guesser makes, which is delayed and counted per address. Refusals that guess nothing
/// (no credential at all, Exotel support off) are not.
/// </remarks>
public readonly record struct AuthDecision(CallerKind Kind, string Reason, string? Subject = null, bool BadCredential = false)
{
    public static AuthDecision Refuse(string reason) => new(CallerKind.None, reason);

    public static AuthDecision RefuseCredential(string reason) => new(CallerKind.None, reason, BadCredential: true);
}

/// <summary>
/// CONTRACT §3: a JWT makes a native client; otherwise the caller is Exotel, admitted by Basic credentials or the IP
/// allow-list, and only while SUPPORT_EXOTEL is on. There is no open fallback.
/// </summary>
public sealed partial class IngestAuthenticator(GatewaySettings settings, FlagCache flags, ILogger<IngestAuthenticator> logger)
{
    private readonly byte[]? _expectedBasicHash = settings.ExotelCredentialsConfigured
        ? SHA256.HashData(Encoding.UTF8.GetBytes(settings.ExotelUser + ":" + settings.ExotelPassword))
        : null;

    public async Task<AuthDecision> AuthenticateAsync(HttpContext context)
    {
        var authorization = context.Request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || context.Request.Query.ContainsKey("token"))
        {
            var result = await context.AuthenticateAsync(JwtBearerDefaults.AuthenticationScheme);
            if (result.Succeeded)
            {
                return new AuthDecision(CallerKind.Native, "jwt", result.Principal?.Identity?.Name);
            }

            return settings.JwtSecret is null
                ? AuthDecision.Refuse("native clients are not accepted: JWT_SECRET is not set")
                : AuthDecision.RefuseCredential("invalid token: " + (result.Failure?.GetType().Name ?? "rejected"));
        }

        var remote = context.Connection.RemoteIpAddress is { } ip ? IpRangeList.Normalize(ip) : IPAddress.None;
        var usesBasic = authorization.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase);
        LogExotelUpgrade(remote, usesBasic ? "basic" : "ip");

        if (!flags.SupportExotel)
        {
            return AuthDecision.Refuse("Exotel support is off (SUPPORT_EXOTEL=false)");
        }

        if (usesBasic && _expectedBasicHash is not null && BasicMatches(authorization.AsSpan(6).Trim()))
        {
            return new AuthDecision(CallerKind.Exotel, "basic");
        }

        if (settings.ExotelAllowList.Contains(remote))
        {
            return new AuthDecision(CallerKind.Exotel, "ip-allowlist");
        }

        if (usesBasic)
        {
            return _expectedBasicHash is null
                ? AuthDecision.Refuse("Basic credentials are not configured")
                : AuthDecision.RefuseCredential("wrong Basic credentials");
        }

        return AuthDecision.Refuse(settings.ExotelAllowList.IsEmpty
            ? "no credentials presented"
            : "no credentials presented and address not in EXOTEL_IP_ALLOWLIST");
    }

    /// <summary>Compares SHA-256 digests in constant time, so neither length nor content leaks through timing.</summary>
    private bool BasicMatches(ReadOnlySpan<char> encoded)
    {
        Span<byte> decoded = stackalloc byte[512];
        if (encoded.Length > 680 || !Convert.TryFromBase64Chars(encoded, decoded, out var written))
        {
            return false;
        }

        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(decoded[..written], hash);
        return _expectedBasicHash is not null && CryptographicOperations.FixedTimeEquals(hash, _expectedBasicHash);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Exotel WebSocket upgrade request (IP whitelist/Basic Auth) from {RemoteIp} using {Method}")]
    private partial void LogExotelUpgrade(IPAddress remoteIp, string method);
}
