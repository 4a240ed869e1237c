using System.Diagnostics;
using System.Globalization;
using System.Text;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Operations;

/// <summary>
/// tools/run-local.sh in a real pseudo-terminal (util-linux <c>script</c>): Ctrl+C is the byte 0x03 typed into the
/// terminal, which the line discipline turns into SIGINT for the whole foreground process group. The script must come
/// back within 30 s and leave no Redis, silo or gateway behind, also when Ctrl+C is pressed a second time while stopping.
/// </summary>
[RunsFor(64)]
[Trait("Category", "Slow")]
public sealed class RunLocalTests(Xunit.Abstractions.ITestOutputHelper output)
{
    /// <summary>Every listening TCP socket of the machine (/proc/net/tcp and tcp6: state 0A), by local address and port.</summary>
    private static IEnumerable<(System.Net.IPAddress Address, int Port)> ListeningSockets()
    {
        foreach (var file in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            if (!File.Exists(file))
            {
                continue;
            }

            foreach (var line in File.ReadLines(file).Skip(1))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length < 4 || fields[3] != "0A")
                {
                    continue;
                }

                var (hex, port) = (fields[1][..fields[1].IndexOf(':', StringComparison.Ordinal)], Convert.ToInt32(fields[1][(fields[1].IndexOf(':', StringComparison.Ordinal) + 1)..], 16));
                // The kernel prints each 32-bit word of the address in host (little-endian) order.
                var bytes = Enumerable.Range(0, hex.Length / 8)
                    .SelectMany(w => Enumerable.Range(0, 4).Select(b => Convert.ToByte(hex.Substring((w * 8) + ((3 - b) * 2), 2), 16)))
                    .ToArray();
                yield return (new System.Net.IPAddress(bytes), port);
            }
        }
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(1, true)]
    public async Task CtrlC_in_a_terminal_returns_within_30_seconds_and_leaves_no_process(int presses, bool throughTee)
    {
        var marker = "run-local-test-" + Guid.NewGuid().ToString("N")[..8];
        var runDir = Path.Combine(Path.GetTempPath(), marker);
        Directory.CreateDirectory(runDir);
        var redisPort = Free();
        var env = new Dictionary<string, string>
        {
            ["RUN_LOCAL_TEST_MARKER"] = marker,
            ["RUN_DIR"] = runDir,
            ["RUN_LOCAL_SKIP_BUILD"] = "1",
            ["CONFIGURATION"] = ProcessCluster.Configuration,
            ["REDIS_PORT"] = redisPort,
            ["PORT"] = Free(),
            ["SILO_PORT"] = Free(),
            ["GATEWAY_PORT"] = Free(),
            ["SILO_HTTP_PORT"] = Free(),
            ["CLUSTER_ID"] = marker,
            ["SERVICE_ID"] = marker,
        };
        var script = Path.Combine(ProcessCluster.RepositoryRoot, "tools", "run-local.sh");
        // env --default-signal: a test run started in the background (a job of a non-interactive shell) inherits SIGINT
        // ignored, and a shell cannot trap a signal ignored at its entry; a terminal's shell never starts that way.
        var info = new ProcessStartInfo("env")
        {
            // Through tee: Ctrl+C kills tee too, and the script's own output then goes to a broken pipe while it stops.
            ArgumentList = { "--default-signal=INT", "script", "-qfec", throughTee ? $"bash {script} | tee {Path.Combine(runDir, "out.log")}" : $"bash {script}", "/dev/null" },
            WorkingDirectory = ProcessCluster.RepositoryRoot,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (key, value) in env)
        {
            info.Environment[key] = value;
        }

        using var terminal = Process.Start(info) ?? throw new InvalidOperationException("could not start script");
        var seen = new StringBuilder();
        var running = new TaskCompletionSource();
        terminal.OutputDataReceived += (_, e) =>
        {
            lock (seen)
            {
                seen.AppendLine(e.Data);
            }

            if (e.Data?.Contains("Press Ctrl+C to stop", StringComparison.Ordinal) == true)
            {
                running.TrySetResult();
            }
        };
        terminal.ErrorDataReceived += (_, e) =>
        {
            lock (seen)
            {
                seen.AppendLine(e.Data);
            }
        };
        terminal.BeginOutputReadLine();
        terminal.BeginErrorReadLine();
        try
        {
            await running.Task.WaitAsync(TimeSpan.FromSeconds(90));
            Assert.True(Leftovers(marker, redisPort).Count >= 3, "expected redis, silo and gateway running\n" + seen);

            // CONTRACT §2: a local run offers nothing to the machine's network: every port it opened listens on loopback.
            var ports = new[] { "PORT", "SILO_PORT", "GATEWAY_PORT", "SILO_HTTP_PORT", "REDIS_PORT" }.Select(k => int.Parse(env[k], CultureInfo.InvariantCulture)).ToHashSet();
            var listening = ListeningSockets().Where(l => ports.Contains(l.Port)).ToList();
            output.WriteLine("listening: " + string.Join(", ", listening.Select(l => $"{l.Address}:{l.Port}")));
            Assert.Equal(ports.Order(), listening.Select(l => l.Port).Distinct().Order());
            Assert.All(listening, l => Assert.True(System.Net.IPAddress.IsLoopback(l.Address), $"{l.Address}:{l.Port} is not loopback"));

            // Each role gets only its secrets (issue 24 item 6): the silo never sees the Exotel password or the JWT key.
            var siloEnvironment = Leftovers(marker, redisPort)
                .Select(pid => (Cmdline: Read(pid, "cmdline"), Environ: Read(pid, "environ")))
                .Single(p => p.Cmdline.Contains("Ingest.Silo.dll", StringComparison.Ordinal)).Environ.Split('\0');
            Assert.DoesNotContain(siloEnvironment, v => v.StartsWith("EXOTEL_BASIC_AUTH_PASS=", StringComparison.Ordinal) || v.StartsWith("JWT_SECRET=", StringComparison.Ordinal) || v.StartsWith("EXOTEL_BASIC_AUTH_USER=", StringComparison.Ordinal));

            var clock = Stopwatch.StartNew();
            for (var press = 0; press < presses; press++)
            {
                try
                {
                    // The second press lands while the script is stopping its children (stopping takes seconds).
                    await terminal.StandardInput.WriteAsync('\x03');
                    await terminal.StandardInput.FlushAsync();
                }
                catch (IOException)
                {
                    Assert.True(press > 0, "the terminal was gone before the first Ctrl+C");
                }

                await Task.Delay(TimeSpan.FromMilliseconds(150));
            }

            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await terminal.WaitForExitAsync(cts.Token);
            output.WriteLine($"returned {clock.ElapsedMilliseconds} ms after the first Ctrl+C ({presses} press(es))");

            // Exited processes can take a moment to be reaped by init after their parent is gone.
            var left = await WaitNoLeftoversAsync(marker, redisPort);
            Assert.True(left.Count == 0, "left running: " + string.Join(", ", left) + "\n" + seen);
        }
        catch
        {
            output.WriteLine(seen.ToString());
            throw;
        }
        finally
        {
            foreach (var pid in Leftovers(marker, redisPort))
            {
                try
                {
                    Process.GetProcessById(pid).Kill();
                }
                catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
                {
                }
            }

            if (!terminal.HasExited)
            {
                terminal.Kill(entireProcessTree: true);
            }

            try
            {
                Directory.Delete(runDir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static string Free() => RedisServer.FreePort().ToString(CultureInfo.InvariantCulture);

    private static async Task<List<int>> WaitNoLeftoversAsync(string marker, string redisPort)
    {
        for (var i = 0; i < 20; i++)
        {
            if (Leftovers(marker, redisPort).Count == 0)
            {
                return [];
            }

            await Task.Delay(100);
        }

        return Leftovers(marker, redisPort);
    }

    private static string Read(int pid, string file)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/{file}");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return string.Empty;
        }
    }

    /// <summary>
    /// Live processes (not zombies) started under this test's marker, whatever their session or parent, and the Redis on
    /// this test's port (redis-server overwrites its environment with its process title, so the marker is gone there).
    /// </summary>
    private static List<int> Leftovers(string marker, string redisPort)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var state = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
                if (state == "Z")
                {
                    continue;
                }

                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
                if (File.ReadAllText(Path.Combine(dir, "environ")).Contains("RUN_LOCAL_TEST_MARKER=" + marker, StringComparison.Ordinal)
                    || (cmdline.StartsWith("redis-server", StringComparison.Ordinal) && cmdline.Contains(":" + redisPort, StringComparison.Ordinal)))
                {
                    found.Add(pid);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }

        return found;
    }
}
