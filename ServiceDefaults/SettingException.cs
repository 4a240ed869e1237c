namespace Ingest.ServiceDefaults;

/// <summary>A setting the process cannot use. The message is one line that names the setting.</summary>
public sealed class SettingException(string setting, string problem)
    : Exception($"invalid setting {setting}: {problem}")
{
    public string Setting { get; } = setting;
}
