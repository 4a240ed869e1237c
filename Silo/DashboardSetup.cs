using System.Security.Cryptography;
using System.Text;
using Ingest.ServiceDefaults;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Orleans.Dashboard;

namespace Ingest.Silo;

/// <summary>
/// The Orleans Dashboard on the silo's HTTP port at <c>/dashboard</c>, admin role only (ORLEANS_DASHBOARD=true).
/// Admin tokens are validated exactly as the gateway's admin API does (JWT_SECRET or ADMIN_JWT_SECRET, JWT_ISSUER,
/// JWT_AUDIENCE, ADMIN_JWT_MAX_LIFETIME_SECONDS). A token comes in the Authorization header (curl) or, for a browser,
/// in an HttpOnly, SameSite=Strict cookie limited to /dashboard that <c>POST /dashboard/login</c> sets from a pasted
/// token; never in the URL.
/// </summary>
public static class DashboardSetup
{
    public const string Setting = "ORLEANS_DASHBOARD";
    public const string RoutePrefix = "/dashboard";
    public const string CookieName = "ingest_admin";
    public const string Policy = "dashboard-admin";

    public sealed record Options(byte[] Key, string? Issuer, string? Audience, TimeSpan MaxLifetime);

    public static Options ReadOptions(IConfiguration configuration)
    {
        var secret = Secret(configuration, "JWT_SECRET");
        var adminSecret = Secret(configuration, "ADMIN_JWT_SECRET");

        // Without a secret no token validates: a random key nobody holds (the dashboard answers 401 to everyone).
        return new Options(
            adminSecret ?? secret ?? RandomNumberGenerator.GetBytes(64),
            Settings.Text(configuration, "JWT_ISSUER"),
            Settings.Text(configuration, "JWT_AUDIENCE"),
            TimeSpan.FromSeconds(Settings.PositiveInt(configuration, "ADMIN_JWT_MAX_LIFETIME_SECONDS", 3_600, 60, 30 * 86_400)));
    }

    public static void AddAdminAuth(IServiceCollection services, Options options)
    {
        services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme)
            .AddJwtBearer(o =>
            {
                o.MapInboundClaims = false;
                o.TokenValidationParameters = JwtValidation.Parameters(options.Key, options.Issuer, options.Audience, options.MaxLifetime);
                o.Events = new JwtBearerEvents
                {
                    OnMessageReceived = context =>
                    {
                        // The header wins; a browser's cookie is read only on the dashboard's own paths.
                        if (string.IsNullOrEmpty(context.Request.Headers.Authorization) &&
                            context.Request.Path.StartsWithSegments(RoutePrefix) &&
                            context.Request.Cookies.TryGetValue(CookieName, out var cookie) && cookie.Length > 0)
                        {
                            context.Token = cookie;
                        }

                        return Task.CompletedTask;
                    },
                    OnChallenge = async context =>
                    {
                        context.HandleResponse();
                        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                        context.Response.Headers.WWWAuthenticate = "Bearer";
                        context.Response.ContentType = "text/plain; charset=utf-8";
                        await context.Response.WriteAsync(
                            $"401: the Orleans Dashboard needs an admin JWT (role=admin): send 'Authorization: Bearer <token>', or open {RoutePrefix}/login in a browser and paste it.\n");
                    },
                };
            });
        services.AddAuthorizationBuilder()
            .AddPolicy(Policy, p => p.RequireAuthenticatedUser().RequireClaim(JwtValidation.RoleClaim, "admin"));
    }

    /// <summary>Dashboard endpoints (admin role) and the tiny login form that turns a pasted token into a cookie.</summary>
    public static void Map(WebApplication app)
    {
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapOrleansDashboard(routePrefix: RoutePrefix).RequireAuthorization(Policy);

        app.MapGet(RoutePrefix + "/login", () => Results.Content(LoginPage, "text/html; charset=utf-8")).AllowAnonymous();
        app.MapPost(RoutePrefix + "/login", async (HttpContext context) =>
        {
            if (!context.Request.HasFormContentType)
            {
                return Results.BadRequest("POST a form with field 'token'");
            }

            var form = await context.Request.ReadFormAsync();
            var token = form["token"].ToString().Trim();
            context.Response.Cookies.Append(CookieName, token, new CookieOptions
            {
                HttpOnly = true,
                Secure = context.Request.IsHttps,
                SameSite = SameSiteMode.Strict,
                Path = RoutePrefix,
                MaxAge = TimeSpan.FromHours(1),
            });

            // 303: the browser GETs the dashboard, which validates the cookie (a bad token gets its 401 there).
            return Results.Redirect(RoutePrefix + "/", permanent: false, preserveMethod: false);
        }).AllowAnonymous().DisableAntiforgery();
        app.MapPost(RoutePrefix + "/logout", (HttpContext context) =>
        {
            context.Response.Cookies.Delete(CookieName, new CookieOptions { Path = RoutePrefix });
            return Results.Redirect(RoutePrefix + "/login");
        }).AllowAnonymous().DisableAntiforgery();
    }

    private const string LoginPage = """
        <!doctype html><html><head><meta charset="utf-8"><title>Orleans Dashboard: sign in</title></head>
        <body style="font-family:sans-serif;max-width:40em;margin:3em auto">
        <h1>Orleans Dashboard</h1>
        <p>Paste an admin JWT (claim <code>role=admin</code>). It is kept in an HttpOnly cookie for this path only.</p>
        <form method="post" action="/dashboard/login" autocomplete="off">
        <input type="password" name="token" size="60" required autofocus>
        <button type="submit">Open the dashboard</button>
        </form></body></html>
        """;

    private static byte[]? Secret(IConfiguration configuration, string name)
    {
        if (configuration[name] is not { Length: > 0 } text)
        {
            return null;
        }

        var secret = Encoding.UTF8.GetBytes(text);
        return secret.Length >= 32 ? secret : throw new SettingException(name, "must be at least 32 bytes for HS256");
    }
}
