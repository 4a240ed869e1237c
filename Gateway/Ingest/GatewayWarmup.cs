using System.Diagnostics;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using Ingest.Grains.Interfaces;
using Ingest.ServiceDefaults;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using IServer = Microsoft.AspNetCore.Hosting.Server.IServer;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Ingest.Gateway.Ingest;

/// <summary>
/// Before the gateway says it is ready, it calls itself: rounds of <see cref="GatewaySettings"/>' WARMUP_CALLS Exotel
/// calls over real loopback WebSockets, paced like real time, through the whole path (Kestrel, the session, the
/// forwarder, the grains and their Redis writes), until a round compiles next to nothing, so the JIT has finished tiering
/// that path up before the first real call (docs/PERFORMANCE.md "Cold start"). Rounds are separated by waits for the
/// background JIT to go quiet. None of it is visible: the calls carry a per-process secret instead of credentials, run
/// in a <see cref="SessionContext"/> of their own (no registry entries, log lines or exported metrics), and write under
/// the warm-up's namespace (<see cref="WarmupCalls"/>), whose keys expire seconds later. Their log lines are formatted
/// as real ones are and discarded (<see cref="DiscardingLoggerFactory"/>), so logging is warm too. The warm-up never holds
/// readiness longer than WARMUP_MAX_SECONDS once the cluster answers; a failed warm-up is logged and the gateway is
/// ready anyway.
/// </summary>
public sealed partial class GatewayWarmup : BackgroundService
{
    public const string Header = "X-Ingest-Warmup";

    /// <summary>The readiness check that is unhealthy until the warm-up is over.</summary>
    public const string CheckName = "warmup";

    private const int FramesPerCall = 40;
    private const int MinRounds = 2;
    private const int MaxRounds = 8;
    private static readonly TimeSpan Cadence = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan SettleSample = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxSettle = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(15);

    private readonly GatewaySettings _settings;
    private readonly HealthCheckService _health;
    private readonly IServer _server;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger<GatewayWarmup> _logger;
    private volatile byte[]? _secret;
    private volatile bool _done;
    private volatile string? _lastFailure;

    public GatewayWarmup(
        GatewaySettings settings,
        HealthCheckService health,
        IConnectionMultiplexer redis,
        IServer server,
        IHostApplicationLifetime lifetime,
        SessionContext live,
        DiscardingLoggerFactory discarding,
        ILogger<GatewayWarmup> logger)
    {
        _settings = settings;
        _health = health;
        _server = server;
        _lifetime = lifetime;
        _logger = logger;
        _done = settings.Limits.WarmupCalls == 0;
        Sessions = live with
        {
            Registry = new SessionRegistry(settings, NullLogger<SessionRegistry>.Instance, redis, GatewayMetrics.Warmup),
            LoggerFactory = discarding,
            Warmup = true,
        };
        if (!_done)
        {
            _secret = Encoding.ASCII.GetBytes(Convert.ToHexString(RandomNumberGenerator.GetBytes(32)));
        }
    }

    /// <summary>True once the warm-up is over (or off): until then /readyz answers 503 "warming up".</summary>
    public bool Done => _done;

    /// <summary>What the warm-up's own calls run in.</summary>
    public SessionContext Sessions { get; }

    /// <summary>Where a refused warm-up call is recorded: its own log, counted on the warm-up's unexported meter.</summary>
    public RefusalLog Refusals { get; } = new(GatewayMetrics.Warmup);

    /// <summary>
    /// True for an upgrade of the warm-up's own: it carries this process's secret (never logged, gone once the warm-up
    /// is over) and comes from a loopback address. Anything else goes through authentication as usual.
    /// </summary>
    public bool Admits(HttpContext http) => Admits(http, _secret);

