using Ingest.ServiceDefaults;

namespace Ingest.Silo;

public static class Program
{
    public static Task<int> Main(string[] args) =>
        StartupGuard.RunAsync(async () =>
        {
            await using var app = await SiloHost.BuildAsync(args);
            ShutdownWatchdog.Watch(app.Services);
            await app.RunAsync();
        });
}
