using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;

namespace Ingest.Testing;

/// <summary>A node of a <see cref="RedisClusterServer"/> as <c>CLUSTER NODES</c> describes it.</summary>
/// <param name="Port">The client port on 127.0.0.1.</param>
/// <param name="IsMaster">Whether the node is a master (else a replica).</param>
/// <param name="MasterPort">For a replica, the port of the master it replicates; null for a master.</param>
/// <param name="Failed">Whether the cluster flags the node <c>fail</c> or <c>fail?</c>.</param>
/// <param name="Slots">For a master, the slot ranges it serves (inclusive); empty for a replica.</param>
public sealed record RedisClusterNode(int Port, bool IsMaster, int? MasterPort, bool Failed, IReadOnlyList<(int From, int To)> Slots)
{
    /// <summary><c>master</c> or <c>replica</c>.</summary>
    public string Role => IsMaster ? "master" : "replica";
}

/// <summary>
/// A real Redis Cluster on loopback for the test run: <c>masters × (1 + replicas)</c> <c>redis-server</c> processes, each
/// in its own temp directory on free ports, joined by <c>redis-cli --cluster create</c>. <see cref="ConnectionString"/> is
/// what REDIS_URL takes (every node, comma-separated). Nodes can be killed (SIGKILL) to watch a replica take over.
/// Dispose stops every node; a watchdog kills them too if the test process dies first.
/// </summary>
/// <example>
/// <code>
/// await using var redis = await RedisClusterServer.StartAsync(masters: 3, replicasPerMaster: 1);
/// var master = await redis.MasterPortForKeyAsync("ingest:audio:{call-1}");
/// redis.KillNode(master);
/// await redis.WaitForFailoverAsync(master, TimeSpan.FromSeconds(20));
/// </code>
/// </example>
public sealed class RedisClusterServer : IAsyncDisposable
{
    /// <summary>The number of hash slots of every Redis Cluster.</summary>
    public const int SlotCount = 16384;

    private readonly string _directory;
    private readonly Dictionary<int, Process> _processes = [];
    private readonly Dictionary<int, int> _busPorts = [];
    private readonly List<Process> _extraWatchdogs = [];
    private readonly int _nodeTimeoutMs;
    private Process? _watchdog;
    private ConnectionMultiplexer? _admin;

    private RedisClusterServer(string directory, int nodeTimeoutMs)
    {
        _directory = directory;
        _nodeTimeoutMs = nodeTimeoutMs;
    }

    /// <summary>The nodes as created, masters first, then replicas (roles change on a failover: see <see cref="ReadNodesAsync"/>).</summary>
    public IReadOnlyList<RedisClusterNode> Nodes { get; private set; } = [];

    /// <summary>Every node's client port, in <see cref="Nodes"/> order.</summary>
    public IReadOnlyList<int> Ports => Nodes.Select(n => n.Port).ToList();

    /// <summary>
    /// Every node as <c>127.0.0.1:port</c>, comma-separated: a StackExchange.Redis configuration string and a REDIS_URL.
    /// The client discovers the slot map from any of them, so the list still works with some nodes dead.
    /// </summary>
    public string ConnectionString => string.Join(",", Nodes.Select(n => "127.0.0.1:" + n.Port.ToString(CultureInfo.InvariantCulture)));

