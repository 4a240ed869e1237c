using System.Diagnostics;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Operations;

/// <summary>deploy/ passes yamllint, the Kubernetes manifests render (kubectl kustomize), and compose carries no literal secret.</summary>
public sealed class DeployLintTests
{
    [Fact]
    public async Task Deploy_files_pass_the_linters()
    {
        var info = new ProcessStartInfo("bash")
        {
            ArgumentList = { Path.Combine(ProcessCluster.RepositoryRoot, "tools", "lint-deploy.sh") },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(info) ?? throw new InvalidOperationException("could not run tools/lint-deploy.sh");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token);
        Assert.True(process.ExitCode == 0, await stdout + await stderr);
        Assert.Contains("yamllint: deploy/ clean", await stdout, StringComparison.Ordinal);
    }
}
