using System.CommandLine.Parsing;
using System.CommandLine;
using System.Globalization;
using Ingest.Grains.Interfaces;

namespace Ingest.Ctl;

internal static class Common
{
    public static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;

    /// <summary>A whole-number option with bounds; a value that is no number or outside them is a usage error naming the option.</summary>
    public static Option<int> IntOption(string name, string description, int defaultValue, int min, int max) => new(name)
    {
        Description = $"{description} ({min}..{max}, default {defaultValue})",
        DefaultValueFactory = _ => defaultValue,
        CustomParser = r => Bounded(r, name, min, max) ?? defaultValue,
    };

    public static Option<int?> OptionalInt(string name, string description, int min, int max) => new(name)
    {
        Description = $"{description} ({min}..{max})",
        CustomParser = r => Bounded(r, name, min, max),
    };

    private static int? Bounded(ArgumentResult r, string name, int min, int max)
    {
        var text = r.Tokens.Count > 0 ? r.Tokens[^1].Value : "";
        if (int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max)
        {
            return value;
        }

        r.AddError($"{name} must be a whole number from {min} to {max}, not '{text}'");
        return null;
    }

    /// <summary>Durations like 90s, 15m, 1h, 2d, or plain seconds.</summary>
    public static TimeSpan? ParseDuration(string text)
    {
        text = text.Trim();
        if (text.Length == 0)
        {
            return null;
        }

        var unit = char.ToLowerInvariant(text[^1]);
        var number = char.IsDigit(unit) ? text : text[..^1];
        if (!double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n) || n <= 0)
        {
            return null;
        }

        return unit switch
        {
            's' => TimeSpan.FromSeconds(n),
            'm' => TimeSpan.FromMinutes(n),
            'h' => TimeSpan.FromHours(n),
            'd' => TimeSpan.FromDays(n),
            _ when char.IsDigit(unit) => TimeSpan.FromSeconds(n),
            _ => null,
        };
    }

    public static Option<string> RedisOption() => new("--redis")
    {
        Description = "Redis holding the streams: host:port or a StackExchange.Redis configuration string (env REDIS_URL; default 127.0.0.1:6380, the local stack's)",
        DefaultValueFactory = _ => Env("REDIS_URL") ?? "127.0.0.1:6380",
    };

    /// <summary>
    /// Connects as the silo and gateway do: <c>--redis</c> is read by the same parser as their <c>REDIS_URL</c>
    /// (<c>ServiceDefaults/RedisUrl.cs</c>, compiled in), so an ACL user or password with <c>,</c> or <c>=</c> in a
    /// <c>redis://</c> URL works, and no message ever shows the password (only the endpoints).
    /// </summary>
    public static async Task<StackExchange.Redis.ConnectionMultiplexer> ConnectRedisAsync(string text)
    {
        StackExchange.Redis.ConfigurationOptions options;
        try
        {
            options = Ingest.ServiceDefaults.RedisUrl.Parse(text);
        }
        catch (Ingest.ServiceDefaults.SettingException ex)
        {
            throw CtlException.Usage(ex.Message + " (--redis)");
        }

        options.AbortOnConnectFail = true;
        options.ConnectTimeout = 3000;
        options.ConnectRetry = 1;
        try
        {
            return await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(options);
        }
        catch (StackExchange.Redis.RedisConnectionException ex)
        {
            var why = ex.FailureType == StackExchange.Redis.ConnectionFailureType.AuthenticationFailure ? "the user or password was refused" : "is the stack running? tools/run-local.sh uses 127.0.0.1:6380";
            throw new CtlException($"cannot reach Redis at {Ingest.ServiceDefaults.RedisUrl.Describe(options)} ({why})");
        }
    }

    public static string AudioKey(string streamId) => StreamKeys.Audio(streamId);

    public static CancellationToken CtrlC()
    {
        var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cts.Cancel();
        };
        return cts.Token;
    }

    /// <summary>Progress on stderr, only where someone watches (a terminal); redirected output stays clean.</summary>
    public static void Progress(string text)
    {
        if (!Console.IsErrorRedirected)
        {
            Console.Error.Write("\r" + text.PadRight(70));
        }
    }

    public static void ProgressDone()
    {
        if (!Console.IsErrorRedirected)
        {
            Console.Error.Write("\r" + new string(' ', 70) + "\r");
        }
    }

    public static string Table(IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows)
    {
        var all = rows.ToList();
        var widths = headers.Select((h, i) => Math.Max(h.Length, all.Count == 0 ? 0 : all.Max(r => r[i].Length))).ToArray();
        var sb = new System.Text.StringBuilder();
        sb.AppendLine(string.Join("  ", headers.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
        foreach (var row in all)
        {
            sb.AppendLine(string.Join("  ", row.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
        }

        return sb.ToString().TrimEnd('\n', '\r');
    }
}
