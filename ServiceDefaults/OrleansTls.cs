using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Configuration;

namespace Ingest.ServiceDefaults;

/// <summary>
/// Opt-in TLS for Orleans traffic (silo to silo, gateway to silo): ORLEANS_TLS_CERT_PATH names a PKCS#12 file with the
/// certificate and its private key, ORLEANS_TLS_CERT_PASSWORD its password. Every silo and gateway of a cluster is given
/// the same certificate, and each side accepts only a peer presenting that very certificate (mutual TLS, pinned by
/// thumbprint), so a pod that can reach ports 11111/30000 but holds no copy of the key cannot join or call grains.
/// </summary>
public static class OrleansTls
{
    public const string PathSetting = "ORLEANS_TLS_CERT_PATH";
    public const string PasswordSetting = "ORLEANS_TLS_CERT_PASSWORD";

    /// <summary>The cluster certificate, or null when ORLEANS_TLS_CERT_PATH is unset (plain TCP, the default).</summary>
    public static X509Certificate2? Load(IConfiguration configuration)
    {
        if (Settings.Text(configuration, PathSetting) is not { } path)
        {
            return Settings.Text(configuration, PasswordSetting) is null
                ? null
                : throw new SettingException(PasswordSetting, $"set without {PathSetting}");
        }

        if (!File.Exists(path))
        {
            throw new SettingException(PathSetting, "no such file");
        }

        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadPkcs12FromFile(path, configuration[PasswordSetting]);
        }
        catch (CryptographicException)
        {
            throw new SettingException(PathSetting, $"not a PKCS#12 file this {PasswordSetting} opens");
        }

        return certificate.HasPrivateKey ? certificate : throw new SettingException(PathSetting, "the certificate has no private key");
    }

    /// <summary>A peer is one of ours when it presents the cluster certificate itself.</summary>
    public static bool IsClusterPeer(X509Certificate2 local, X509Certificate2? remote) =>
        remote is not null && CryptographicOperations.FixedTimeEquals(local.GetCertHash(HashAlgorithmName.SHA256), remote.GetCertHash(HashAlgorithmName.SHA256));
}
