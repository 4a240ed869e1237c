using System.CommandLine;
using System.Text;

namespace Ingest.Ctl;

internal static class TokenCommand
{
    public static Command Build()
    {
        var role = new Option<string>("--role") { Description = "admin (the admin API) or native (a native WebSocket client)", DefaultValueFactory = _ => "admin" };
        role.AcceptOnlyFromAmong("admin", "native");
        var secret = new Option<string?>("--secret") { Description = "the HS256 secret itself (at least 32 bytes); prefer --secret-env, a command line is visible to others" };
        var secretEnv = new Option<string?>("--secret-env") { Description = "environment variable holding the secret (default: ADMIN_JWT_SECRET when set for admin, else JWT_SECRET)" };
        var expires = new Option<string>("--expires") { Description = "lifetime: 90s, 15m, 1h, 2d (default 1h; the gateway accepts at most 1h for admin, 24h for native unless configured otherwise)", DefaultValueFactory = _ => "1h" };
        var sub = new Option<string>("--sub") { Description = "subject (sub claim), shown in the gateway's log of flag changes", DefaultValueFactory = _ => Environment.UserName is { Length: > 0 } u ? u : "ingestctl" };
        var issuer = new Option<string?>("--issuer") { Description = "iss claim (env JWT_ISSUER)", DefaultValueFactory = _ => Common.Env("JWT_ISSUER") };
        var audience = new Option<string?>("--audience") { Description = "aud claim (env JWT_AUDIENCE)", DefaultValueFactory = _ => Common.Env("JWT_AUDIENCE") };
        var command = new Command("token", "Mint an HS256 JWT for the admin API (role=admin) or a native client (role=native); prints the token only")
        {
            role, secret, secretEnv, expires, sub, issuer, audience,
        };
        command.SetAction(p =>
        {
            var lifetime = Common.ParseDuration(p.GetValue(expires)!) ?? throw CtlException.Usage($"--expires must look like 90s, 15m, 1h or 2d, not '{p.GetValue(expires)}'");
            var r = p.GetValue(role)!;
            if (r == "admin" && lifetime > TimeSpan.FromHours(1))
            {
                Console.Error.WriteLine("ingestctl: warning: the gateway refuses admin tokens valid for more than 1h unless ADMIN_JWT_MAX_LIFETIME_SECONDS allows it");
            }

            var key = ResolveSecret(p.GetValue(secret), p.GetValue(secretEnv), r);
            Console.WriteLine(Mint(key, r, p.GetValue(sub)!, lifetime, p.GetValue(issuer), p.GetValue(audience)));
            return Program.Ok;
        });
        return command;
    }

    public static byte[] ResolveSecret(string? secret, string? secretEnv, string role)
    {
        string text;
        string from;
        if (secret is not null)
        {
            (text, from) = (secret, "--secret");
        }
        else
        {
            var name = secretEnv ?? (role == "admin" && Common.Env("ADMIN_JWT_SECRET") is not null ? "ADMIN_JWT_SECRET" : "JWT_SECRET");
            text = Common.Env(name) ?? throw CtlException.Usage($"{name} is not set: give --secret-env NAME or --secret (tools/run-local.sh uses JWT_SECRET=local-development-secret-at-least-32-bytes)");
            from = name;
        }

        var bytes = Encoding.UTF8.GetBytes(text);
        return bytes.Length >= 32 ? bytes : throw CtlException.Usage($"{from} is {bytes.Length} bytes; HS256 secrets must be at least 32 bytes (the gateway refuses shorter ones)");
    }

    public static string Mint(byte[] key, string role, string sub, TimeSpan lifetime, string? issuer = null, string? audience = null)
    {
        var now = DateTime.UtcNow;
        return Ingest.ServiceDefaults.JwtValidation.Mint(key, sub, role, now, now + lifetime, issuer, audience);
    }
}
