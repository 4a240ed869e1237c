using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;

namespace Ingest.Tests.Infrastructure;

/// <summary>
/// The shipped processes, for tests that really kill things: silos and gateways started as <c>dotnet Ingest.*.dll</c>
/// child processes (the build output of the same configuration as the test assembly) against one real redis-server.
/// Every child is killed on dispose, whatever happened in the test.
/// </summary>
public sealed class ProcessCluster : IAsyncDisposable
{
    private readonly List<ChildProcess> _children = [];

    private readonly StackRedis _redis;

    private ProcessCluster(StackRedis redis) => _redis = redis;

    /// <summary>The cluster's own redis-server; a cluster started on an outside Redis (a Redis Cluster) has none and throws.</summary>
    public RedisServer Redis => _redis.Server;

    /// <summary>What every child gets as REDIS_URL.</summary>
    public string RedisConnectionString => _redis.ConnectionString;

    public IConnectionMultiplexer Connection => _redis.Connection;

    public string ClusterId { get; } = "proc-" + Guid.NewGuid().ToString("N")[..8];

    public IReadOnlyList<ChildProcess> Children => _children;

    public static async Task<ProcessCluster> StartAsync() => new(await StackRedis.OwnAsync());

    /// <summary>Children on a Redis the caller owns and disposes, e.g. <see cref="RedisClusterServer.ConnectionString"/>.</summary>
    public static async Task<ProcessCluster> StartAsync(string redisConnectionString) =>
        new(await StackRedis.OutsideAsync(redisConnectionString));

    /// <summary>Build configuration of the running test assembly (Debug or Release); the hosts are built alongside.</summary>
    public static string Configuration =>
        AppContext.BaseDirectory.Replace('\\', '/').Contains("/bin/Release/", StringComparison.Ordinal) ? "Release" : "Debug";

    public static string RepositoryRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Orleans.Ingest.sln")))
            {
                dir = dir.Parent;
            }

            return dir?.FullName ?? throw new InvalidOperationException("Orleans.Ingest.sln not found above " + AppContext.BaseDirectory);
        }
    }

    public static string HostDll(string project, string assembly)
    {
        var path = Path.Combine(RepositoryRoot, project, "bin", Configuration, "net10.0", assembly + ".dll");
        return File.Exists(path) ? path : throw new FileNotFoundException("Build the solution first", path);
    }

    /// <summary>
    /// Starts a silo on free ports. <paramref name="httpPort"/> given: SILO_HTTP_PORT is left unset and the silo is
    /// expected to derive that port itself (the test then passes the SILO_PORT/GATEWAY_PORT it chose in <paramref name="extra"/>).
    /// </summary>
    public async Task<ChildProcess> StartSiloAsync(string name, Dictionary<string, string>? extra = null, int? httpPort = null)
    {
        var derived = httpPort is not null;
        return await StartOnFreePortsAsync(name, extra, fixedPorts: derived, () =>
        {
            var http = httpPort ?? RedisServer.FreePort();
            var env = new Dictionary<string, string>
            {
                ["REDIS_URL"] = RedisConnectionString,
                ["CLUSTER_ID"] = ClusterId,
                ["SERVICE_ID"] = ClusterId,
                ["SILO_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
                ["GATEWAY_PORT"] = RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
                ["SILO_HTTP_PORT"] = http.ToString(CultureInfo.InvariantCulture),
                ["SILO_ADVERTISED_IP"] = "127.0.0.1",
                ["LISTEN_ADDRESS"] = "127.0.0.1",
                ["SUPPORT_EXOTEL"] = "true",
                ["Logging__LogLevel__Default"] = "Warning",
            };
            if (derived)
            {
                env.Remove("SILO_HTTP_PORT");
            }

            Merge(env, extra);
            return (HostDll("Silo", "Ingest.Silo"), env, http);
        });
    }

    /// <summary>
    /// Starts a process on ports picked free, and waits until it is ready. A port picked free can be taken by a
    /// parallel test before the process binds it ("Address already in use", "is already in use"): the process exits,
    /// and it is started again on other ports, up to three times. Ports the test chose itself are not changed.
    /// </summary>
    private async Task<ChildProcess> StartOnFreePortsAsync(
        string name, Dictionary<string, string>? extra, bool fixedPorts, Func<(string Dll, Dictionary<string, string> Env, int HttpPort)> plan)
    {
        var chosenByTest = fixedPorts || (extra?.Keys.Any(k => k is "PORT" or "SILO_PORT" or "GATEWAY_PORT" or "SILO_HTTP_PORT") ?? false);
        for (var attempt = 1; ; attempt++)
        {
            var (dll, env, httpPort) = plan();
            var child = Start(name, dll, env, httpPort);
            try
            {
                await child.WaitReadyAsync(TimeSpan.FromSeconds(40));
                return child;
            }
            catch (InvalidOperationException) when (!chosenByTest && attempt < 3 && child.HasExited && PortWasTaken(child))
            {
                lock (_children)
                {
                    _children.Remove(child);
                }

                await child.DisposeAsync();
            }
        }
    }

    private static bool PortWasTaken(ChildProcess child)
    {
        var tail = child.Tail(400);
        return tail.Contains("Address already in use", StringComparison.OrdinalIgnoreCase) || tail.Contains("is already in use", StringComparison.Ordinal);
    }

    public async Task<ChildProcess> StartGatewayAsync(string name, Dictionary<string, string>? extra = null)
    {
        var child = await StartOnFreePortsAsync(name, extra, fixedPorts: false, () =>
        {
            var port = RedisServer.FreePort();
            var env = new Dictionary<string, string>
            {
                ["REDIS_URL"] = RedisConnectionString,
                ["CLUSTER_ID"] = ClusterId,
                ["SERVICE_ID"] = ClusterId,
                ["PORT"] = port.ToString(CultureInfo.InvariantCulture),
                ["LISTEN_ADDRESS"] = "127.0.0.1",
                ["SUPPORT_EXOTEL"] = "true",
                ["EXOTEL_BASIC_AUTH_USER"] = IngestStack.ExotelUser,
                ["EXOTEL_BASIC_AUTH_PASS"] = IngestStack.ExotelPassword,
                ["JWT_SECRET"] = IngestStack.JwtSecret,

                // Ready at once: the warm-up before /readyz has tests of its own (WarmupTests).
                ["WARMUP_CALLS"] = "0",
                ["Logging__LogLevel__Default"] = "Warning",
            };
            Merge(env, extra);
            var http = extra is not null && extra.TryGetValue("PORT", out var fixedPort) ? int.Parse(fixedPort, CultureInfo.InvariantCulture) : port;
            return (HostDll("Gateway", "Ingest.Gateway"), env, http);
        });

        // Ready means the cluster answers; wait until the flag cache lets Exotel in as well.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        var auth = new Dictionary<string, string> { ["Authorization"] = ExotelClient.BasicHeader(IngestStack.ExotelUser, IngestStack.ExotelPassword) };
        while (await ExotelClient.TryUpgradeAsync(child.IngestUri, auth) != 101)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"gateway {name} does not accept Exotel upgrades\n{child.Tail()}");
            }

            await Task.Delay(200);
        }

        return child;
    }

    private ChildProcess Start(string name, string dll, Dictionary<string, string> env, int httpPort)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { dll },
            WorkingDirectory = Path.GetDirectoryName(dll)!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        foreach (var (key, value) in env)
        {
            info.Environment[key] = value;
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start " + dll);
        var child = new ChildProcess(name, process, httpPort);
        lock (_children)
        {
            _children.Add(child);
        }

        return child;
    }

    public async ValueTask DisposeAsync()
    {
        ChildProcess[] children;
        lock (_children)
        {
            children = [.. _children];
        }

        foreach (var child in children)
        {
            child.Kill();
        }

        foreach (var child in children)
        {
            await child.DisposeAsync();
        }

        await _redis.DisposeAsync();
    }

    private static void Merge(Dictionary<string, string> target, Dictionary<string, string>? extra)
    {
        foreach (var (key, value) in extra ?? [])
        {
            target[key] = value;
        }
    }
}

