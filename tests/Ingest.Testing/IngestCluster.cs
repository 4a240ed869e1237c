using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Orleans;
using Orleans.Runtime;
using StackExchange.Redis;

namespace Ingest.Testing;

/// <summary>
/// A whole Ingest deployment in the test process: a real <c>redis-server</c> on a free port, N silos and one gateway on
/// free ports, each built by the shipped host code (<c>SiloHost.BuildAsync</c>, <c>GatewayHost.BuildAsync</c>), so
/// what a test sees is what production does. Dispose it to stop everything, Redis last.
/// </summary>
/// <example>
/// <code>
/// await using var cluster = await IngestCluster.StartAsync();
/// await using var call = await ExotelCallSimulator.ConnectAsync(cluster);
/// await call.StartAsync();
/// await call.SendAudioAsync(frames: 20);
/// await call.StopAsync();
/// (await LandedStream.ReadAsync(cluster, call.StreamId)).AssertMatches(call);
/// </code>
/// </example>
public sealed class IngestCluster : IAsyncDisposable
{
    private readonly IngestStack _stack;
    private readonly IngestClusterOptions _options;
    private readonly HttpClient _http = new();

    private IngestCluster(IngestStack stack, IngestClusterOptions options, WebApplication gateway)
    {
        _stack = stack;
        _options = options;
        Gateway = gateway;
    }

    /// <summary>The Basic credentials the gateway accepts from Exotel.</summary>
    public const string ExotelUser = IngestStack.ExotelUser;

    /// <summary>The password that goes with <see cref="ExotelUser"/>.</summary>
    public const string ExotelPassword = IngestStack.ExotelPassword;

    /// <summary>The gateway host (for its services, e.g. in a test that needs more than the kit offers).</summary>
    public WebApplication Gateway { get; }

    /// <summary>The running silos, in start order. Kill or stop one and the later ones move down an index.</summary>
    public IReadOnlyList<WebApplication> Silos => _stack.Silos;

    /// <summary>The WebSocket address calls connect to: <c>ws://127.0.0.1:port/v1/ingest</c>.</summary>
    public Uri GatewayUri => IngestStack.IngestUri(Gateway);

    /// <summary>A connection to the cluster's Redis, shared (one multiplexer, as the StackExchange.Redis docs advise).</summary>
    public IConnectionMultiplexer Redis => _stack.Connection;

    /// <summary>
    /// The redis-server process itself (its port, and finer outage controls than the ones on this class). Not available
    /// when <see cref="IngestClusterOptions.RedisConnectionString"/> named an outside Redis.
    /// </summary>
    public RedisServer RedisServer => _stack.Redis;

    /// <summary>The REDIS_URL every silo and the gateway were given.</summary>
    public string RedisConnectionString => _stack.RedisConnectionString;

    /// <summary>Orleans' cluster and service id for this cluster (unique per cluster).</summary>
    public string ClusterId => _stack.ClusterId;

    /// <summary>
    /// Starts Redis, <see cref="IngestClusterOptions.Silos"/> silos and the gateway; returns when the gateway has read
    /// its flags. <c>SUPPORT_EXOTEL</c> is seeded <c>true</c> unless the options set it.
    /// </summary>
    public static async Task<IngestCluster> StartAsync(IngestClusterOptions? options = null)
    {
        options ??= new IngestClusterOptions();
        if (options.Silos < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "an Ingest cluster needs at least one silo");
        }