    /// <summary>
    /// Starts the cluster and returns once every node reports <c>cluster_state:ok</c> with all 16384 slots assigned and
    /// every replica's link to its master is up. <paramref name="nodeTimeoutMs"/> is <c>cluster-node-timeout</c>: how
    /// long a silent master takes to be declared failed (a failover takes about twice that).
    /// </summary>
    public static async Task<RedisClusterServer> StartAsync(int masters = 3, int replicasPerMaster = 0, int nodeTimeoutMs = 1000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(masters, 3);
        ArgumentOutOfRangeException.ThrowIfNegative(replicasPerMaster);
        ArgumentOutOfRangeException.ThrowIfLessThan(nodeTimeoutMs, 100);
        var directory = Path.Combine(Path.GetTempPath(), "ingest-redis-cluster-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        var server = new RedisClusterServer(directory, nodeTimeoutMs);
        try
        {
            await server.CreateAsync(masters, replicasPerMaster);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>The port of the master serving <paramref name="key"/>'s slot now (<c>CLUSTER KEYSLOT</c>, then <c>CLUSTER NODES</c>).</summary>
    public async Task<int> MasterPortForKeyAsync(string key)
    {
        var slot = (int)(long)(await AnyLiveServer().ExecuteAsync("CLUSTER", "KEYSLOT", key));
        var nodes = await ReadNodesAsync();
        return nodes.FirstOrDefault(n => n.IsMaster && !n.Failed && n.Slots.Any(r => slot >= r.From && slot <= r.To))?.Port
            ?? throw new InvalidOperationException($"no live master serves slot {slot} of '{key}'");
    }

    /// <summary>The cluster's view of its nodes now, asked of a live node.</summary>
    public async Task<IReadOnlyList<RedisClusterNode>> ReadNodesAsync() => ParseNodes((await AnyLiveServer().ExecuteAsync("CLUSTER", "NODES")).ToString());

    /// <summary>SIGKILLs the node on <paramref name="port"/>: no save, no goodbye to the cluster, as a crash does.</summary>
    public void KillNode(int port)
    {
        if (!_processes.Remove(port, out var process))
        {
            throw new ArgumentException($"no running node on port {port}", nameof(port));
        }

        Kill(process);
        process.Dispose();
    }

    /// <summary>SIGSTOP of the node on <paramref name="port"/>: it keeps its connections and answers nothing (a replica that lags).</summary>
    public void PauseNode(int port) => Signal(port, "-STOP");

    /// <summary>
    /// Closes the master's links to its replicas (<c>CLIENT KILL TYPE replica</c>). With the replica paused first it
    /// cannot link again: what the master acknowledges from then on exists on the master only. Pausing alone does not
    /// make that certain: what the master had already sent waits in the paused replica's socket and is applied on resume.
    /// </summary>
    public async Task CutReplicationAsync(int masterPort)
    {
        var admin = _admin ?? throw new InvalidOperationException("the cluster is not started");
        await admin.GetServer("127.0.0.1", masterPort).ExecuteAsync("CLIENT", "KILL", "TYPE", "replica");
    }

    /// <summary>SIGCONT after <see cref="PauseNode"/>.</summary>
    public void ResumeNode(int port) => Signal(port, "-CONT");

    /// <summary>The port of a replica of the master started on <paramref name="masterPort"/>.</summary>
    public int ReplicaOf(int masterPort) =>
        Nodes.FirstOrDefault(n => !n.IsMaster && n.MasterPort == masterPort)?.Port
        ?? throw new ArgumentException($"{masterPort} has no replica", nameof(masterPort));

    /// <summary>
    /// Starts a killed node again on its port and directory (its nodes.conf): it rejoins the cluster, as a replica of
    /// whoever took its slots over, and returns once its link to that master is up.
    /// </summary>
    public async Task RestartNodeAsync(int port, TimeSpan timeout)
    {
        if (_processes.ContainsKey(port))
        {
            throw new ArgumentException($"node {port} is running", nameof(port));
        }

        var process = StartNode(port, _busPorts[port]);
        _processes[port] = process;
        if (Watchdog([process.Id]) is { } watchdog)
        {
            _extraWatchdogs.Add(watchdog);
        }

        if (!await AnswersAsync(port, process))
        {
            throw new InvalidOperationException($"redis-server did not answer on port {port}");
        }

        var deadline = DateTime.UtcNow + timeout;
        var last = "nothing";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                var info = (await _admin!.GetServer("127.0.0.1", port).ExecuteAsync("INFO", "replication")).ToString();
                if (info.Contains("role:slave", StringComparison.Ordinal) && info.Contains("master_link_status:up", StringComparison.Ordinal))
                {
                    return;
                }

                last = info.Replace("\r\n", " ", StringComparison.Ordinal);
            }
            catch (RedisException ex)
            {
                last = ex.Message;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"node {port} did not rejoin as a replica within {timeout.TotalSeconds:0} s: {last}");
    }

    /// <summary>
    /// Waits until, seen from a surviving node, the slots <paramref name="formerMasterPort"/> served belong to another
    /// live master (a replica promoted) and <c>cluster_state</c> is <c>ok</c> again. Returns the new master's port;
    /// throws <see cref="TimeoutException"/> naming the last state seen.
    /// </summary>
    public async Task<int> WaitForFailoverAsync(int formerMasterPort, TimeSpan timeout)
    {
        var former = Nodes.FirstOrDefault(n => n.Port == formerMasterPort && n.IsMaster)
            ?? throw new ArgumentException($"{formerMasterPort} was not started as a master", nameof(formerMasterPort));
        var probeSlot = former.Slots[0].From;
        var deadline = DateTime.UtcNow + timeout;
        var last = "nothing";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                var nodes = await ReadNodesAsync();
                var owner = nodes.FirstOrDefault(n => n.IsMaster && !n.Failed && n.Slots.Any(r => probeSlot >= r.From && probeSlot <= r.To));
                var state = await StateAsync(AnyLiveServer());
                last = $"slot {probeSlot} served by {owner?.Port.ToString(CultureInfo.InvariantCulture) ?? "no live master"}, cluster_state:{state}";
                if (owner is not null && owner.Port != formerMasterPort && state == "ok")
                {
                    return owner.Port;
                }
            }
            catch (RedisException ex)
            {
                last = ex.Message;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"no failover of {formerMasterPort} within {timeout.TotalSeconds:0} s: {last}");
    }

    /// <summary>Stops every node, then deletes their directories.</summary>
    public async ValueTask DisposeAsync()
    {
        _admin?.Dispose();
        _admin = null;
        foreach (var process in _processes.Values)
        {
            Kill(process);
        }

        foreach (var process in _processes.Values)
        {
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await process.WaitForExitAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
            }

            process.Dispose();
        }

        _processes.Clear();
        foreach (var extra in _extraWatchdogs)
        {
            Kill(extra);
            extra.Dispose();
        }

        _extraWatchdogs.Clear();
        if (_watchdog is { } watchdog)
        {
            Kill(watchdog);
            watchdog.Dispose();
            _watchdog = null;
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task CreateAsync(int masters, int replicasPerMaster)
    {
        var total = masters * (1 + replicasPerMaster);
        var ports = new List<int>();
        for (var i = 0; i < total; i++)
        {
            ports.Add(await StartAnsweringNodeAsync());
        }

        StartWatchdog();

        // redis-cli makes the first `masters` endpoints the masters and the rest their replicas.
        var create = new List<string> { "--cluster", "create" };
        create.AddRange(ports.Select(p => "127.0.0.1:" + p.ToString(CultureInfo.InvariantCulture)));
        create.AddRange(["--cluster-replicas", replicasPerMaster.ToString(CultureInfo.InvariantCulture), "--cluster-yes"]);
        var (code, output) = await RunCliAsync(create, TimeSpan.FromSeconds(60));
        if (code != 0)
        {
            throw new InvalidOperationException($"redis-cli --cluster create exited {code}:\n{output}");
        }

        var admin = new ConfigurationOptions
        {
            AllowAdmin = true,
            AbortOnConnectFail = false,
            ConnectTimeout = 2000,
            SyncTimeout = 5000,
            AsyncTimeout = 5000,
        };
        ports.ForEach(p => admin.EndPoints.Add("127.0.0.1", p));
        _admin = await ConnectionMultiplexer.ConnectAsync(admin);
        await WaitForHealthyAsync(ports, replicasPerMaster > 0, TimeSpan.FromSeconds(60));
        Nodes = Order(await ReadNodesAsync(), ports);
    }

    /// <summary>
    /// Starts one node on free ports and waits until it answers. A port <see cref="RedisServer.FreePort"/> handed out can
    /// be taken by a parallel test before redis-server binds it (the node exits at once, "Address already in use"; seen
    /// once under the full suite): that node is started again on other ports, up to three times.
    /// </summary>
    private async Task<int> StartAnsweringNodeAsync()
    {
        for (var attempt = 1; ; attempt++)
        {
            // The bus port is chosen too (cluster-port), because the default port + 10000 can fall outside 65535
            // for the ephemeral ports the OS hands out.
            var port = RedisServer.FreePort();
            var busPort = RedisServer.FreePort();
            var process = StartNode(port, busPort);
            _processes[port] = process;
            _busPorts[port] = busPort;
            if (await AnswersAsync(port, process))
            {
                return port;
            }

            _processes.Remove(port);
            _busPorts.Remove(port);
            if (!process.HasExited)
            {
                process.Kill();
            }

            process.Dispose();
            if (attempt == 3)
            {
                throw new InvalidOperationException($"redis-server did not answer on port {port} (attempt {attempt})");
            }
        }
    }

    private static async Task<bool> AnswersAsync(int port, Process process)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline && !process.HasExited)
        {
            var (code, output) = await RunCliAsync(["-h", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), "PING"], TimeSpan.FromSeconds(5));
            if (code == 0 && output.Contains("PONG", StringComparison.Ordinal))
            {
                return true;
            }

            await Task.Delay(50);
        }

