using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace Ingest.ServiceDefaults;

/// <summary>Runs a process entry point so that an unusable setting ends it with one line on stderr and exit code 2.</summary>
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
        catch (IOException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse })
        {
            // A listener lost the race after PortCheck: still one line, never a stack trace.
            await Console.Error.WriteLineAsync($"invalid setting: {ex.Message}");
            return 2;
        }
    }
}