/// <summary>One silo or gateway process with its HTTP port and the last lines it wrote.</summary>
public sealed class ChildProcess : IAsyncDisposable
{
    private readonly ConcurrentQueue<string> _lines = new();

    internal ChildProcess(string name, Process process, int httpPort)
    {
        Name = name;
        Process = process;
        HttpPort = httpPort;
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Name { get; }

    public Process Process { get; }

    public int HttpPort { get; }

    public Uri IngestUri => new($"ws://127.0.0.1:{HttpPort}/v1/ingest");

    public Uri Http(string path) => new($"http://127.0.0.1:{HttpPort}{path}");

    public bool HasExited => Process.HasExited;

    /// <summary>GETs an admin API path with an admin token; the caller reads and disposes the response.</summary>
    public async Task<HttpResponseMessage> AdminGetAsync(HttpClient http, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Http(path));
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Ingest.Testing.IngestCluster.AdminToken());
        return await http.SendAsync(request);
    }

    public async Task<int> StatusAsync(string path)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(8) };
        try
        {
            using var response = await http.GetAsync(Http(path));
            return (int)response.StatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return 0;
        }
    }

    /// <summary>Sum of every series of one Prometheus metric on the process' /metrics (0 when absent).</summary>
    public async Task<double> MetricAsync(string name)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(8) };
        var text = await http.GetStringAsync(Http("/metrics"));
        return text.Split('\n')
            .Where(l => l.StartsWith(name, StringComparison.Ordinal) && (l.Length == name.Length || l[name.Length] is ' ' or '{'))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
    }

    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (await StatusAsync("/readyz") != 200)
        {
            if (Process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"{Name} did not become ready (exited: {Process.HasExited})\n{Tail()}");
            }

            await Task.Delay(200);
        }
    }

    /// <summary>kill -9: no shutdown code runs.</summary>
    public void Kill()
    {
        try
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>kill -TERM: what an orchestrator sends before it stops a container.</summary>
    public void Terminate() => Signal("-TERM");

    /// <summary>kill -STOP: the process keeps its sockets and answers nothing (a VM frozen, a stop-the-world pause).</summary>
    public void Pause() => Signal("-STOP");

    /// <summary>kill -CONT after <see cref="Pause"/>.</summary>
    public void Resume() => Signal("-CONT");

    private void Signal(string signal) => Signals.Send(Process, signal);

    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await Process.WaitForExitAsync(cts.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public string Tail(int lines = 40) => $"--- {Name} ---\n" + string.Join('\n', _lines.TakeLast(lines));

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        _lines.Enqueue(line);
        while (_lines.Count > 400 && _lines.TryDequeue(out _))
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        await WaitForExitAsync(TimeSpan.FromSeconds(10));
        Process.Dispose();
    }
}
