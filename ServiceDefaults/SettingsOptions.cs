using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace Ingest.ServiceDefaults;

/// <summary>
/// The options pattern for CONTRACT §2 settings: one POCO per concern whose properties name their environment variable
/// with <see cref="ConfigurationKeyNameAttribute"/> (every default on the property), bound by the configuration binder
/// and checked by the concern's own <see cref="IValidateOptions{TOptions}"/>. A value that cannot be used stops the
/// process with <see cref="SettingException"/>: one line naming the setting, before the host is built.
/// </summary>
public static class SettingsOptions
{
    public static T Load<T>(IConfiguration configuration, IValidateOptions<T> validator)
        where T : class, new()
    {
        // Blank means "not set" (as in every other setting); values are trimmed; whole numbers are plain digits only
        // (no sign, no hex, no exponent), so "0x10" or "1e3" is refused rather than read as something else.
        var present = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var property in typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.GetCustomAttribute<ConfigurationKeyNameAttribute>()?.Name is not { } key || Settings.Text(configuration, key) is not { } value)
            {
                continue;
            }

            var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            if ((type == typeof(int) || type == typeof(long)) && !long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            {
                throw new SettingException(key, "must be a whole number");
            }

            present[key] = value;
        }

        var options = new T();
        try
        {
            new ConfigurationBuilder().AddInMemoryCollection(present).Build().Bind(options);
        }
        catch (InvalidOperationException ex)
        {
            throw new SettingException(present.Keys.FirstOrDefault(k => ex.Message.Contains(k, StringComparison.OrdinalIgnoreCase)) ?? typeof(T).Name, "cannot be read");
        }

        var result = validator.Validate(Options.DefaultName, options);
        if (result.Failed && result.Failures?.FirstOrDefault() is { } failure)
        {
            throw SettingRules.ToException(failure);
        }

        return options;
    }
}

/// <summary>Checks shared by the settings validators; each failure is "NAME: problem".</summary>
public static class SettingRules
{
    public static void Range(List<string> failures, string setting, long value, long min, long max)
    {
        if (value < min || value > max)
        {
            failures.Add($"{setting}: must be a whole number from {min} to {max}");
        }
    }

    public static ValidateOptionsResult Result(List<string> failures) =>
        failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);

    public static SettingException ToException(string failure)
    {
        var colon = failure.IndexOf(": ", StringComparison.Ordinal);
        return colon > 0 ? new SettingException(failure[..colon], failure[(colon + 2)..]) : new SettingException("settings", failure);
    }
}