    /// <summary>
    /// The check of <see cref="Admits(HttpContext)"/> against <paramref name="secret"/>. "From this host" is judged by the
    /// socket (<see cref="SocketPeer"/>), never by an address rewritten from <c>X-Forwarded-For</c>: behind a trusted
    /// proxy a caller could name 127.0.0.1 there.
    /// </summary>
    internal static bool Admits(HttpContext http, byte[]? secret)
    {
        if (secret is null || !http.Request.Headers.TryGetValue(Header, out var presented))
        {
            return false;
        }

        // From this host: loopback, or the address Kestrel was bound to when that is not a wildcard (the connection is then to itself).
        var remote = SocketPeer.Of(http);
        var local = http.Connection.LocalIpAddress;
        var fromHere = remote is not null && (System.Net.IPAddress.IsLoopback(remote) || remote.Equals(local));
        return fromHere && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(presented.ToString()), secret);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_done)
        {
            return;
        }

        try
        {
            await WaitStartedAsync(stoppingToken);
            if (LoopbackUri() is not { } uri)
            {
                LogNoAddress();
                return;
            }

            await WaitForClusterAsync(stoppingToken);
            LogStarting(_settings.Limits.WarmupCalls, _settings.Limits.WarmupMax.TotalSeconds);
            using var budget = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            budget.CancelAfter(_settings.Limits.WarmupMax);
            await RunRoundsAsync(uri, budget.Token, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex)
        {
            LogFailed(ex);
        }
        finally
        {
            _secret = null;
            _done = true;
        }
    }

    private async Task RunRoundsAsync(Uri uri, CancellationToken budget, CancellationToken stopping)
    {
        var clock = Stopwatch.StartNew();
        // Never more at once than this gateway lets one address (or anyone) have: its own calls are not refused either.
        var limits = _settings.Limits;
        var calls = Math.Min(limits.WarmupCalls, Math.Min(limits.MaxConnections, limits.MaxConnectionsPerAddress));
        var payload = Payload(limits.MaxMessageBytes);
        double firstRoundJitMs = 0;
        var rounds = 0;
        var failed = 0;
        var compiledBefore = System.Runtime.JitInfo.GetCompiledMethodCount();
        try
        {
            while (rounds < MaxRounds)
            {
                rounds++;
                var jitBefore = System.Runtime.JitInfo.GetCompilationTime();
                var results = await Task.WhenAll(Enumerable.Range(0, calls).Select(i => CallAsync(uri, rounds, i, calls, payload, budget)));
                failed += results.Count(ok => !ok);
                if (!results.Any(ok => ok))
                {
                    // Not one call got through (an address it cannot reach itself on, a cluster that refuses): stop here.
                    LogNoCall(rounds, _lastFailure ?? "unknown");
                    return;
                }

                await SettleAsync(budget);
                var jitMs = (System.Runtime.JitInfo.GetCompilationTime() - jitBefore).TotalMilliseconds;
                LogRound(rounds, calls, results.Count(ok => ok), jitMs);
                if (rounds == 1)
                {
                    firstRoundJitMs = jitMs;
                }
                else if (rounds >= MinRounds && jitMs <= firstRoundJitMs / 10)
                {
                    break;
                }
            }

            LogWarm(rounds, calls, clock.Elapsed.TotalSeconds, System.Runtime.JitInfo.GetCompiledMethodCount() - compiledBefore, failed);
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            LogOutOfTime(_settings.Limits.WarmupMax.TotalSeconds, rounds);
        }
    }

    /// <summary>One Exotel call of the warm-up; false if it did not end normally (logged at Debug, the round goes on).</summary>
    private async Task<bool> CallAsync(Uri uri, int round, int index, int calls, string payload, CancellationToken budget)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(budget);
        timeout.CancelAfter(CallTimeout);
        var token = timeout.Token;
        var id = $"r{round}c{index}-{Guid.NewGuid():N}";
        try
        {
            using var socket = new ClientWebSocket();
            socket.Options.Proxy = null; // to itself, never through an HTTP_PROXY of the environment
            socket.Options.SetRequestHeader(Header, Encoding.ASCII.GetString(_secret ?? []));
            await socket.ConnectAsync(uri, token);
            await SendAsync(socket, """{"event":"connected"}""", token);
            await SendAsync(socket, StartMessage(id), token);

            // Paced like real time (reads that wait, timers re-armed), the calls spread over one interval.
            var first = Stopwatch.GetTimestamp() + (long)(Cadence.TotalSeconds * Stopwatch.Frequency * index / calls);
            for (var chunk = 1; chunk <= FramesPerCall; chunk++)
            {
                var due = first + (long)((chunk - 1) * Cadence.TotalSeconds * Stopwatch.Frequency);
                if (Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due) is { Ticks: > 0 } wait)
                {
                    await Task.Delay(wait, token);
                }

                await SendAsync(socket, MediaMessage(id, chunk, payload), token);
            }

            await SendAsync(socket, $$$"""{"event":"mark","sequence_number":"{{{FramesPerCall + 2}}}","stream_sid":"{{{id}}}","mark":{"name":"warmup"}}""", token);
            await SendAsync(socket, $$$"""{"event":"stop","sequence_number":"{{{FramesPerCall + 3}}}","stream_sid":"{{{id}}}","stop":{"call_sid":"warmup","account_sid":"warmup","reason":"stopped"}}""", token);

            // The gateway closes once everything is confirmed in Redis.
            var buffer = new byte[256];
            while ((await socket.ReceiveAsync(buffer, token)).MessageType != WebSocketMessageType.Close)
            {
            }

            await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, token);
            if (socket.CloseStatus != WebSocketCloseStatus.NormalClosure)
            {
                _lastFailure = $"closed {(int?)socket.CloseStatus} {socket.CloseStatusDescription}";
                return false;
            }

            return true;
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            if (budget.IsCancellationRequested)
            {
                throw new OperationCanceledException(budget);
            }

            _lastFailure = ex.Message;
            LogCallFailed(ex, id);
            return false;
        }
    }

    /// <summary>
    /// The audio of every warm-up frame, base64: 100 ms at 8 kHz (1,600 B), or the largest multiple of 320 B (Exotel's
    /// chunk grid) whose media message fits in MAX_MESSAGE_BYTES, so a gateway set up for small frames does not refuse
    /// its own warm-up with 1009.
    /// </summary>
    private static string Payload(int maxMessageBytes)
    {
        // The longest stream id a warm-up call has: round ≤ MaxRounds, index < WARMUP_CALLS ≤ 1,000.
        var longestId = $"r{MaxRounds}c1000-{Guid.Empty:N}";
        for (var bytes = 1600; ; bytes -= 320)
        {
            var payload = Convert.ToBase64String(Enumerable.Range(0, bytes).Select(i => (byte)(i * 37)).ToArray());
            if (bytes == 320 || Encoding.UTF8.GetByteCount(MediaMessage(longestId, FramesPerCall, payload)) <= maxMessageBytes)
            {
                return payload;
            }
        }
    }

    private static string MediaMessage(string id, int chunk, string payload) =>
        $$$"""{"event":"media","sequence_number":{{{chunk + 1}}},"stream_sid":"{{{id}}}","media":{"chunk":{{{chunk}}},"timestamp":"{{{chunk * 100}}}","payload":"{{{payload}}}"}}""";

    private static string StartMessage(string id) =>
        "{\"event\":\"start\",\"sequence_number\":\"1\",\"stream_sid\":\"" + id + "\",\"start\":{\"stream_sid\":\"" + id
        + "\",\"call_sid\":\"warmup\",\"account_sid\":\"warmup\",\"from\":\"0\",\"to\":\"0\",\"custom_parameters\":{\"warmup\":\"1\"},"
        + "\"media_format\":{\"encoding\":\"audio/x-raw\",\"sample_rate\":\"8000\",\"bit_rate\":\"16\"}}}";

    private static Task SendAsync(ClientWebSocket socket, string message, CancellationToken token) =>
        socket.SendAsync(Encoding.UTF8.GetBytes(message), WebSocketMessageType.Text, true, token);

    /// <summary>Waits, bounded, until the background JIT has gone quiet (under 5 % busy over a sample).</summary>
    private static async Task SettleAsync(CancellationToken token)
    {
        var until = Stopwatch.GetTimestamp() + (long)(MaxSettle.TotalSeconds * Stopwatch.Frequency);
        var last = System.Runtime.JitInfo.GetCompilationTime();
        while (Stopwatch.GetTimestamp() < until)
        {
            await Task.Delay(SettleSample, token);
            var now = System.Runtime.JitInfo.GetCompilationTime();
            if ((now - last).TotalMilliseconds < SettleSample.TotalMilliseconds / 20)
            {
                return;
            }

            last = now;
        }
    }

    private Task WaitStartedAsync(CancellationToken token)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _lifetime.ApplicationStarted.Register(() => started.TrySetResult());
        return started.Task.WaitAsync(token);
    }

    /// <summary>Until every other readiness check passes (Redis, the cluster, the flags): only then would /readyz say 200.</summary>
    private async Task WaitForClusterAsync(CancellationToken token)
    {
        while ((await _health.CheckHealthAsync(r => r.Tags.Contains(ServiceDefaultsExtensions.ReadyTag) && r.Name != CheckName, token)).Status != HealthStatus.Healthy)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(250), token);
        }
    }

    /// <summary>Where the warm-up calls this gateway, from the addresses Kestrel listens on.</summary>
    private Uri? LoopbackUri() => LoopbackUri(_server.Features.Get<IServerAddressesFeature>()?.Addresses ?? []);

    /// <summary>
    /// Where the gateway reaches itself: the first plain-HTTP address it listens on, a wildcard (or localhost) as
    /// 127.0.0.1, IPv6 loopback as [::1] (a gateway bound to [::1] alone does not answer on 127.0.0.1); null without one.
    /// </summary>
    internal static Uri? LoopbackUri(IEnumerable<string> addresses)
    {
        foreach (var address in addresses)
        {
            if (!Uri.TryCreate(address.Replace("://+", "://localhost", StringComparison.Ordinal).Replace("://*", "://localhost", StringComparison.Ordinal), UriKind.Absolute, out var bound)
                || bound.Scheme != Uri.UriSchemeHttp)
            {
                continue;
            }

            var host = bound.Host is "0.0.0.0" or "[::]" or "localhost" ? "127.0.0.1"
                : bound.IsLoopback && bound.HostNameType == UriHostNameType.IPv6 ? "[::1]"
                : bound.IsLoopback ? "127.0.0.1"
                : bound.Host;
            return new Uri($"ws://{host}:{bound.Port}/v1/ingest");
        }

        return null;
    }

    [LoggerMessage(EventId = 6501, Level = LogLevel.Information, Message = "Warm-up: calling itself, {Calls} calls per round, before /readyz says ready (at most {Seconds} s)")]
    private partial void LogStarting(int calls, double seconds);

    [LoggerMessage(EventId = 6502, Level = LogLevel.Debug, Message = "Warm-up round {Round}: {Ok} of {Calls} calls ended normally; {JitMs:F0} ms of JIT")]
    private partial void LogRound(int round, int calls, int ok, double jitMs);

    [LoggerMessage(EventId = 6503, Level = LogLevel.Information, Message = "Warm-up done: {Rounds} round(s) of {Calls} calls in {Seconds:F1} s, {Methods} methods compiled, {Failed} call(s) failed; ready")]
    private partial void LogWarm(int rounds, int calls, double seconds, long methods, int failed);

    [LoggerMessage(EventId = 6504, Level = LogLevel.Warning, Message = "Warm-up not finished within WARMUP_MAX_SECONDS ({Seconds} s, {Rounds} round(s) begun); ready anyway")]
    private partial void LogOutOfTime(double seconds, int rounds);

    [LoggerMessage(EventId = 6505, Level = LogLevel.Debug, Message = "Warm-up call {Id} failed")]
    private partial void LogCallFailed(Exception exception, string id);

    [LoggerMessage(EventId = 6506, Level = LogLevel.Warning, Message = "Warm-up stopped in round {Round}: none of its calls got through ({Why}); ready anyway, on cold code")]
    private partial void LogNoCall(int round, string why);

    [LoggerMessage(EventId = 6507, Level = LogLevel.Warning, Message = "Warm-up skipped: Kestrel listens on no http address")]
    private partial void LogNoAddress();

    [LoggerMessage(EventId = 6508, Level = LogLevel.Warning, Message = "Warm-up failed; ready anyway")]
    private partial void LogFailed(Exception exception);
}
