using System.Text;
using Ingest.Gateway.Auth;
using Ingest.ServiceDefaults;
using StackExchange.Redis;

namespace Ingest.Gateway;

/// <summary>Every gateway setting (CONTRACT §2 plus the limits), read and validated before the host is built.</summary>
public sealed record GatewaySettings
{
    public required ConfigurationOptions Redis { get; init; }

    public required string ClusterId { get; init; }

    public required string ServiceId { get; init; }

    /// <summary>Set when neither ASPNETCORE_URLS nor urls configuration is given.</summary>
    public int? Port { get; init; }

    /// <summary>LISTEN_ADDRESS: where <see cref="Port"/> listens (default every interface).</summary>
    public System.Net.IPAddress ListenAddress { get; init; } = System.Net.IPAddress.Any;

    public bool? SupportExotel { get; init; }

    public string? ExotelUser { get; init; }

    public string? ExotelPassword { get; init; }

    public required IpRangeList ExotelAllowList { get; init; }

    public required IpRangeList TrustedProxies { get; init; }

    public byte[]? JwtSecret { get; init; }

    /// <summary>ADMIN_JWT_SECRET: when set, admin tokens are validated with it alone (and JWT_SECRET tokens are never admin).</summary>
    public byte[]? AdminJwtSecret { get; init; }

    /// <summary>JWT_MAX_LIFETIME_SECONDS: a native client's token may not be valid for longer than this.</summary>
    public TimeSpan JwtMaxLifetime { get; init; } = TimeSpan.FromHours(24);

    /// <summary>ADMIN_JWT_MAX_LIFETIME_SECONDS: an admin token may not be valid for longer than this.</summary>
    public TimeSpan AdminJwtMaxLifetime { get; init; } = TimeSpan.FromHours(1);

    public string? JwtIssuer { get; init; }

    public string? JwtAudience { get; init; }

    public required GatewayLimits Limits { get; init; }

    public bool ExotelCredentialsConfigured => ExotelUser is not null && ExotelPassword is not null;

    public static GatewaySettings From(IConfiguration configuration)
    {
        var user = Settings.Text(configuration, "EXOTEL_BASIC_AUTH_USER");
        var pass = configuration["EXOTEL_BASIC_AUTH_PASS"];
        if ((user is null) != string.IsNullOrEmpty(pass))
        {
            throw new SettingException(user is null ? "EXOTEL_BASIC_AUTH_USER" : "EXOTEL_BASIC_AUTH_PASS", "Basic credentials need both a user and a password");
        }

        if (user is not null && user.Contains(':', StringComparison.Ordinal))
        {
            throw new SettingException("EXOTEL_BASIC_AUTH_USER", "must not contain ':'");
        }

        var secret = Secret(configuration, "JWT_SECRET");
        var adminSecret = Secret(configuration, "ADMIN_JWT_SECRET");
        if (adminSecret is not null && secret is not null && adminSecret.AsSpan().SequenceEqual(secret))
        {
            throw new SettingException("ADMIN_JWT_SECRET", "must differ from JWT_SECRET (leave it unset for one shared secret)");
        }

        var hasUrls = Settings.Text(configuration, "ASPNETCORE_URLS") is not null || Settings.Text(configuration, "urls") is not null;
        return new GatewaySettings
        {
            Redis = RedisUrl.Parse(configuration[RedisUrl.Setting]),
            ClusterId = Settings.ClusterId(configuration),
            ServiceId = Settings.ServiceId(configuration),
            Port = hasUrls && Settings.Text(configuration, "PORT") is null ? null : Settings.Port(configuration, "PORT", 8080),
            ListenAddress = Settings.ListenAddress(configuration),
            SupportExotel = Settings.OptionalBool(configuration, "SUPPORT_EXOTEL"),
            ExotelUser = user,
            ExotelPassword = user is null ? null : pass,
            ExotelAllowList = IpRangeList.Parse("EXOTEL_IP_ALLOWLIST", configuration["EXOTEL_IP_ALLOWLIST"]),
            TrustedProxies = IpRangeList.Parse("TRUSTED_PROXIES", configuration["TRUSTED_PROXIES"]),
            JwtSecret = secret,
            AdminJwtSecret = adminSecret,
            JwtMaxLifetime = TimeSpan.FromSeconds(Settings.PositiveInt(configuration, "JWT_MAX_LIFETIME_SECONDS", 86_400, 60, 365 * 86_400)),
            AdminJwtMaxLifetime = TimeSpan.FromSeconds(Settings.PositiveInt(configuration, "ADMIN_JWT_MAX_LIFETIME_SECONDS", 3_600, 60, 30 * 86_400)),
            JwtIssuer = Settings.Text(configuration, "JWT_ISSUER"),
            JwtAudience = Settings.Text(configuration, "JWT_AUDIENCE"),
            Limits = GatewayLimits.From(configuration),
        };
    }

