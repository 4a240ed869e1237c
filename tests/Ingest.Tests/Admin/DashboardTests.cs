using System.Net;
using System.Net.Http.Headers;
using Ingest.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;

namespace Ingest.Tests.Admin;

/// <summary>A silo with ORLEANS_DASHBOARD=true and the gateway's JWT_SECRET, and one with the dashboard off.</summary>
public sealed class DashboardFixture : IAsyncLifetime
{
    public IngestStack Stack { get; private set; } = null!;

    public WebApplication WithDashboard { get; private set; } = null!;

    public WebApplication WithoutDashboard { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Stack = await IngestStack.StartAsync();
        WithDashboard = await Stack.AddSiloAsync(new() { ["ORLEANS_DASHBOARD"] = "true", ["JWT_SECRET"] = IngestStack.JwtSecret });
        WithoutDashboard = await Stack.AddSiloAsync(new() { ["JWT_SECRET"] = IngestStack.JwtSecret });
    }

    public async Task DisposeAsync() => await Stack.DisposeAsync();
}

/// <summary>CONTRACT §2: the Orleans Dashboard at /dashboard on the silo's HTTP port, admin role only.</summary>
public sealed class DashboardTests(DashboardFixture fixture) : IClassFixture<DashboardFixture>
{
    private static Uri Url(WebApplication silo, string path) => new(silo.Urls.First().Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal) + path);

    private static async Task<HttpResponseMessage> GetAsync(WebApplication silo, string path, string? token, string? cookie = null)
    {
        using var http = new HttpClient(new HttpClientHandler { UseCookies = false, AllowAutoRedirect = false });
        using var request = new HttpRequestMessage(HttpMethod.Get, Url(silo, path));
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (cookie is not null)
        {
            request.Headers.Add("Cookie", cookie);
        }

        var response = await http.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    [Fact]
    public async Task Dashboard_answers_401_without_a_token_403_to_a_non_admin_and_200_to_an_admin()
    {
        using (var anonymous = await GetAsync(fixture.WithDashboard, "/dashboard/", token: null))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
            Assert.Contains("/dashboard/login", await anonymous.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var agent = await GetAsync(fixture.WithDashboard, "/dashboard/", Tokens.Create(role: "agent")))
        {
            Assert.Equal(HttpStatusCode.Forbidden, agent.StatusCode);
        }

        using (var forged = await GetAsync(fixture.WithDashboard, "/dashboard/", Tokens.Create(secret: "another-secret-that-is-also-long-enough!!", role: "admin")))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, forged.StatusCode);
        }

        using var admin = await GetAsync(fixture.WithDashboard, "/dashboard/", Tokens.Create(role: "admin"));
        Assert.Equal(HttpStatusCode.OK, admin.StatusCode);
        Assert.Contains("html", (await admin.Content.ReadAsStringAsync()).ToLowerInvariant(), StringComparison.Ordinal);

        // The silo's own endpoints stay open.
        using var health = await GetAsync(fixture.WithDashboard, "/healthz", token: null);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task A_browser_signs_in_with_a_pasted_token_that_becomes_an_http_only_cookie_for_the_dashboard_path()
    {
        using (var form = await GetAsync(fixture.WithDashboard, "/dashboard/login", token: null))
        {
            Assert.Equal(HttpStatusCode.OK, form.StatusCode);
            Assert.Contains("<form", await form.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        var token = Tokens.Create(role: "admin");
        using var http = new HttpClient(new HttpClientHandler { UseCookies = false, AllowAutoRedirect = false });
        using var login = await http.PostAsync(Url(fixture.WithDashboard, "/dashboard/login"), new FormUrlEncodedContent(new Dictionary<string, string> { ["token"] = token }));
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        Assert.DoesNotContain(token, login.Headers.Location!.ToString(), StringComparison.Ordinal);
        var setCookie = Assert.Single(login.Headers.GetValues("Set-Cookie"));
        Assert.Contains("httponly", setCookie.ToLowerInvariant(), StringComparison.Ordinal);
        Assert.Contains("samesite=strict", setCookie.ToLowerInvariant(), StringComparison.Ordinal);
        Assert.Contains("path=/dashboard", setCookie.ToLowerInvariant(), StringComparison.Ordinal);

        using var withCookie = await GetAsync(fixture.WithDashboard, "/dashboard/", token: null, cookie: setCookie.Split(';')[0]);
        Assert.Equal(HttpStatusCode.OK, withCookie.StatusCode);

        using var agentCookie = await GetAsync(fixture.WithDashboard, "/dashboard/", token: null, cookie: "ingest_admin=" + Tokens.Create(role: "agent"));
        Assert.Equal(HttpStatusCode.Forbidden, agentCookie.StatusCode);
    }

    [Fact]
    public async Task The_login_stores_only_a_valid_admin_token_posted_from_its_own_page_for_as_long_as_the_token_lives()
    {
        using var http = new HttpClient(new HttpClientHandler { UseCookies = false, AllowAutoRedirect = false });
        var login = Url(fixture.WithDashboard, "/dashboard/login");
        async Task<HttpResponseMessage> PostAsync(string token, string? origin)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, login) { Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["token"] = token }) };
            if (origin is not null)
            {
                request.Headers.Add("Origin", origin);
            }

            return await http.SendAsync(request);
        }

        // Any string used to become the cookie; now only a token valid now with role=admin does.
        foreach (var refused in new[] { "not-a-jwt", Tokens.Create(role: "agent"), Tokens.Create(role: "admin", expires: DateTime.UtcNow.AddMinutes(-5)), Tokens.Create("another-secret-that-is-long-enough-for-hs256!!", role: "admin") })
        {
            using var response = await PostAsync(refused, origin: null);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.False(response.Headers.Contains("Set-Cookie"));
        }

        // A form another site posts (login CSRF) is refused, even with a good token.
        var own = login.GetLeftPart(UriPartial.Authority);
        using (var foreign = await PostAsync(Tokens.Create(role: "admin"), "http://evil.example"))
        {
            Assert.Equal(HttpStatusCode.Forbidden, foreign.StatusCode);
            Assert.False(foreign.Headers.Contains("Set-Cookie"));
        }

        // From its own page: the cookie lives as long as the token, not a fixed hour.
        using (var ok = await PostAsync(Tokens.Create(role: "admin", expires: DateTime.UtcNow.AddMinutes(10)), own))
        {
            Assert.Equal(HttpStatusCode.Redirect, ok.StatusCode);
            var cookie = Assert.Single(ok.Headers.GetValues("Set-Cookie")).ToLowerInvariant();
            var maxAge = int.Parse(cookie.Split(';').Select(p => p.Trim()).Single(p => p.StartsWith("max-age=", StringComparison.Ordinal))[8..], System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(maxAge, 540, 600);
        }

        // /dashboard without its slash leads to the dashboard.
        using var bare = await http.GetAsync(Url(fixture.WithDashboard, "/dashboard"));
        Assert.Equal(HttpStatusCode.Redirect, bare.StatusCode);
        Assert.Equal("/dashboard/", bare.Headers.Location!.ToString());
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task In_a_real_browser_the_login_form_opens_the_dashboard_and_its_api_calls_carry_the_cookie()
    {
        await using var browser = await Chromium.LaunchAsync();
        await browser.NavigateAsync(Url(fixture.WithDashboard, "/dashboard/login"));
        var token = Tokens.Create(role: "admin");
        await browser.EvaluateAsync($"document.querySelector('input[name=token]').value = {System.Text.Json.JsonSerializer.Serialize(token)}; document.querySelector('form').submit(); true");
        Assert.True(await browser.WaitForAsync("location.pathname === '/dashboard/' && document.readyState === 'complete'", TimeSpan.FromSeconds(15)));
        Assert.Equal(200, (await browser.EvaluateAsync("fetch('/dashboard/DashboardCounters').then(r => r.status)"))!.GetValue<int>());
        Assert.True(await browser.WaitForAsync("document.body.innerText.length > 50", TimeSpan.FromSeconds(15)), await browser.TextAsync("body"));
        Assert.DoesNotContain(token, (await browser.EvaluateAsync("location.href + document.cookie + document.documentElement.outerHTML"))!.GetValue<string>(), StringComparison.Ordinal);
        await File.WriteAllBytesAsync(Path.Combine(AppContext.BaseDirectory, "orleans-dashboard.png"), await browser.ScreenshotAsync());
    }

    [Fact]
    public async Task Without_ORLEANS_DASHBOARD_there_is_no_dashboard()
    {
        using var admin = await GetAsync(fixture.WithoutDashboard, "/dashboard/", Tokens.Create(role: "admin"));
        Assert.Equal(HttpStatusCode.NotFound, admin.StatusCode);
    }
}
