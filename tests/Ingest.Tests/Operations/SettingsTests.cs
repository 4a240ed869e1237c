using System.Globalization;
using Ingest.Gateway;
using Ingest.Gateway.Ingest;
using Ingest.ServiceDefaults;
using Ingest.Silo;
using Ingest.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;

namespace Ingest.Tests.Operations;

/// <summary>CONTRACT §2: a setting the process cannot use stops it with one line naming the setting (exit code 2).</summary>
public sealed class SettingsTests
{
    [Theory]
    [InlineData("EXOTEL_IP_ALLOWLIST", "127.0.0.010")]   // inet_aton: octal, read as 127.0.0.8
    [InlineData("EXOTEL_IP_ALLOWLIST", "10.1")]          // inet_aton: read as 10.0.0.1
    [InlineData("EXOTEL_IP_ALLOWLIST", "0x7f.0.0.1")]    // hexadecimal part
    [InlineData("EXOTEL_IP_ALLOWLIST", "010.0.0.1")]     // leading zero
    [InlineData("EXOTEL_IP_ALLOWLIST", "127.1")]         // fewer than four parts
    [InlineData("EXOTEL_IP_ALLOWLIST", "1.2.3")]
    [InlineData("EXOTEL_IP_ALLOWLIST", "10.0.0.0/08")]   // leading zero in the prefix
    [InlineData("EXOTEL_IP_ALLOWLIST", "203.0.113.7, 2130706433")] // a single number
    [InlineData("TRUSTED_PROXIES", "127.0.0.010")]
    [InlineData("TRUSTED_PROXIES", "10.1")]
    [InlineData("LISTEN_ADDRESS", "127.0.0.010")]
    [InlineData("LISTEN_ADDRESS", "localhost")]
    [InlineData("TRUSTED_PROXIES", "0x7f.0.0.1")]
    [InlineData("TRUSTED_PROXIES", "010.244.0.0/16")]
    public void A_non_canonical_IPv4_form_is_refused_naming_the_setting(string setting, string value)
    {
        var ex = Assert.Throws<SettingException>(() => GatewaySettings.From(Config(new() { [setting] = value })));
        Assert.Equal(setting, ex.Setting);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Theory]
    [InlineData("10.0.0.1")]
    [InlineData("0.0.0.0/0")]
    [InlineData("10.0.0.0/8, 192.168.1.20, 203.0.113.0/24")]
    [InlineData("::1")]
    [InlineData("2001:db8::/32")]
    public void Canonical_addresses_and_ranges_are_accepted(string value)
    {
        var settings = GatewaySettings.From(Config(new() { ["EXOTEL_IP_ALLOWLIST"] = value, ["TRUSTED_PROXIES"] = value }));
        Assert.False(settings.ExotelAllowList.IsEmpty);
    }

    [Theory]
    [InlineData(null, "0.0.0.0")]
    [InlineData("127.0.0.1", "127.0.0.1")]
    [InlineData("::1", "::1")]
    public void LISTEN_ADDRESS_is_every_interface_unless_set(string? value, string expected)
    {
        var config = Config(value is null ? new() : new() { ["LISTEN_ADDRESS"] = value });
        Assert.Equal(expected, GatewaySettings.From(config).ListenAddress.ToString());
        Assert.Equal(expected, SiloSettings.From(config).ListenAddress.ToString());
    }

    [Fact]
    public async Task A_gateway_given_a_non_canonical_allow_list_exits_with_code_2_and_one_line()
    {
        var outcome = await HostRun.RunAsync(HostRun.GatewayDll, new() { ["EXOTEL_IP_ALLOWLIST"] = "127.0.0.010", ["REDIS_URL"] = "127.0.0.1:1" });
        HostRun.AssertRefused(outcome, "EXOTEL_IP_ALLOWLIST");
    }

