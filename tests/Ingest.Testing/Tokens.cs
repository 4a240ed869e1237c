// Building block moved from Ingest.Tests; the type summary documents it, its members are read by the kit and the project tests.
#pragma warning disable CS1591

using System.Text;
using Ingest.ServiceDefaults;

namespace Ingest.Testing;

public static class Tokens
{
    public static string Create(string secret = IngestStack.JwtSecret, string? role = null, DateTime? expires = null, string subject = "agent-desktop")
    {
        // The platform's own token factory (ingestctl's too), so a kit token is exactly what an operator would mint.
        var until = expires ?? DateTime.UtcNow.AddMinutes(5);
        var notBefore = until < DateTime.UtcNow ? DateTime.UtcNow.AddHours(-2) : DateTime.UtcNow.AddMinutes(-1);
        return JwtValidation.Mint(Encoding.UTF8.GetBytes(secret), subject, role, notBefore, until);
    }
}
