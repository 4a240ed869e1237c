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
    }
}
