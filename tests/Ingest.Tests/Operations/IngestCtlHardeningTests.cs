using StackExchange.Redis;

namespace Ingest.Tests.Operations;

/// <summary>
/// Issue 24 item 6, ingestctl's part: it never prints a Redis password, reads <c>redis://</c> URLs as the hosts do
/// (ACL users, passwords with <c>,</c> and <c>=</c>), cannot be made to allocate gigabytes by one hostile gap entry, and
/// prints callers' free text with its control characters escaped. A real redis-server, ingestctl as a process.
/// </summary>
public sealed class IngestCtlHardeningTests : IAsyncLifetime
{
    private RedisServer _redis = null!;
    private ConnectionMultiplexer _connection = null!;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartAsync();
        _connection = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString + ",allowAdmin=true");
    }

    public async Task DisposeAsync()
    {
        await _connection.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [Theory]
    [InlineData("redis://operator:s3cret-pw@127.0.0.1:1")]
    [InlineData("127.0.0.1:1,password=s3cret-pw")]
    public async Task A_redis_that_cannot_be_reached_is_named_without_its_password(string url)
    {
        var outcome = await HostRun.RunAsync(HostRun.IngestCtlDll, [], ["dump", "some-call", "--redis", url]);
        Assert.Equal(1, outcome.ExitCode);
        Assert.Contains("cannot reach Redis at 127.0.0.1:1", string.Join('\n', outcome.Stderr), StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-pw", outcome.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_acl_user_whose_password_holds_commas_and_equals_signs_connects()
    {
        await _connection.GetServer(_redis.ConnectionString).ExecuteAsync("ACL", "SETUSER", "operator", "on", ">p,a=ss", "~*", "&*", "+@all");
        var url = $"redis://operator:{Uri.EscapeDataString("p,a=ss")}@127.0.0.1:{_redis.Port}";
        var outcome = await HostRun.RunAsync(HostRun.IngestCtlDll, [], ["dump", "no-such-call", "--redis", url]);

        // Connected and authenticated: what it says is that the call is not there.
        Assert.Equal(1, outcome.ExitCode);
        Assert.Contains("nothing in Redis for stream 'no-such-call'", string.Join('\n', outcome.Stderr), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_hostile_gap_entry_is_bounded_and_callers_text_is_printed_escaped()
    {
        var id = "hostile-" + Guid.NewGuid().ToString("N")[..8];
        var db = _connection.GetDatabase();
        await db.StreamAddAsync("ingest:calls", [new("stream_id", id), new("event", "start"), new("sample_rate", "8000"), new("encoding", "pcm16le")]);
        await db.StreamAddAsync("ingest:audio:{" + id + "}", [new("seq", "2"), new("i", "1:1"), new("audio", new byte[320])]);
        await db.StreamAddAsync("ingest:calls", [new("stream_id", id), new("event", "gap"), new("from_seq", "3"), new("to_seq", "999999999999"), new("missing", "999999999997"), new("reason", "missing")]);
        await db.StreamAddAsync("ingest:audio:{" + id + "}", [new("seq", "999999999999"), new("i", "2:2"), new("audio", new byte[320])]);
        await db.StreamAddAsync("ingest:calls", [new("stream_id", id), new("event", "stop"), new("reason", "bye\u001b]0;owned\u0007\u001b[2J"), new("frames", "2")]);

        var wav = Path.Combine(Path.GetTempPath(), id + ".wav");
        try
        {
            var outcome = await HostRun.RunAsync(HostRun.IngestCtlDll, [], ["dump", id, "--redis", _redis.ConnectionString, "--output", wav], TimeSpan.FromSeconds(60));
            Assert.True(outcome.ExitCode == 0, outcome.ToString());
            Assert.Contains(outcome.Stderr, l => l.Contains("claims 999999999997 missing frames", StringComparison.Ordinal));

            // Four hours of 8 kHz PCM16 at most (the longest call), not 320 TB.
            Assert.InRange(new FileInfo(wav).Length, 4L * 3600 * 16000, (4L * 3600 * 16000) + 4096);

            // The stop reason is printed, its escape sequences as text.
            var printed = string.Join('\n', outcome.Stdout);
            Assert.Contains("bye\\u001b]0;owned\\u0007\\u001b[2J", printed, StringComparison.Ordinal);
            Assert.DoesNotContain('\u001b', printed);
            Assert.DoesNotContain('\u0007', printed);
        }
        finally
        {
            File.Delete(wav);
            File.Delete(wav + ".json");
        }
    }
}
