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
    public static void Map(WebApplication app, Options options)
    {
        // The dashboard's pages load relative to /dashboard/: without the slash they would not find their scripts.
        app.Use((context, next) =>
        {
            if (context.Request.Path.Value == RoutePrefix && HttpMethods.IsGet(context.Request.Method))
            {
                context.Response.Redirect(RoutePrefix + "/" + context.Request.QueryString);
                return Task.CompletedTask;
            }

            return next(context);
        });
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

            // A form posted from another site (login CSRF: planting the attacker's own token) is refused.
            if (!SameOrigin(context.Request))
            {
                return Results.Text("403: the login form must be posted from this dashboard's own page.\n", "text/plain; charset=utf-8", statusCode: StatusCodes.Status403Forbidden);
            }

            var form = await context.Request.ReadFormAsync();
            var token = form["token"].ToString().Trim();
            if (token.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            {
                token = token[7..].Trim();
            }

            // Only a token that is valid now and has role=admin becomes a cookie, and the cookie lives as long as it does.
            var checkedToken = await new Microsoft.IdentityModel.JsonWebTokens.JsonWebTokenHandler().ValidateTokenAsync(
                token, JwtValidation.Parameters(options.Key, options.Issuer, options.Audience, options.MaxLifetime));
            if (!checkedToken.IsValid || !checkedToken.Claims.TryGetValue(JwtValidation.RoleClaim, out var role) || role?.ToString() != "admin")
            {
                return Results.Text(
                    "401: not an admin token that is valid now (wrong signature, expired, too long-lived, or no role=admin); nothing was stored.\n",
                    "text/plain; charset=utf-8", statusCode: StatusCodes.Status401Unauthorized);
            }

            var expires = checkedToken.SecurityToken.ValidTo;
            context.Response.Cookies.Append(CookieName, token, new CookieOptions
            {
                HttpOnly = true,
                Secure = context.Request.IsHttps,
                SameSite = SameSiteMode.Strict,
                Path = RoutePrefix,
                MaxAge = expires > DateTime.UtcNow ? expires - DateTime.UtcNow : TimeSpan.Zero,
            });

            // 303: the browser GETs the dashboard, which validates the cookie on every request.
            return Results.Redirect(RoutePrefix + "/", permanent: false, preserveMethod: false);
        }).AllowAnonymous().DisableAntiforgery();
        app.MapPost(RoutePrefix + "/logout", (HttpContext context) =>
        {
            context.Response.Cookies.Delete(CookieName, new CookieOptions { Path = RoutePrefix });
            return Results.Redirect(RoutePrefix + "/login");
        }).AllowAnonymous().DisableAntiforgery();
    }

    /// <summary>
    /// The request comes from this origin: its <c>Origin</c> header (browsers send one with every POST) names this host,
    /// or, without one, <c>Sec-Fetch-Site</c> says same-origin or none (typed, not from a page). A client that sends
    /// neither (curl) is not a browser a site could drive, and passes.
    /// </summary>
    private static bool SameOrigin(HttpRequest request)
    {
        if (request.Headers.Origin is { Count: > 0 } origin)
        {
            return Uri.TryCreate(origin.ToString(), UriKind.Absolute, out var uri)
                && string.Equals(uri.Scheme, request.Scheme, StringComparison.OrdinalIgnoreCase)
                && string.Equals(uri.Authority, request.Host.Value, StringComparison.OrdinalIgnoreCase);
        }

        return request.Headers["Sec-Fetch-Site"].ToString() is "" or "same-origin" or "none";
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
