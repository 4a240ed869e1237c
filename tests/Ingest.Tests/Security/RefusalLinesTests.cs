using System.Net;
using Ingest.Gateway.Ingest;
using Microsoft.Extensions.Time.Testing;

namespace Ingest.Tests.Security;

/// <summary>One refusal line per status, reason and address per window, on a fake clock (RefusalLines).</summary>
public sealed class RefusalLinesTests
{
    private static readonly IPAddress Guesser = IPAddress.Parse("198.51.100.9");

    [Fact]
    public void Within_a_window_one_line_per_status_reason_and_address_and_the_next_window_says_how_many_were_left_out()
    {
        var clock = new FakeTimeProvider();
        var lines = new RefusalLines(TimeSpan.FromSeconds(60), clock);

        Assert.True(lines.ShouldLog(401, Guesser, "no credentials", out var leftOut));
        Assert.Equal(0, leftOut);
        for (var i = 0; i < 5; i++)
        {
            Assert.False(lines.ShouldLog(401, Guesser, "no credentials", out _));
        }

        // Another reason, status or address has its own line.
        Assert.True(lines.ShouldLog(401, Guesser, "invalid token: SecurityTokenExpiredException", out _));
        Assert.True(lines.ShouldLog(429, Guesser, "no credentials", out _));
        Assert.True(lines.ShouldLog(401, IPAddress.Parse("198.51.100.10"), "no credentials", out _));

        clock.Advance(TimeSpan.FromSeconds(59));
        Assert.False(lines.ShouldLog(401, Guesser, "no credentials", out _));
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True(lines.ShouldLog(401, Guesser, "no credentials", out leftOut));
        Assert.Equal(6, leftOut);
    }

    [Fact]
    public void An_IPv6_caller_is_one_address_per_64_and_0_logs_every_refusal()
    {
        var lines = new RefusalLines(TimeSpan.FromSeconds(60), new FakeTimeProvider());
        Assert.True(lines.ShouldLog(401, IPAddress.Parse("2001:db8:1:2::1"), "no credentials", out _));
        Assert.False(lines.ShouldLog(401, IPAddress.Parse("2001:db8:1:2:ffff::7"), "no credentials", out _));
        Assert.True(lines.ShouldLog(401, IPAddress.Parse("2001:db8:1:3::1"), "no credentials", out _));

        var every = new RefusalLines(TimeSpan.Zero, new FakeTimeProvider());
        Assert.All(Enumerable.Range(0, 3), _ => Assert.True(every.ShouldLog(401, Guesser, "no credentials", out _)));
    }

    [Fact]
    public void Callers_from_more_addresses_than_it_keeps_share_one_line_per_status_and_window()
    {
        var lines = new RefusalLines(TimeSpan.FromSeconds(60), new FakeTimeProvider());
        for (var i = 0; i < RefusalLines.MaxKeys; i++)
        {
            Assert.True(lines.ShouldLog(401, new IPAddress(0x0A000000u + (uint)i), "no credentials", out _));
        }

        Assert.True(lines.ShouldLog(401, IPAddress.Parse("203.0.113.1"), "no credentials", out _));
        Assert.False(lines.ShouldLog(401, IPAddress.Parse("203.0.113.2"), "no credentials", out _));
    }
}
