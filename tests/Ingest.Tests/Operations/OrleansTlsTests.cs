using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Ingest.Tests.Infrastructure;

namespace Ingest.Tests.Operations;

/// <summary>ORLEANS_TLS_CERT_PATH: silo and gateway talk mutual TLS with the cluster certificate, and only with it.</summary>
[Trait("Category", "Slow")]
public sealed class OrleansTlsTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("ingest-tls-").FullName;

    [Fact]
    public async Task With_the_cluster_certificate_calls_flow_and_a_gateway_with_another_certificate_never_gets_ready()
    {
        var cluster = Certificate("cluster");
        var stranger = Certificate("stranger");
        await using var processes = await ProcessCluster.StartAsync();

        var tls = new Dictionary<string, string> { ["ORLEANS_TLS_CERT_PATH"] = cluster, ["ORLEANS_TLS_CERT_PASSWORD"] = "pw" };
        await processes.StartSiloAsync("silo", tls);
        var gateway = await processes.StartGatewayAsync("gateway", tls);
        var call = await LiveCall.StartAsync(gateway.IngestUri, 1);
        await call.SendAsync(5);
        await call.FinishAsync();
        Assert.Null(await call.VerifyAsync(processes.Connection, TimeSpan.FromSeconds(10)));

        var intruder = processes.StartGatewayAsync("intruder", new() { ["ORLEANS_TLS_CERT_PATH"] = stranger, ["ORLEANS_TLS_CERT_PASSWORD"] = "pw" });
        _ = intruder.ContinueWith(t => t.Exception, TaskScheduler.Default);
        await Task.WhenAny(intruder, Task.Delay(TimeSpan.FromSeconds(12)));
        output.WriteLine(processes.Children[^1].Tail(15));
        Assert.False(intruder.IsCompletedSuccessfully, "a gateway with another certificate reached the cluster");
    }

    [Fact]
    public async Task A_certificate_file_that_does_not_open_is_refused_in_one_line()
    {
        var bad = Path.Combine(_directory, "bad.pfx");
        await File.WriteAllTextAsync(bad, "not a certificate");
        var outcome = await HostRun.RunAsync(HostRun.GatewayDll, new() { ["ORLEANS_TLS_CERT_PATH"] = bad, ["REDIS_URL"] = "127.0.0.1:1" });
        HostRun.AssertRefused(outcome, "ORLEANS_TLS_CERT_PATH");
    }

    private string Certificate(string name)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN=orleans-ingest-{name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        var path = Path.Combine(_directory, name + ".pfx");
        File.WriteAllBytes(path, certificate.Export(X509ContentType.Pfx, "pw"));
        return path;
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
