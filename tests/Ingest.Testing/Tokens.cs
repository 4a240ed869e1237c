// Building block moved from Ingest.Tests; the type summary documents it, its members are read by the kit and the project tests.
#pragma warning disable CS1591

using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Ingest.Testing;

public static class Tokens
{
    public static string Create(string secret = IngestStack.JwtSecret, string? role = null, DateTime? expires = null, string subject = "agent-desktop")
    {
        var claims = new Dictionary<string, object> { ["sub"] = subject };
        if (role is not null)
        {
            claims["role"] = role;
        }

        var notBefore = (expires ?? DateTime.UtcNow.AddMinutes(5)) < DateTime.UtcNow ? DateTime.UtcNow.AddHours(-2) : DateTime.UtcNow.AddMinutes(-1);
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Claims = claims,
            NotBefore = notBefore,
            IssuedAt = notBefore,
            Expires = expires ?? DateTime.UtcNow.AddMinutes(5),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)), SecurityAlgorithms.HmacSha256),
        });
    }
}
