namespace Ingest.ServiceDefaults;

/// <summary>Values as the contract's log lines spell them.</summary>
public static class LogValues
{
    /// <summary><c>true</c>/<c>false</c>, as in <c>supportExotel: true</c> (not .NET's <c>True</c>).</summary>
    public static string Bool(bool value) => value ? "true" : "false";
}
