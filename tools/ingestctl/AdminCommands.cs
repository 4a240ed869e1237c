using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Ingest.Ctl;

/// <summary>flags, calls, refusals: the gateway's admin API (CONTRACT §4, §8) with an admin JWT in the Authorization header.</summary>
internal static class AdminCommands
{
    private static Option<string> UrlOption() => new("--url")
    {
        Description = "the gateway's HTTP address (env INGESTCTL_URL; default http://127.0.0.1:8080)",
        DefaultValueFactory = _ => Common.Env("INGESTCTL_URL") ?? "http://127.0.0.1:8080",
    };

    private static Option<string?> TokenOption() => new("--token")
    {
        Description = "admin JWT (env INGESTCTL_TOKEN; without either, one is minted for 5 minutes from ADMIN_JWT_SECRET or JWT_SECRET when set)",
    };

    private static Option<bool> JsonOption() => new("--json") { Description = "print the API's JSON as it came, not a table" };

    public static Command Flags()
    {
        var url = UrlOption();
        var token = TokenOption();
        var json = JsonOption();
        var get = new Command("get", "Show the flags (SUPPORT_EXOTEL) with their version, source and time of change") { url, token, json };
        get.SetAction(async (p, ct) =>
        {
            var body = await SendAsync(HttpMethod.Get, p.GetValue(url)!, "/v1/admin/flags", p.GetValue(token), null, ct);
            PrintFlags(body, p.GetValue(json));
            return Program.Ok;
        });

        var enabled = new Option<bool?>("--enabled") { Description = "true or false", Required = true };
        var set = new Command("set", "Turn SUPPORT_EXOTEL on or off cluster-wide, at once (every gateway obeys within 1 s)") { enabled, url, token, json };
        set.SetAction(async (p, ct) =>
        {
            var payload = JsonSerializer.Serialize(new { enabled = p.GetValue(enabled) });
            var body = await SendAsync(HttpMethod.Put, p.GetValue(url)!, "/v1/admin/flags/support-exotel", p.GetValue(token), payload, ct);
            PrintFlags(body, p.GetValue(json));
            return Program.Ok;
        });

        return new Command("flags", "Read or change the cluster's flags") { get, set };
    }

    public static Command Calls()
    {
        var url = UrlOption();
        var token = TokenOption();
        var json = JsonOption();
        var watch = new Option<bool>("--watch") { Description = "keep the list on screen, updated as the silos push it (server-sent events of /v1/admin/calls/stream), until Ctrl+C" };
        var list = new Command("list", "The live calls of the cluster: stream id, protocol, frames published, gaps, start time, silo") { url, token, json, watch };
        list.SetAction(async (p, ct) =>
        {
            if (p.GetValue(watch))
            {
                await WatchAsync(p.GetValue(url)!, p.GetValue(token), data => PrintCalls(data, p.GetValue(json), clear: !Console.IsOutputRedirected), ct);
                return Program.Ok;
            }

            var body = await SendAsync(HttpMethod.Get, p.GetValue(url)!, "/v1/admin/calls", p.GetValue(token), null, ct);
            PrintCalls(body, p.GetValue(json), clear: false);
            return Program.Ok;
        });

        var id = new Argument<string>("stream_id") { Description = "the call's stream id (Exotel stream_sid, native stream_id)" };
        var show = new Command("show", "One live call's counters") { id, url, token, json };
        show.SetAction(async (p, ct) =>
        {
            var body = await SendAsync(HttpMethod.Get, p.GetValue(url)!, "/v1/admin/calls", p.GetValue(token), null, ct);
            var call = JsonNode.Parse(body)!.AsArray().FirstOrDefault(c => S(c, "stream_id") == p.GetValue(id))
                ?? throw new CtlException($"no live call with stream id '{p.GetValue(id)}' (ended calls are in Redis: ingestctl dump {p.GetValue(id)})");
            if (p.GetValue(json))
            {
                Console.WriteLine(call.ToJsonString());
                return Program.Ok;
            }

            foreach (var (name, value) in call.AsObject())
            {
                Console.WriteLine($"{name + ":",-12} {value}");
            }

            return Program.Ok;
        });

        return new Command("calls", "Live calls across the cluster") { list, show };
    }

    public static Command Refusals()
    {
        var url = UrlOption();
        var token = TokenOption();
        var json = JsonOption();
        var command = new Command("refusals", "The gateway's most recent refused upgrades, newest first, with the reason (exotel_disabled, bad_credentials, ...)") { url, token, json };
        command.SetAction(async (p, ct) =>
        {
            var body = await SendAsync(HttpMethod.Get, p.GetValue(url)!, "/v1/admin/refusals", p.GetValue(token), null, ct);
            if (p.GetValue(json))
            {
                Console.WriteLine(body);
                return Program.Ok;
            }

            var rows = JsonNode.Parse(body)!.AsArray();
            Console.WriteLine(Common.Table(
                ["AT", "REMOTE", "REASON", "STATUS", "PROTOCOL", "DETAIL"],
                rows.Select(r => (IReadOnlyList<string>)[S(r, "at"), S(r, "remote"), S(r, "reason"), S(r, "status"), S(r, "protocol"), S(r, "detail")])));
            Console.WriteLine($"{rows.Count} refusal(s) on this gateway");
            return Program.Ok;
        });
        return command;
    }

