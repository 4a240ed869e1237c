using System.Globalization;
using Microsoft.Extensions.Configuration;

namespace Ingest.ServiceDefaults;

/// <summary>Reads CONTRACT §2 settings from configuration (environment variables first) and validates them.</summary>
public static class Settings
{
    public const string DefaultClusterId = "rtaa-ingest";

    public static string ClusterId(IConfiguration configuration) => Text(configuration, "CLUSTER_ID") ?? DefaultClusterId;

    public static string ServiceId(IConfiguration configuration) => Text(configuration, "SERVICE_ID") ?? DefaultClusterId;

    public static string? Text(IConfiguration configuration, string name)
    {
        var value = configuration[name];
        return string.IsNullOrWhiteSpace(value) ? null : value.Trim();
    }

    public static int Port(IConfiguration configuration, string name, int defaultValue)
    {
        var value = Text(configuration, name);
        if (value is null)
        {
            return defaultValue;
        }

        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            throw new SettingException(name, "must be a port number from 1 to 65535");
        }

        return port;
    }

    public static int PositiveInt(IConfiguration configuration, string name, int defaultValue, int min = 1, int max = int.MaxValue)
    {
        var value = Text(configuration, name);
        if (value is null)
        {
            return defaultValue;
        }

        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number < min || number > max)
        {
            throw new SettingException(name, $"must be a whole number from {min} to {max}");
        }

        return number;
    }

    /// <summary>Null when the setting is absent, so callers can tell "not set" from "false".</summary>
    public static bool? OptionalBool(IConfiguration configuration, string name)
    {
        var value = Text(configuration, name);
        if (value is null)
        {
            return null;
        }

        return value.ToLowerInvariant() switch
        {
            "true" or "1" or "yes" or "on" => true,
            "false" or "0" or "no" or "off" => false,
            _ => throw new SettingException(name, "must be true or false"),
        };
    }
}
