using System.Collections;
using System.Globalization;
using System.Text;

namespace Ingest.Relay;

/// <summary>The relay reads the same variables as the gateway (CONTRACT §2), only the ones it needs.</summary>
public sealed record RelaySettings(string RedisConfiguration, int Port, string ExpectedAuthorization, int AudioStreamMaxLength)
{
    public static RelaySettings From(IDictionary environment)
    {
        string Get(string name, string fallback) => environment[name] as string is { Length: > 0 } value ? value : fallback;

        var user = Get("EXOTEL_BASIC_AUTH_USER", "exotel");
        var pass = Get("EXOTEL_BASIC_AUTH_PASS", "local-exotel-secret");
        return new RelaySettings(
            Get("REDIS_URL", "127.0.0.1:6379"),
            int.Parse(Get("PORT", "8090"), CultureInfo.InvariantCulture),
            "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(user + ":" + pass)),
            36_000);
    }
}
