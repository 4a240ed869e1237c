using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Ingest.Grains;
using Ingest.ServiceDefaults;
using StackExchange.Redis;

namespace Ingest.Silo;

/// <summary>Everything the silo reads from its environment, validated before the host is built.</summary>
public sealed record SiloSettings
{
    public required ConfigurationOptions Redis { get; init; }

    public required string ClusterId { get; init; }

    public required string ServiceId { get; init; }

    public required int SiloPort { get; init; }

    public required int GatewayPort { get; init; }

    /// <summary>Port of the small HTTP listener for /healthz, /readyz and /metrics; 0 = any free port on loopback.</summary>
    public required int HttpPort { get; init; }

    /// <summary>The default SILO_HTTP_PORT for the default SILO_PORT; each other SILO_PORT shifts it by the same amount.</summary>
    public const int DefaultHttpPort = 8081;

    public const int DefaultSiloPort = 11111;

    public required IPAddress AdvertisedIp { get; init; }

    /// <summary>LISTEN_ADDRESS: where the silo, gateway and HTTP ports listen (default every interface).</summary>
    public required IPAddress ListenAddress { get; init; }

    /// <summary>SUPPORT_EXOTEL when explicitly set at start; null leaves the persisted value alone.</summary>
    public bool? SupportExotel { get; init; }

    public required Action<IngestOptions> Ingest { get; init; }

    /// <summary>
    /// INGEST_AUDIO_MAXLEN as given (null when unset). Audio streams have no length cap (a live call is never trimmed
    /// from its head; streams expire by age after their stop, CONTRACT §8), so a value is only warned about at start.
    /// </summary>
    public string? IgnoredAudioMaxLength { get; init; }

    public const string AudioMaxLengthSetting = "INGEST_AUDIO_MAXLEN";

    public static SiloSettings From(IConfiguration configuration)
    {
        var ingest = SettingsOptions.Load(configuration, new IngestSettingsOptionsValidator());
        var siloPort = Settings.Port(configuration, "SILO_PORT", DefaultSiloPort);
        return new SiloSettings
        {
            Redis = RedisUrl.Parse(configuration[RedisUrl.Setting]),
            ClusterId = Settings.ClusterId(configuration),
            ServiceId = Settings.ServiceId(configuration),
            SiloPort = siloPort,
            GatewayPort = Settings.Port(configuration, "GATEWAY_PORT", 30000),
            HttpPort = Settings.Text(configuration, "SILO_HTTP_PORT") is null
                ? DefaultHttpPortFor(siloPort)
                : Settings.PositiveInt(configuration, "SILO_HTTP_PORT", DefaultHttpPort, 0, 65535),
            AdvertisedIp = AdvertisedAddress(configuration),
            ListenAddress = Settings.ListenAddress(configuration),
            SupportExotel = Settings.OptionalBool(configuration, "SUPPORT_EXOTEL"),
            IgnoredAudioMaxLength = Settings.Text(configuration, AudioMaxLengthSetting),
            Ingest = o =>
            {
                o.BufferLimit = ingest.BufferFrames;
                o.OrphanTimeout = TimeSpan.FromSeconds(ingest.OrphanSeconds);
                o.StreamTtl = TimeSpan.FromSeconds(ingest.AudioTtlSeconds);
                o.BufferBytes = ingest.BufferBytes;
                o.SiloBufferBytes = ingest.SiloBufferBytes;
                o.WaitReplicas = ingest.WaitReplicas;
                o.WaitTimeout = TimeSpan.FromMilliseconds(ingest.WaitTimeoutMs);
                o.MaxEventsPerCall = ingest.MaxEventsPerCall;
            },
        };
    }

    /// <summary>
    /// SILO_HTTP_PORT when unset: 8081 for SILO_PORT 11111 and shifted with it (11112 gives 8082), so silos on one host
    /// that differ only in SILO_PORT never share an HTTP port.
    /// </summary>
    public static int DefaultHttpPortFor(int siloPort)
    {
        var port = DefaultHttpPort + (siloPort - DefaultSiloPort);
        return port is >= 1024 and <= 65535
            ? port
            : throw new SettingException("SILO_HTTP_PORT", $"no default for SILO_PORT {siloPort} (it would be {port}); set SILO_HTTP_PORT");
    }

    /// <summary>Never the generated record printer: REDIS_URL may carry a password.</summary>
    public override string ToString() =>
        $"SiloSettings {{ Redis = {RedisUrl.Describe(Redis)}, ClusterId = {ClusterId}, ServiceId = {ServiceId}, SiloPort = {SiloPort}, " +
        $"GatewayPort = {GatewayPort}, HttpPort = {HttpPort}, AdvertisedIp = {AdvertisedIp}, ListenAddress = {ListenAddress}, SupportExotel = {SupportExotel} }}";

    private static IPAddress AdvertisedAddress(IConfiguration configuration)
    {
        if (Settings.Text(configuration, "SILO_ADVERTISED_IP") is { } text)
        {
            return IPAddress.TryParse(text, out var ip) ? ip : throw new SettingException("SILO_ADVERTISED_IP", "not an IP address");
        }

        // Containers and VMs: the first non-loopback IPv4 address; a bare laptop falls back to loopback.
        var address = NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork);
        return address ?? IPAddress.Loopback;
    }
}

internal static partial class SiloStartupLog
{
    [LoggerMessage(EventId = 5101, Level = LogLevel.Warning, Message = "INGEST_AUDIO_MAXLEN={Value} is not used: audio streams have no length cap, a live call is never trimmed from its head, and a stream's keys expire INGEST_AUDIO_TTL_SECONDS after its stop (docs/OPERATIONS.md \"Retention and sizing\")")]
    public static partial void AudioMaxLengthIgnored(ILogger logger, string value);
}
