using StackExchange.Redis;

namespace Ingest.ServiceDefaults;

/// <summary>
/// Turns REDIS_URL into StackExchange.Redis options. Accepts <c>host:port</c>, a StackExchange.Redis
/// configuration string, or <c>redis://[user][:password@]host[:port][/db]</c> / <c>rediss://</c>.
/// </summary>
public static class RedisUrl
{
    public const string Setting = "REDIS_URL";
    public const string Default = "localhost:6379";

    public static ConfigurationOptions Parse(string? value)
    {
        var text = string.IsNullOrWhiteSpace(value) ? Default : value.Trim();
        ConfigurationOptions options;
        if (text.StartsWith("redis://", StringComparison.OrdinalIgnoreCase) ||
            text.StartsWith("rediss://", StringComparison.OrdinalIgnoreCase))
        {
            options = ParseUri(text);
        }
        else
        {
            try
            {
                options = ConfigurationOptions.Parse(text);
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException or RedisConnectionException)
            {
                throw new SettingException(Setting, "not a host:port, StackExchange.Redis configuration string or redis:// URL");
            }
        }

        if (options.EndPoints.Count == 0)
        {
            throw new SettingException(Setting, "no Redis host given");
        }

        foreach (var endpoint in options.EndPoints)
        {
            var valid = endpoint switch
            {
                System.Net.DnsEndPoint dns => Uri.CheckHostName(dns.Host) != UriHostNameType.Unknown && dns.Port is >= 0 and <= 65535,
                System.Net.IPEndPoint => true,
                _ => false,
            };
            if (!valid)
            {
                throw new SettingException(Setting, "a Redis host is not a valid host name or address");
            }
        }

        // Keep retrying in the background instead of failing the process when Redis is briefly away,
        // and fail commands at once while disconnected so callers can buffer instead of hanging.
        options.AbortOnConnectFail = false;
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.ConnectRetry = 3;
        options.ConnectTimeout = 2000;
        options.SyncTimeout = 5000;
        options.AsyncTimeout = 5000;
        options.KeepAlive = 5;
        options.ReconnectRetryPolicy = new LinearRetry(500);

        // Run the client's socket reads on the .NET thread pool instead of its own dedicated threads: on a small node
        // every hand-off between the two pools is a futex wake and a context switch (bench/run.sh, docs/PERFORMANCE.md).
        options.SocketManager = SocketManager.ThreadPool;
        return options;
    }

    /// <summary>The endpoint list without any password, for log lines.</summary>
    public static string Describe(ConfigurationOptions options) =>
        string.Join(",", options.EndPoints.Select(e => e.ToString())) + (options.Ssl ? " (tls)" : string.Empty);

    private static ConfigurationOptions ParseUri(string text)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            throw new SettingException(Setting, "not a valid redis:// URL");
        }

        var options = new ConfigurationOptions
        {
            Ssl = uri.Scheme.Equals("rediss", StringComparison.OrdinalIgnoreCase),
        };
        var port = uri.IsDefaultPort || uri.Port <= 0 ? 6379 : uri.Port;
        options.EndPoints.Add(uri.Host, port);

        if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            var userInfo = Uri.UnescapeDataString(uri.UserInfo);
            var colon = userInfo.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0)
            {
                options.Password = userInfo;
            }
            else
            {
                var user = userInfo[..colon];
                if (user.Length > 0)
                {
                    options.User = user;
                }

                options.Password = userInfo[(colon + 1)..];
            }
        }

        var path = uri.AbsolutePath.Trim('/');
        if (path.Length > 0)
        {
            if (!int.TryParse(path, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var db) || db > 15)
            {
                throw new SettingException(Setting, "the database after the host must be a number from 0 to 15");
            }

            options.DefaultDatabase = db;
        }

        return options;
    }
}
