// Building block moved from Ingest.Tests; the type summary documents it, its members are read by the kit and the project tests.
#pragma warning disable CS1591

using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;

namespace Ingest.Testing;

/// <summary>
/// A real redis-server on a free loopback port, started by the test run and stopped with it. It can be stopped and
/// started again on the same port, for outage tests.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private readonly string _directory;
    private Process? _process;

    private RedisServer(int port, string directory)
    {
        Port = port;
        _directory = directory;
    }

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port}";

    public static async Task<RedisServer> StartAsync()
    {
        var directory = Path.Combine(Path.GetTempPath(), "ingest-redis-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        for (var attempt = 1; ; attempt++)
        {
            var server = new RedisServer(FreePort(), directory);
            try
            {
                await server.StartProcessAsync();
                return server;
            }
            catch (PortTakenException) when (attempt < 3)
            {
                // Someone bound the port between FreePort and redis-server's bind: another port.
                await server.StopProcessAsync();
            }
        }
    }

    public async Task StartProcessAsync()
    {
        var executable = File.Exists("/usr/bin/redis-server") ? "/usr/bin/redis-server" : "redis-server";
        var info = new ProcessStartInfo(executable)
        {
            ArgumentList = { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", _directory, "--protected-mode", "no" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var said = new System.Collections.Concurrent.ConcurrentQueue<string>();
        void Keep(string? line)
        {
            if (line is not null && said.Count < 50)
            {
                said.Enqueue(line);
            }
        }

        _process = Process.Start(info) ?? throw new InvalidOperationException("redis-server did not start");
        Started.Add(_process);
        _process.OutputDataReceived += (_, e) => Keep(e.Data);
        _process.ErrorDataReceived += (_, e) => Keep(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        // A loaded machine (two cores, a test run starting many servers at once) can take seconds to schedule it.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                await _process.WaitForExitAsync();
                var output = string.Join(" | ", said);
                throw output.Contains("Address already in use", StringComparison.OrdinalIgnoreCase)
                    ? new PortTakenException($"redis-server could not bind port {Port}: {output}")
                    : new InvalidOperationException($"redis-server on port {Port} exited with code {_process.ExitCode}: {output}");
            }

            try
            {
                using var probe = await ConnectionMultiplexer.ConnectAsync($"{ConnectionString},connectTimeout=500,abortConnect=true");
                await probe.GetDatabase().PingAsync();
                return;
            }
            catch (RedisConnectionException)
            {
                await Task.Delay(50);
            }
        }

        await StopProcessAsync();
        throw new InvalidOperationException($"redis-server did not answer on port {Port} within 30 s; it said: {string.Join(" | ", said)}");
    }

    /// <summary>
    /// Stops the server the way an operator's restart does: <c>SHUTDOWN SAVE</c> writes the data set to disk first, so
    /// <see cref="StartProcessAsync"/> brings it back on the same port with every stream, cursor and membership row.
    /// </summary>
    public async Task ShutdownSaveAsync()
    {
        if (_process is not { HasExited: false } process)
        {
            return;
        }

        try
        {
            using var admin = await ConnectionMultiplexer.ConnectAsync($"{ConnectionString},allowAdmin=true,connectTimeout=2000");
            await admin.GetDatabase().ExecuteAsync("SHUTDOWN", "SAVE");
        }
        catch (RedisException)
        {
            // The server closes the connection as it exits; that is the expected answer.
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await process.WaitForExitAsync(timeout.Token);
        process.Dispose();
        _process = null;
    }

    /// <summary>Kills the server (an outage); <see cref="StartProcessAsync"/> brings it back, empty, on the same port.</summary>
    public async Task StopProcessAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        _process?.Dispose();
        _process = null;
    }

    /// <summary>SIGSTOP: the server keeps its connections and answers nothing, like a Redis stuck in a fork or a dead link.</summary>
    public void Pause() => Signal("-STOP");

    /// <summary>SIGCONT after <see cref="Pause"/>.</summary>
    public void Resume() => Signal("-CONT");

    private void Signal(string signal)
    {
        if (_process is not { HasExited: false } process)
        {
            return;
        }

        Signals.Send(process, signal);
    }

    public async ValueTask DisposeAsync()
    {
        Resume();
        await StopProcessAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>
    /// A loopback port free now, below the kernel's ephemeral range (32768 and up here): a port the kernel hands out
    /// for a listener on port 0 is also one it hands out as the local end of an outgoing connection, and a test run
    /// opens thousands, so between this answer and the server's bind one of them could take it. No port is handed out
    /// twice in one process.
    /// </summary>
    public static int FreePort()
    {
        for (var attempt = 0; attempt < 200; attempt++)
        {
            var port = Random.Shared.Next(20000, 32000);
            lock (Handed)
            {
                if (!Handed.Add(port))
                {
                    continue;
                }
            }

            try
            {
                using var probe = new TcpListener(IPAddress.Loopback, port);
                probe.Start();
                return port;
            }
            catch (SocketException)
            {
            }
        }

        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static readonly HashSet<int> Handed = [];

    /// <summary>
    /// Every server this process started. A test whose setup failed after starting one never disposes it; when the test
    /// process exits, whatever is still running is killed, so no redis-server outlives the run.
    /// </summary>
    private static readonly System.Collections.Concurrent.ConcurrentBag<Process> Started = CreateStarted();

    /// <summary>Counts <paramref name="process"/> among the servers killed when the test process exits (Redis Cluster nodes).</summary>
    internal static void KillAtExit(Process process) => Started.Add(process);

    private static System.Collections.Concurrent.ConcurrentBag<Process> CreateStarted()
    {
        var started = new System.Collections.Concurrent.ConcurrentBag<Process>();
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var process in started)
            {
                try
                {
                    if (!process.HasExited)
                    {
                        process.Kill();
                    }
                }
                catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
                {
                }
            }
        };
        return started;
    }
}

/// <summary>redis-server exited because its port was taken (<see cref="RedisServer.StartAsync"/> tries another).</summary>
public sealed class PortTakenException(string message) : InvalidOperationException(message);
