using System.Reflection;

namespace Ingest.Gateway.Admin;

/// <summary>
/// The operators' console at <c>/admin</c>: a static page (embedded in the gateway, no build step) that calls the admin
/// API with a token the operator pastes. The page holds no data and no secret, so it needs no auth; every call it
/// makes does. The token lives in a JavaScript variable only (not in storage, the URL or the DOM).
/// </summary>
public static class ConsolePage
{
    private static readonly byte[] Html = Load("console.html");
    private static readonly byte[] Script = Load("console.js");

    // Scripts and styles only from this origin, no inline script, no framing: a stream_id is caller-chosen text.
    private const string Csp = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

    public static IEndpointRouteBuilder MapConsolePage(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/admin", (HttpContext context) => Serve(context, Html, "text/html; charset=utf-8"));
        routes.MapGet("/admin/console.js", (HttpContext context) => Serve(context, Script, "text/javascript; charset=utf-8"));
        return routes;
    }

    private static IResult Serve(HttpContext context, byte[] body, string contentType)
    {
        var headers = context.Response.Headers;
        headers.ContentSecurityPolicy = Csp;
        headers.XContentTypeOptions = "nosniff";
        headers.CacheControl = "no-store";
        headers["Referrer-Policy"] = "no-referrer";
        return Results.Bytes(body, contentType);
    }

    private static byte[] Load(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("Ingest.Gateway.Admin.Console." + name)
            ?? throw new InvalidOperationException($"embedded resource {name} missing");
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.ToArray();
    }
}
