using Ingest.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ingest.Tests.EndToEnd;

public sealed class StartupLogTests
{
    [Fact]
    public async Task Gateway_started_with_support_exotel_true_logs_the_contract_line_in_lower_case()
    {
        var logs = new CapturingLoggerProvider();
        await using var stack = await IngestStack.StartAsync();
        await stack.AddSiloAsync();
        await stack.AddGatewayAsync(new() { ["SUPPORT_EXOTEL"] = "true", ["Logging:LogLevel:Default"] = "Information" }, b => b.Logging.AddProvider(logs));

        Assert.Contains(logs.Entries, e => e.Message.StartsWith("supportExotel: true", StringComparison.Ordinal));
        Assert.DoesNotContain(logs.Entries, e => e.Message.Contains("supportExotel: True", StringComparison.Ordinal));
    }
}
