using System.Security.Cryptography;
using System.Text;
using Ingest.Tests.Infrastructure;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Ingest.Tests.Security;

/// <summary>Tokens good and bad, for the JWT rules: algorithm, expiry, issuer, audience.</summary>
public static class SecurityTokens
{
    public const string Issuer = "https://issuer.test";
    public const string Audience = "ingest-gateway";

    public static string Create(
        string algorithm = SecurityAlgorithms.HmacSha256,
        string secret = IngestStack.JwtSecret,
        string? issuer = Issuer,
        string? audience = Audience,
        bool withExpiry = true,
        DateTime? expires = null,
        string? role = null)
    {
        var claims = new Dictionary<string, object> { ["sub"] = "security-test" };
        if (role is not null)
        {
            claims["role"] = role;
        }

        var descriptor = new SecurityTokenDescriptor
        {
            Claims = claims,
            Issuer = issuer,
            Audience = audience,
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)), algorithm),
        };
        if (withExpiry)
        {
            var until = expires ?? DateTime.UtcNow.AddMinutes(5);
            descriptor.NotBefore = until < DateTime.UtcNow ? until.AddHours(-1) : DateTime.UtcNow.AddMinutes(-1);
            descriptor.IssuedAt = descriptor.NotBefore;
            descriptor.Expires = until;
        }

        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = withExpiry }.CreateToken(descriptor);
    }

    /// <summary>Signed with a fresh RSA key (RS256): a different algorithm family from the configured HS256.</summary>
    public static string CreateRs256()
    {
        using var rsa = RSA.Create(2048);
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Claims = new Dictionary<string, object> { ["sub"] = "security-test" },
            Issuer = Issuer,
            Audience = Audience,
            Expires = DateTime.UtcNow.AddMinutes(5),
            SigningCredentials = new SigningCredentials(new RsaSecurityKey(rsa.ExportParameters(true)), SecurityAlgorithms.RsaSha256),
        });
    }

    /// <summary>
    /// Valid claims signed with the configured secret but a stronger HMAC (HS384/HS512), built by hand because the
    /// library refuses to sign HS512 with a key shorter than 512 bits.
    /// </summary>
    public static string CreateWithOtherHmac(string alg, Func<byte[], byte[], byte[]> hmac)
    {
        var exp = DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeSeconds();
        var header = Base64UrlEncoder.Encode($$"""{"alg":"{{alg}}","typ":"JWT"}""");
        var payload = Base64UrlEncoder.Encode($$"""{"sub":"security-test","iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{exp}}}""");
        var signature = hmac(Encoding.UTF8.GetBytes(IngestStack.JwtSecret), Encoding.ASCII.GetBytes(header + "." + payload));
        return header + "." + payload + "." + Base64UrlEncoder.Encode(signature);
    }

    /// <summary><c>alg: none</c> with valid claims and an empty signature.</summary>
    public static string CreateUnsigned()
    {
        var exp = DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeSeconds();
        var header = Base64UrlEncoder.Encode("""{"alg":"none","typ":"JWT"}""");
        var payload = Base64UrlEncoder.Encode($$"""{"sub":"security-test","iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{exp}}}""");
        return header + "." + payload + ".";
    }
}
