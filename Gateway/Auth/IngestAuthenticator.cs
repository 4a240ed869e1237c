using System.Net;
using System.Security.Cryptography;
using System.Text;
using Ingest.Gateway.Flags;
using Ingest.Gateway.Ingest;
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
/// (no credential at all, Exotel support off) are not. A refusal also carries its machine reason (<see cref="Refusal"/>,
/// CONTRACT §8's list) and the protocol the caller was attempting (<see cref="Attempted"/>), for the refusal log.
/// </remarks>
public readonly record struct AuthDecision(
    CallerKind Kind,
    string Reason,
    string? Subject = null,
    bool BadCredential = false,
    RefusalReason Refusal = default,
    CallerKind Attempted = CallerKind.None)
{
    public static AuthDecision Refuse(RefusalReason refusal, CallerKind attempted, string reason) =>
        new(CallerKind.None, reason, Refusal: refusal, Attempted: attempted);

    public static AuthDecision RefuseCredential(RefusalReason refusal, CallerKind attempted, string reason) =>
        new(CallerKind.None, reason, BadCredential: true, Refusal: refusal, Attempted: attempted);
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
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return await AuthenticateTokenAsync(context);
        }

        var remote = context.Connection.RemoteIpAddress is { } ip ? IpRangeList.Normalize(ip) : IPAddress.None;
        var usesBasic = authorization.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase);
        var basicValid = usesBasic && _expectedBasicHash is not null && BasicMatches(authorization.AsSpan(6).Trim());
        var allowListed = settings.ExotelAllowList.Contains(remote);

        // CONTRACT §3: valid Exotel credentials decide, whatever the query holds (Exotel copies its custom parameters
        // into the URL, and one named "token" must not turn it into a failed JWT login). ?token= is read only without them.
        if (!basicValid && !allowListed && context.Request.Query.ContainsKey("token"))
        {
            return await AuthenticateTokenAsync(context);
        }

        LogExotelUpgrade(remote, usesBasic ? "basic" : "ip");

        // CONTRACT §3, §8: until this gateway has reached the cluster once it does not know the flag, and says so with a
        // 503 and Retry-After, never with a 401 that tells Exotel its credentials are wrong.
        if (!flags.Loaded.IsCompletedSuccessfully)
        {
            return AuthDecision.Refuse(RefusalReason.Starting, CallerKind.Exotel, "starting: the gateway does not know the cluster's flags yet");
        }

        if (!flags.SupportExotel)
        {
            return AuthDecision.Refuse(RefusalReason.ExotelDisabled, CallerKind.Exotel, "Exotel support is off (SUPPORT_EXOTEL=false)");
        }

        if (basicValid)
        {
            return new AuthDecision(CallerKind.Exotel, "basic");
        }

        if (allowListed)
        {
            return new AuthDecision(CallerKind.Exotel, "ip-allowlist");
        }

        if (usesBasic)
        {
            // Basic presented where none is configured cannot be right: bad credentials, unless the allow-list was the
            // way in for this gateway, and the address is outside it.
            return _expectedBasicHash is null
                ? AuthDecision.Refuse(settings.ExotelAllowList.IsEmpty ? RefusalReason.BadCredentials : RefusalReason.NotAllowlisted, CallerKind.Exotel, "Basic credentials are not configured")
                : AuthDecision.RefuseCredential(RefusalReason.BadCredentials, CallerKind.Exotel, "wrong Basic credentials");
        }

        return settings.ExotelAllowList.IsEmpty
            ? AuthDecision.Refuse(RefusalReason.NoCredentials, CallerKind.Exotel, "no credentials presented")
            : AuthDecision.Refuse(RefusalReason.NotAllowlisted, CallerKind.Exotel, "no credentials presented and address not in EXOTEL_IP_ALLOWLIST");
    }

    private async Task<AuthDecision> AuthenticateTokenAsync(HttpContext context)
    {
        var result = await context.AuthenticateAsync(JwtBearerDefaults.AuthenticationScheme);
        if (result.Succeeded)
        {
            return new AuthDecision(CallerKind.Native, "jwt", result.Principal?.Identity?.Name);
        }

        return settings.JwtSecret is null
            ? AuthDecision.Refuse(RefusalReason.BadToken, CallerKind.Native, "native clients are not accepted: JWT_SECRET is not set")
            : AuthDecision.RefuseCredential(RefusalReason.BadToken, CallerKind.Native, "invalid token: " + (result.Failure?.GetType().Name ?? "rejected"));
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

    [LoggerMessage(EventId = 6651, Level = LogLevel.Information, Message = "Exotel WebSocket upgrade request (IP whitelist/Basic Auth) from {RemoteIp} using {Method}")]
    private partial void LogExotelUpgrade(IPAddress remoteIp, string method);
}
