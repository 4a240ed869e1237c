using Ingest.ServiceDefaults;

namespace Ingest.Gateway;

public static class Program
{
    public static Task<int> Main(string[] args) =>
        StartupGuard.RunAsync(async () =>
        {
            await using var app = await GatewayHost.BuildAsync(args);
            ShutdownWatchdog.Watch(app.Services);
            await app.RunAsync();
        });
}