        return false;
    }

    private Process StartNode(int port, int busPort)
    {
        var directory = Path.Combine(_directory, port.ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(directory);
        var executable = File.Exists("/usr/bin/redis-server") ? "/usr/bin/redis-server" : "redis-server";
        var info = new ProcessStartInfo(executable)
        {
            ArgumentList =
            {
                "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-port", busPort.ToString(CultureInfo.InvariantCulture),
                "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", _nodeTimeoutMs.ToString(CultureInfo.InvariantCulture),
                "--save", "", "--appendonly", "no", "--dir", directory, "--protected-mode", "no",
            },
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var process = Process.Start(info) ?? throw new InvalidOperationException("redis-server did not start");
        RedisServer.KillAtExit(process);
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>
    /// A shell that kills the nodes once this test process is gone (a killed test host runs no Dispose): six
    /// orphaned servers on a shared box would outlive the run.
    /// </summary>
    private void StartWatchdog() => _watchdog = Watchdog(_processes.Values.Select(p => p.Id));

    private static Process? Watchdog(IEnumerable<int> processIds)
    {
        var pids = string.Join(' ', processIds.Select(p => p.ToString(CultureInfo.InvariantCulture)));
        var self = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        return Process.Start(new ProcessStartInfo("/bin/sh")
        {
            ArgumentList = { "-c", $"while kill -0 {self} 2>/dev/null; do sleep 1; done; kill -9 {pids} 2>/dev/null" },
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        });
    }

    private void Signal(int port, string signal)
    {
        if (!_processes.TryGetValue(port, out var process) || process.HasExited)
        {
            throw new ArgumentException($"no running node on port {port}", nameof(port));
        }

        Signals.Send(process, signal);
    }

    private async Task WaitForHealthyAsync(IReadOnlyList<int> ports, bool replicas, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var last = "nothing";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                last = await UnhealthyAsync(ports, replicas);
                if (last.Length == 0)
                {
                    return;
                }
            }
            catch (RedisException ex)
            {
                last = ex.Message;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"the Redis cluster on {string.Join(",", ports)} did not become healthy: {last}");
    }

    /// <summary>What is not yet healthy, or empty when every node agrees the cluster is whole.</summary>
    private async Task<string> UnhealthyAsync(IReadOnlyList<int> ports, bool replicas)
    {
        foreach (var port in ports)
        {
            var server = _admin!.GetServer("127.0.0.1", port);
            var info = Fields((await server.ExecuteAsync("CLUSTER", "INFO")).ToString());
            if (info.GetValueOrDefault("cluster_state") != "ok" || info.GetValueOrDefault("cluster_slots_assigned") != SlotCount.ToString(CultureInfo.InvariantCulture))
            {
                return $"{port}: cluster_state:{info.GetValueOrDefault("cluster_state")} slots assigned {info.GetValueOrDefault("cluster_slots_assigned")}";
            }

            if (info.GetValueOrDefault("cluster_known_nodes") != ports.Count.ToString(CultureInfo.InvariantCulture))
            {
                return $"{port}: knows {info.GetValueOrDefault("cluster_known_nodes")} nodes of {ports.Count}";
            }

            if (replicas)
            {
                var replication = Fields((await server.ExecuteAsync("INFO", "replication")).ToString());
                if (replication.GetValueOrDefault("role") == "slave" && replication.GetValueOrDefault("master_link_status") != "up")
                {
                    return $"{port}: replica link {replication.GetValueOrDefault("master_link_status")}";
                }
            }
        }

        return string.Empty;
    }

    private IServer AnyLiveServer()
    {
        var admin = _admin ?? throw new InvalidOperationException("the cluster is not started");
        foreach (var port in _processes.Keys)
        {
            var server = admin.GetServer("127.0.0.1", port);
            if (server.IsConnected)
            {
                return server;
            }
        }

        throw new InvalidOperationException("no node of the cluster is connected");
    }

    private static async Task<string> StateAsync(IServer server) =>
        Fields((await server.ExecuteAsync("CLUSTER", "INFO")).ToString()).GetValueOrDefault("cluster_state") ?? "unknown";

    private static Dictionary<string, string> Fields(string info) =>
        info.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(':', 2))
            .Where(p => p.Length == 2)
            .GroupBy(p => p[0], StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First()[1], StringComparer.Ordinal);

    // CLUSTER NODES: <id> <ip:port@cport[,hostname]> <flags> <master id|-> <ping> <pong> <epoch> <link> <slot ranges...>
    private static List<RedisClusterNode> ParseNodes(string text)
    {
        var rows = text.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 8)
            .ToList();
        var portById = rows.ToDictionary(f => f[0], f => Port(f[1]), StringComparer.Ordinal);
        return rows.Select(f =>
        {
            var flags = f[2].Split(',');
            var master = flags.Contains("master");
            int? masterPort = !master && portById.TryGetValue(f[3], out var p) ? p : null;
            var slots = f.Skip(8).Where(s => !s.StartsWith('[')).Select(s =>
            {
                var dash = s.IndexOf('-', StringComparison.Ordinal);
                return dash < 0
                    ? (int.Parse(s, CultureInfo.InvariantCulture), int.Parse(s, CultureInfo.InvariantCulture))
                    : (int.Parse(s[..dash], CultureInfo.InvariantCulture), int.Parse(s[(dash + 1)..], CultureInfo.InvariantCulture));
            }).ToList();
            return new RedisClusterNode(Port(f[1]), master, masterPort, flags.Contains("fail") || flags.Contains("fail?"), slots);
        }).ToList();

        static int Port(string address)
        {
            var hostPort = address.Split('@')[0];
            return int.Parse(hostPort[(hostPort.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture);
        }
    }

    private static List<RedisClusterNode> Order(IReadOnlyList<RedisClusterNode> nodes, IReadOnlyList<int> ports) =>
        nodes.OrderBy(n => n.IsMaster ? 0 : 1).ThenBy(n => ports.ToList().IndexOf(n.Port)).ToList();

    private static async Task<(int Code, string Output)> RunCliAsync(IEnumerable<string> args, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(File.Exists("/usr/bin/redis-cli") ? "/usr/bin/redis-cli" : "redis-cli")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException("redis-cli did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Kill(process);
            return (-1, "timed out\n" + await stdout + await stderr);
        }

        return (process.ExitCode, await stdout + await stderr);
    }

    private static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }
}