    private static void PrintCalls(string body, bool json, bool clear)
    {
        if (json)
        {
            Console.WriteLine(body);
            return;
        }

        var calls = JsonNode.Parse(body)!.AsArray();
        if (clear)
        {
            Console.Clear();
        }

        Console.WriteLine(Common.Table(
            ["STREAM_ID", "PROTOCOL", "FRAMES", "GAPS", "MISSING", "BUFFERED", "STARTED_AT", "SILO"],
            calls.Select(c => (IReadOnlyList<string>)[S(c, "stream_id"), S(c, "protocol"), S(c, "frames"), S(c, "gaps"), S(c, "missing"), S(c, "buffered"), S(c, "started_at"), S(c, "silo")])));
        Console.WriteLine(Invariant($"{calls.Count} live call(s)") + (clear ? Invariant($", {DateTime.Now:HH:mm:ss}; Ctrl+C to stop") : string.Empty));
    }

    /// <summary>Reads the live view's server-sent events; each <c>calls</c> event's data goes to <paramref name="onCalls"/>.</summary>
    private static async Task WatchAsync(string baseUrl, string? token, Action<string> onCalls, CancellationToken ct)
    {
        var root = Root(baseUrl);
        using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(root, "/v1/admin/calls/stream"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ResolveToken(token));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        HttpResponseMessage response;
        try
        {
            using var connect = CancellationTokenSource.CreateLinkedTokenSource(ct);
            connect.CancelAfter(TimeSpan.FromSeconds(15));
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, connect.Token);
        }
        catch (HttpRequestException ex)
        {
            throw new CtlException($"cannot reach the gateway at {root}: {Program.OneLine(ex.Message)}");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new CtlException($"the gateway at {root} did not answer within 15 s");
        }

        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                throw Refused(response.StatusCode, response.ReasonPhrase, "/v1/admin/calls/stream", await response.Content.ReadAsStringAsync(ct));
            }

            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
            var eventName = string.Empty;
            var data = new StringBuilder();
            try
            {
                while (await reader.ReadLineAsync(ct) is { } line)
                {
                    if (line.Length == 0)
                    {
                        if (eventName == "calls" && data.Length > 0)
                        {
                            onCalls(data.ToString());
                        }

                        eventName = string.Empty;
                        data.Clear();
                    }
                    else if (line.StartsWith("event:", StringComparison.Ordinal))
                    {
                        eventName = line[6..].Trim();
                    }
                    else if (line.StartsWith("data:", StringComparison.Ordinal))
                    {
                        data.Append(line.AsSpan(5).TrimStart(' '));
                    }
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }

            throw new CtlException("the gateway closed the live view (it is stopping); run the command again");
        }
    }

    private static string S(JsonNode? node, string name) => node?[name] switch
    {
        null => "",
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        var other => other.ToJsonString(),
    };

    private static void PrintFlags(string body, bool json)
    {
        if (json)
        {
            Console.WriteLine(body);
            return;
        }

        var flags = JsonNode.Parse(body)!["flags"]!.AsObject();
        Console.WriteLine(Common.Table(
            ["FLAG", "ENABLED", "VERSION", "SOURCE", "CHANGED_AT"],
            flags.Select(f => (IReadOnlyList<string>)[f.Key, S(f.Value, "enabled"), S(f.Value, "version"), S(f.Value, "source"), S(f.Value, "changedAt")])));
    }

    private static string ResolveToken(string? token)
    {
        if ((token ?? Common.Env("INGESTCTL_TOKEN")) is { } given)
        {
            return given;
        }

        if (Common.Env("ADMIN_JWT_SECRET") is null && Common.Env("JWT_SECRET") is null)
        {
            throw CtlException.Usage("no admin token: give --token, set INGESTCTL_TOKEN (ingestctl token --role admin), or set JWT_SECRET");
        }

        return TokenCommand.Mint(TokenCommand.ResolveSecret(null, null, "admin"), "admin", "ingestctl", TimeSpan.FromMinutes(5));
    }

    private static async Task<string> SendAsync(HttpMethod method, string baseUrl, string path, string? token, string? json, CancellationToken ct)
    {
        var root = Root(baseUrl);
        var bearer = ResolveToken(token);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(15) };
        using var request = new HttpRequestMessage(method, new Uri(root, path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        if (json is not null)
        {
            request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        }

        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, ct);
        }
        catch (HttpRequestException ex)
        {
            throw new CtlException($"cannot reach the gateway at {root}: {Program.OneLine(ex.Message)}");
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new CtlException($"the gateway at {root} did not answer within 15 s");
        }

        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(ct);
            return response.IsSuccessStatusCode ? body : throw Refused(response.StatusCode, response.ReasonPhrase, path, body);
        }
    }

    private static Uri Root(string baseUrl) =>
        Uri.TryCreate(baseUrl, UriKind.Absolute, out var root) && root.Scheme is "http" or "https"
            ? root
            : throw CtlException.Usage($"--url must be an http:// or https:// address, not '{baseUrl}'");

    private static CtlException Refused(HttpStatusCode status, string? reason, string path, string body) => status switch
    {
        HttpStatusCode.Unauthorized => new CtlException("401 Unauthorized: the token was refused (expired, signed with another secret, or longer-lived than the gateway allows)"),
        HttpStatusCode.Forbidden => new CtlException("403 Forbidden: the token has no role=admin claim (ingestctl token --role admin)"),
        _ => new CtlException($"{(int)status} {reason} from {path}: {Program.OneLine(Detail(body))}"),
    };

    private static string Detail(string body)
    {
        try
        {
            return JsonNode.Parse(body) is JsonObject o && o["detail"] is { } d ? d.ToString() : body;
        }
        catch (JsonException)
        {
            return body.Length > 200 ? body[..200] : body;
        }
    }

    internal static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
