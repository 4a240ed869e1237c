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

    /// <summary>The setting that names the local address every port of the process listens on.</summary>
    public const string ListenAddressSetting = "LISTEN_ADDRESS";

    /// <summary>
    /// CONTRACT §2: the address the process's ports listen on: <c>0.0.0.0</c> (every interface: containers, VMs) by
    /// default; a local run (tools/run-local.sh, the QA kit) sets <c>127.0.0.1</c>. Written canonically, like every
    /// address setting.
    /// </summary>
    public static System.Net.IPAddress ListenAddress(IConfiguration configuration)
    {
        var value = Text(configuration, ListenAddressSetting);
        if (value is null)
        {
            return System.Net.IPAddress.Any;
        }

        return System.Net.IPAddress.TryParse(value, out var address) && address.ToString() == value
            ? address
            : throw new SettingException(ListenAddressSetting, "must be an IP address written canonically (0.0.0.0, 127.0.0.1, ::, ::1)");
    }

    /// <summary>An http:// URL Kestrel listens on: <paramref name="address"/> and <paramref name="port"/>.</summary>
    public static string ListenUrl(System.Net.IPAddress address, int port) =>
        address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
            ? $"http://[{address}]:{port.ToString(CultureInfo.InvariantCulture)}"
            : $"http://{address}:{port.ToString(CultureInfo.InvariantCulture)}";
}