    [Fact]
    public void Gateway_settings_never_print_the_Exotel_password_or_the_JWT_secrets()
    {
        var settings = GatewaySettings.From(Config(new()
        {
            ["REDIS_URL"] = "redis://:redis-pass-123@127.0.0.1:6379",
            ["EXOTEL_BASIC_AUTH_USER"] = "exotel",
            ["EXOTEL_BASIC_AUTH_PASS"] = "exotel-pass-456",
            ["JWT_SECRET"] = "native-secret-that-is-long-enough-789!",
            ["ADMIN_JWT_SECRET"] = "admin-secret-that-is-long-enough-000!",
        }));
        var text = settings.ToString() + settings.Limits;
        Assert.Contains("exotel", text, StringComparison.Ordinal);
        Assert.DoesNotContain("redis-pass-123", text, StringComparison.Ordinal);
        Assert.DoesNotContain("exotel-pass-456", text, StringComparison.Ordinal);
        Assert.DoesNotContain("native-secret", text, StringComparison.Ordinal);
        Assert.DoesNotContain("admin-secret", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Silo_settings_never_print_the_Redis_password()
    {
        var settings = SiloSettings.From(Config(new() { ["REDIS_URL"] = "redis://:redis-pass-123@127.0.0.1:6379", ["SILO_ADVERTISED_IP"] = "127.0.0.1" }));
        Assert.DoesNotContain("redis-pass-123", settings.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ADMIN_JWT_SECRET_shorter_than_32_bytes_is_refused()
    {
        var ex = Assert.Throws<SettingException>(() => GatewaySettings.From(Config(new() { ["ADMIN_JWT_SECRET"] = "short" })));
        Assert.Equal("ADMIN_JWT_SECRET", ex.Setting);
    }

    [Fact]
    public void ADMIN_JWT_SECRET_equal_to_JWT_SECRET_is_refused()
    {
        const string secret = "one-secret-that-is-long-enough-for-hs256";
        var ex = Assert.Throws<SettingException>(() => GatewaySettings.From(Config(new() { ["JWT_SECRET"] = secret, ["ADMIN_JWT_SECRET"] = secret })));
        Assert.Equal("ADMIN_JWT_SECRET", ex.Setting);
    }

    [Theory]
    [InlineData("JWT_MAX_LIFETIME_SECONDS", "0")]
    [InlineData("ADMIN_JWT_MAX_LIFETIME_SECONDS", "forever")]
    [InlineData("SHUTDOWN_TIMEOUT_SECONDS", "-5")]
    public void Malformed_new_numbers_are_refused_naming_the_setting(string setting, string value)
    {
        var ex = Assert.Throws<SettingException>(() => GatewaySettings.From(Config(new() { [setting] = value })));
        Assert.Equal(setting, ex.Setting);
    }

    [Fact]
    public async Task A_drain_grace_that_does_not_fit_inside_the_shutdown_timeout_is_refused_in_one_line()
    {
        await using var redis = await RedisServer.StartAsync();
        var outcome = await HostRun.RunAsync(HostRun.GatewayDll, new()
        {
            ["REDIS_URL"] = redis.ConnectionString,
            ["PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            ["DRAIN_GRACE_SECONDS"] = "120",
            ["SHUTDOWN_TIMEOUT_SECONDS"] = "60",
        });
        HostRun.AssertRefused(outcome, "DRAIN_GRACE_SECONDS");
    }

    [Fact]
    public async Task An_orphan_timeout_not_longer_than_the_gateway_heartbeat_is_refused_in_one_line()
    {
        await using var redis = await RedisServer.StartAsync();
        var outcome = await HostRun.RunAsync(HostRun.SiloDll, new()
        {
            ["REDIS_URL"] = redis.ConnectionString,
            ["SILO_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            ["GATEWAY_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            ["SILO_HTTP_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            ["SILO_ADVERTISED_IP"] = "127.0.0.1",
            ["INGEST_ORPHAN_SECONDS"] = "12",
        });
        HostRun.AssertRefused(outcome, "INGEST_ORPHAN_SECONDS");
    }

    [Fact]
    public async Task A_retention_below_60_seconds_is_refused_at_start_in_one_line()
    {
        // CONTRACT §8: any retention the silo accepts keeps a live call whole; 59 s is refused, not run with.
        await using var redis = await RedisServer.StartAsync();
        var outcome = await HostRun.RunAsync(HostRun.SiloDll, new()
        {
            ["REDIS_URL"] = redis.ConnectionString,
            ["SILO_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            ["GATEWAY_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            ["SILO_HTTP_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            ["SILO_ADVERTISED_IP"] = "127.0.0.1",
            ["INGEST_AUDIO_TTL_SECONDS"] = "59",
        });
        HostRun.AssertRefused(outcome, "INGEST_AUDIO_TTL_SECONDS");
        Assert.Contains("from 60", outcome.Stderr[0], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-5")]
    [InlineData("ten")]
    public void A_bound_on_a_calls_events_that_is_not_a_positive_number_is_refused(string value)
    {
        var ex = Assert.Throws<SettingException>(() => SiloSettings.From(Config(new() { ["INGEST_MAX_EVENTS_PER_CALL"] = value, ["SILO_ADVERTISED_IP"] = "127.0.0.1" })));
        Assert.Equal("INGEST_MAX_EVENTS_PER_CALL", ex.Setting);
    }

    [Fact]
    public void The_heartbeat_the_orphan_validator_assumes_is_the_one_the_gateway_sends()
    {
        Assert.Equal(CallForwarder.HeartbeatInterval, Timing.GatewayHeartbeat);
    }

    [Fact]
    public void A_Redis_command_timeout_longer_than_the_grain_call_timeout_is_refused()
    {
        var redis = RedisUrl.Parse("127.0.0.1:6379");
        var validator = new GrainCallTimeoutValidator<TimeSpanBox>(redis, b => b.Value);
        Assert.True(validator.Validate(null, new TimeSpanBox(TimeSpan.FromSeconds(10))).Succeeded);
        var failed = validator.Validate(null, new TimeSpanBox(TimeSpan.FromSeconds(3)));
        Assert.True(failed.Failed);
        Assert.StartsWith("invalid setting REDIS_URL", failed.FailureMessage, StringComparison.Ordinal);
    }

    public sealed record TimeSpanBox(TimeSpan Value);

    private static IConfiguration Config(Dictionary<string, string?> values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values).Build();

    [Theory]
    [InlineData("MAX_CALL_BUFFER_BYTES", "1e6")]
    [InlineData("MAX_CALL_BUFFER_BYTES", "1024")]
    [InlineData("MAX_GATEWAY_BUFFER_BYTES", "0x1000000")]
    [InlineData("IDLE_TIMEOUT_SECONDS", "0")]
    [InlineData("MAX_MESSAGE_BYTES", "+300000")]
    [InlineData("DELIVERY_TIMEOUT_SECONDS", "2.5")]
    public void Each_refused_gateway_limit_names_its_setting_in_one_line(string setting, string value)
    {
        var ex = Assert.Throws<SettingException>(() => GatewaySettings.From(Config(new() { [setting] = value })));
        Assert.Equal(setting, ex.Setting);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void A_per_call_budget_larger_than_the_gateways_is_refused()
    {
        var ex = Assert.Throws<SettingException>(() => GatewaySettings.From(Config(new() { ["MAX_CALL_BUFFER_BYTES"] = "67108864", ["MAX_GATEWAY_BUFFER_BYTES"] = "33554432" })));
        Assert.Equal("MAX_CALL_BUFFER_BYTES", ex.Setting);
    }

    [Theory]
    [InlineData("INGEST_AUDIO_TTL_SECONDS", "0")]
    [InlineData("INGEST_AUDIO_TTL_SECONDS", "15m")]
    [InlineData("INGEST_BUFFER_BYTES", "1000")]
    [InlineData("INGEST_SILO_BUFFER_BYTES", "-1")]
    [InlineData("INGEST_BUFFER_FRAMES", "many")]
    public void Each_refused_silo_ingest_setting_names_its_setting_in_one_line(string setting, string value)
    {
        var ex = Assert.Throws<SettingException>(() => SiloSettings.From(Config(new() { [setting] = value, ["SILO_ADVERTISED_IP"] = "127.0.0.1" })));
        Assert.Equal(setting, ex.Setting);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void Blank_settings_are_unset_and_take_their_defaults()
    {
        var limits = GatewaySettings.From(Config(new() { ["MAX_CALL_BUFFER_BYTES"] = "  ", ["IDLE_TIMEOUT_SECONDS"] = "" })).Limits;
        Assert.Equal(8L * 1024 * 1024, limits.MaxCallBufferBytes);
        Assert.Equal(TimeSpan.FromSeconds(30), limits.IdleTimeout);
    }
}