    private static byte[]? Secret(IConfiguration configuration, string name)
    {
        if (configuration[name] is not { Length: > 0 } text)
        {
            return null;
        }

        var secret = Encoding.UTF8.GetBytes(text);
        return secret.Length >= 32 ? secret : throw new SettingException(name, "must be at least 32 bytes for HS256");
    }

    /// <summary>Never the generated record printer: it would print the Exotel password and the JWT secrets.</summary>
    public override string ToString() =>
        $"GatewaySettings {{ Redis = {RedisUrl.Describe(Redis)}, ClusterId = {ClusterId}, ServiceId = {ServiceId}, Port = {Port}, ListenAddress = {ListenAddress}, " +
        $"SupportExotel = {SupportExotel}, ExotelUser = {ExotelUser}, ExotelPassword = {Redacted(ExotelPassword)}, " +
        $"JwtSecret = {Redacted(JwtSecret)}, AdminJwtSecret = {Redacted(AdminJwtSecret)}, JwtIssuer = {JwtIssuer}, JwtAudience = {JwtAudience}, Limits = {Limits} }}";

    private static string Redacted(object? secret) => secret is null ? "(none)" : "***";
}

/// <summary>Protective limits, with every default (GatewayLimitsOptions starts from them); the README's configuration table lists each.</summary>
public sealed record GatewayLimits
{
    /// <summary>Largest WebSocket message accepted (Exotel's largest chunk, 100 KB of audio, is ~133 KB as base64).</summary>
    public int MaxMessageBytes { get; init; } = 256 * 1024;

    /// <summary>A call with no message for this long ends with reason idle_timeout.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest call accepted; Exotel's own limit is 60 minutes per stream.</summary>
    public TimeSpan MaxCallDuration { get; init; } = TimeSpan.FromHours(4);

    /// <summary>How long a connection may take to send its start message.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(15);

    public int MaxConnectionsPerAddress { get; init; } = 4000;

    public int MaxConnections { get; init; } = 10_000;

    /// <summary>How long calls in progress may go on after SIGTERM before the gateway ends them.</summary>
    public TimeSpan DrainGrace { get; init; } = DefaultDrainGrace;

    private static readonly TimeSpan DefaultDrainGrace = TimeSpan.FromSeconds(20);

    /// <summary>Time after the drain grace for ending the remaining calls, flushing them and closing the Orleans client.</summary>
    public static readonly TimeSpan FlushAfterDrain = TimeSpan.FromSeconds(25);

    /// <summary>
    /// SHUTDOWN_TIMEOUT_SECONDS, the host's bound on the whole stop; default drain grace + 25 s. The platform's grace
    /// period (Kubernetes terminationGracePeriodSeconds, Render maxShutdownDelaySeconds) must exceed it.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; init; } = DefaultDrainGrace + FlushAfterDrain;

    /// <summary>
    /// Items one call keeps until its grain says they are in Redis: the copy resent after a silo loss. While Redis is
    /// away beyond this, the oldest are held only by the grain's buffer.
    /// </summary>
    public int MaxQueuedFrames { get; init; } = 3000;

    /// <summary>
    /// Items one call may hold not yet handed to its grain before the gateway stops reading its socket (backpressure).
    /// A real-time call has one or two, and 60 s of audio while its grain is unreachable; a sender faster than the cluster
    /// stops here instead of filling the gateway's heap (with 3000 per call, 64 flat-out senders held ~300 MB, and the GC
    /// copying it cost a fifth of the throughput: bench/run.sh, docs/PERFORMANCE.md).
    /// </summary>
    public int MaxUnsentFrames { get; init; } = 600;

