using System.Net.Sockets;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Ingest.ServiceDefaults;

/// <summary>
/// Runs a process entry point so that an unusable setting ends it with one line on stderr and exit code 2, and a Redis
/// that cannot be reached while the process starts (Orleans membership needs it) with one line and exit code 1, for
/// the orchestrator to start it again, instead of an unhandled exception and an abort.
/// </summary>
public static class StartupGuard
{
    public static async Task<int> RunAsync(Func<Task> main)
    {
        try
        {
            await main();
            return 0;
        }
        catch (SettingException ex)
        {
            await Console.Error.WriteLineAsync(ex.Message);
            return 2;
        }
        catch (OptionsValidationException ex)
        {
            // Validators (ValidateOnStart) phrase their failures as "invalid setting NAME: problem"; one line, the first.
            await Console.Error.WriteLineAsync(ex.Failures.FirstOrDefault() ?? ex.Message);
            return 2;
        }
        catch (AggregateException ex) when (ex.InnerExceptions.FirstOrDefault() is OptionsValidationException first)
        {
            await Console.Error.WriteLineAsync(first.Failures.FirstOrDefault() ?? first.Message);
            return 2;
        }
        catch (OperationCanceledException)
        {
            // Stopped (SIGTERM, Ctrl+C) before it finished starting, e.g. while still waiting for the cluster.
            await Console.Error.WriteLineAsync("stopped before it finished starting");
            return 1;
        }
        catch (Exception ex) when (RedisUnreachable(ex) is { } redis)
        {
            await Console.Error.WriteLineAsync($"cannot start: Redis ({RedisUrl.Setting}) could not be reached: {FirstLine(redis.Message)}");
            return 1;
        }
        catch (IOException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse })
        {
            // A listener lost the race after PortCheck: still one line, never a stack trace.
            await Console.Error.WriteLineAsync($"invalid setting: {ex.Message}");
            return 2;
        }
    }

    private static RedisConnectionException? RedisUnreachable(Exception ex) => ex switch
    {
        RedisConnectionException redis => redis,
        AggregateException aggregate => aggregate.InnerExceptions.Select(RedisUnreachable).FirstOrDefault(r => r is not null),
        { InnerException: { } inner } => RedisUnreachable(inner),
        _ => null,
    };

    private static string FirstLine(string text) => text.Split('\n', 2)[0].Trim();
}