        var stack = options.RedisConnectionString is { } redis ? await IngestStack.StartAsync(redis) : await IngestStack.StartAsync();
        try
        {
            for (var i = 0; i < options.Silos; i++)
            {
                await stack.AddSiloAsync(Merge(options.Settings, options.SiloSettings), options.ConfigureHost);
            }

            // Exotel support is a cluster flag, off in production until an operator turns it on; a QA cluster starts with
            // it on (the gateway seeds it) unless the options say otherwise.
            var gatewaySettings = Merge(new Dictionary<string, string?> { ["SUPPORT_EXOTEL"] = "true" }, Merge(options.Settings, options.GatewaySettings));
            var gateway = await stack.AddGatewayAsync(gatewaySettings, options.ConfigureHost);
            if (gatewaySettings["SUPPORT_EXOTEL"] == "true")
            {
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
                while (!IngestStack.SupportsExotel(gateway) && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(50);
                }
            }

            return new IngestCluster(stack, options, gateway);
        }
        catch
        {
            await stack.DisposeAsync();
            throw;
        }
    }

    /// <summary>The gateway's HTTP address for <paramref name="path"/>, e.g. <c>/v1/admin/refusals</c>.</summary>
    public Uri GatewayHttpUri(string path) => IngestStack.HttpUri(Gateway, path);

    /// <summary>A JWT with the <c>admin</c> role, valid for five minutes, for <c>/v1/admin/*</c>.</summary>
    public static string AdminToken() => Tokens.Create(role: "admin");

    /// <summary>A JWT a native (non-Exotel) client presents, valid for five minutes.</summary>
    public static string NativeToken() => Tokens.Create();

    /// <summary>Starts one more silo, wired like the others; returns its index in <see cref="Silos"/>.</summary>
    public async Task<int> AddSiloAsync()
    {
        await _stack.AddSiloAsync(Merge(_options.Settings, _options.SiloSettings), _options.ConfigureHost);
        return _stack.Silos.Count - 1;
    }

    /// <summary>
    /// Kills silo <paramref name="index"/>: no graceful leave, no grain deactivation, as a crash does. Follow it with
    /// <see cref="WaitForLivenessToStabilizeAsync"/> when the test needs the survivors to agree it is gone.
    /// </summary>
    public Task KillSiloAsync(int index) => _stack.KillSiloAsync(_stack.Silos[index]);

    /// <summary>Stops silo <paramref name="index"/> the way SIGTERM does (graceful leave, grains deactivated).</summary>
    public Task StopSiloAsync(int index) => _stack.StopSiloAsync(_stack.Silos[index]);

    /// <summary>
    /// Waits until the cluster's membership lists exactly <see cref="Silos"/>.Count active silos — after a kill that is
    /// when the dead silo has been voted out (about 6 s with the production failure detection). Throws
    /// <see cref="TimeoutException"/> after <paramref name="timeout"/> (default 60 s).
    /// </summary>
    public Task WaitForLivenessToStabilizeAsync(TimeSpan? timeout = null) => WaitForSiloCountAsync(_stack.Silos.Count, timeout);

    /// <summary>Waits until membership lists exactly <paramref name="activeSilos"/> active silos.</summary>
    public async Task WaitForSiloCountAsync(int activeSilos, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(60);
        var deadline = DateTime.UtcNow + limit;
        var last = -1;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                var hosts = await Management.GetHosts(onlyActive: true);
                last = hosts.Count;
                if (last == activeSilos)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is OrleansException or TimeoutException or SiloUnavailableException)
            {
                // Membership is moving; ask again.
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"membership listed {last} active silo(s), not {activeSilos}, after {limit.TotalSeconds:0} s");
    }

    /// <summary>
    /// The index in <see cref="Silos"/> of the silo hosting the call <paramref name="streamId"/>, or -1 when no silo
    /// has it active (not started yet, or already ended).
    /// </summary>
    public async Task<int> FindSiloHostingAsync(string streamId)
    {
        var stats = await Management.GetDetailedGrainStatistics([IngestGrainCluster.CallGrainType]);
        var host = stats.FirstOrDefault(s => s.GrainId.Key.ToString() == streamId)?.SiloAddress;
        if (host is null)
        {
            return -1;
        }

        for (var i = 0; i < _stack.Silos.Count; i++)
        {
            if (_stack.Silos[i].Services.GetRequiredService<ILocalSiloDetails>().SiloAddress.Equals(host))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>SIGSTOPs redis-server: it holds its connections and answers nothing, like Redis stuck or a dead link.</summary>
    public void PauseRedis() => _stack.Redis.Pause();

    /// <summary>SIGCONTs redis-server after <see cref="PauseRedis"/>.</summary>
    public void ResumeRedis() => _stack.Redis.Resume();

    /// <summary>Restarts redis-server on the same port, the way an operator does: <c>SHUTDOWN SAVE</c>, then start; data kept.</summary>
    public async Task RestartRedisAsync()
    {
        await _stack.Redis.ShutdownSaveAsync();
        await _stack.Redis.StartProcessAsync();
    }

    /// <summary>GETs a gateway path with an admin token and returns the JSON body (throws on a non-2xx status).</summary>
    public async Task<JsonElement> AdminGetAsync(string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, GatewayHttpUri(path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken());
        using var response = await _http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.Clone();
    }

    /// <summary>The refusals the gateway lists at <c>/v1/admin/refusals</c>, newest first.</summary>
    public async Task<IReadOnlyList<Refusal>> RefusalsAsync()
    {
        var body = await AdminGetAsync("/v1/admin/refusals");
        return body.EnumerateArray().Select(r => new Refusal(
            r.GetProperty("reason").GetString() ?? string.Empty,
            r.TryGetProperty("status", out var status) && status.ValueKind == JsonValueKind.Number ? status.GetInt32() : 0,
            r.TryGetProperty("remote", out var remote) ? remote.GetString() : null,
            r.TryGetProperty("detail", out var detail) ? detail.GetString() : null)).ToList();
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        await _stack.DisposeAsync();
    }

    private IManagementGrain Management => Gateway.Services.GetRequiredService<IClusterClient>().GetGrain<IManagementGrain>(0);

    private static Dictionary<string, string?> Merge(IDictionary<string, string?> shared, IDictionary<string, string?> specific)
    {
        var merged = new Dictionary<string, string?>(shared, StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in specific)
        {
            merged[key] = value;
        }

        return merged;
    }
}

/// <summary>One refused upgrade as <c>/v1/admin/refusals</c> lists it.</summary>
/// <param name="Reason">CONTRACT §8's reason, e.g. <c>bad_credentials</c>.</param>
/// <param name="Status">The HTTP status the client got.</param>
/// <param name="Remote">The client address the gateway saw.</param>
/// <param name="Detail">The text the client was sent (never a credential).</param>
public sealed record Refusal(string Reason, int Status, string? Remote, string? Detail);