    /// <summary>
    /// Audio bytes one call may hold (unsent, and the copy kept for resend). A full call waits up to 2 s (backpressure),
    /// then frames that do not fit are counted and recorded as a buffer_overflow gap (CONTRACT §7: memory in bytes).
    /// </summary>
    public long MaxCallBufferBytes { get; init; } = 8L * 1024 * 1024;

    /// <summary>Audio bytes all calls of this gateway may hold together; beyond it, as for one full call.</summary>
    public long MaxGatewayBufferBytes { get; init; } = 192L * 1024 * 1024;

    /// <summary>How long the socket of an ended call waits for its last frames to be confirmed before it is closed.</summary>
    public TimeSpan CloseWait { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>After the socket is closed, how long delivery of what the call still holds goes on before it is counted as lost.</summary>
    public TimeSpan DeliveryTimeout { get; init; } = TimeSpan.FromSeconds(300);

    /// <summary>Wrong credentials (Basic password, token) one address may present per window before it gets 429.</summary>
    public int AuthFailureLimit { get; init; } = 60;

    /// <summary>The sliding window over which <see cref="AuthFailureLimit"/> is counted.</summary>
    public TimeSpan AuthFailureWindow { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Fixed pause before a 401 for a wrong credential, so guessing is slow even below the limit.</summary>
    public TimeSpan AuthFailureDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>REFUSAL_LOG_SECONDS: one log line per refusal status, reason and address per this long (RefusalLines).</summary>
    public TimeSpan RefusalLogInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Calls per round of the start-up warm-up (WARMUP_CALLS; 0: none).</summary>
    public int WarmupCalls { get; init; } = 128;

    /// <summary>Longest the warm-up holds /readyz at 503 once the cluster answers (WARMUP_MAX_SECONDS).</summary>
    public TimeSpan WarmupMax { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Live-view subscribers one gateway serves at once (MAX_ADMIN_STREAMS).</summary>
    public int MaxAdminStreams { get; init; } = 16;

    /// <summary>Binds and validates <see cref="GatewayLimitsOptions"/> (the options pattern), then turns them into limits.</summary>
    public static GatewayLimits From(IConfiguration c) => From(SettingsOptions.Load(c, new GatewayLimitsOptionsValidator()));

    public static GatewayLimits From(GatewayLimitsOptions o) => new()
    {
        AuthFailureLimit = o.AuthFailureLimit,
        AuthFailureWindow = TimeSpan.FromSeconds(o.AuthFailureWindowSeconds),
        AuthFailureDelay = TimeSpan.FromMilliseconds(o.AuthFailureDelayMs),
        RefusalLogInterval = TimeSpan.FromSeconds(o.RefusalLogSeconds),
        MaxMessageBytes = o.MaxMessageBytes,
        IdleTimeout = TimeSpan.FromSeconds(o.IdleTimeoutSeconds),
        MaxCallDuration = TimeSpan.FromSeconds(o.MaxCallSeconds),
        StartTimeout = TimeSpan.FromSeconds(o.StartTimeoutSeconds),
        KeepAliveInterval = TimeSpan.FromSeconds(o.KeepAliveSeconds),
        MaxConnectionsPerAddress = o.MaxConnectionsPerAddress,
        MaxConnections = o.MaxConnections,
        DrainGrace = TimeSpan.FromSeconds(o.DrainGraceSeconds),
        ShutdownTimeout = o.ShutdownTimeoutSeconds is { } shutdown
            ? TimeSpan.FromSeconds(shutdown)
            : TimeSpan.FromSeconds(o.DrainGraceSeconds) + FlushAfterDrain,
        MaxQueuedFrames = o.MaxQueuedFrames,
        MaxUnsentFrames = o.MaxUnsentFrames,
        MaxCallBufferBytes = o.MaxCallBufferBytes,
        MaxGatewayBufferBytes = o.MaxGatewayBufferBytes,
        DeliveryTimeout = TimeSpan.FromSeconds(o.DeliveryTimeoutSeconds),
        WarmupCalls = o.WarmupCalls,
        WarmupMax = TimeSpan.FromSeconds(o.WarmupMaxSeconds),
        MaxAdminStreams = o.MaxAdminStreams,
    };
}
