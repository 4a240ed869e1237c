using System.Reflection;
using System.Text.RegularExpressions;
using Ingest.Gateway;
using Ingest.Grains;
using Ingest.Silo;
using Ingest.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Xunit.Abstractions;

namespace Ingest.Tests.Operations;

/// <summary>
/// Checks that keep the docs true to the code: the README's configuration table against the settings the gateway and
/// the silo read (names and defaults), and every test, file and setting a doc names against the repository.
/// </summary>
public sealed partial class DocsTests(ITestOutputHelper output)
{
    private static readonly string Root = Repository.Root;

    /// <summary>Listed because the code hands them to a library that reads them itself (the OpenTelemetry exporter).</summary>
    private static readonly HashSet<string> ReadByLibraries = ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_BSP_SCHEDULE_DELAY"];

    /// <summary>Folders the tools make (run data, build output, test results): a doc may name them in a clean clone.</summary>
    private static readonly string[] Generated = [".run", "bin", "obj", "TestResults"];

    [Fact]
    public void The_README_configuration_table_lists_exactly_the_settings_the_code_reads_with_their_defaults()
    {
        var rows = ConfigurationRows();
        var listed = rows.SelectMany(r => r.Names).ToHashSet(StringComparer.Ordinal);
        var read = SettingsTheCodeReads();
        output.WriteLine($"README lists {listed.Count} settings; the code reads {read.Count}");

        var notListed = read.Except(listed).Order().ToList();
        var notRead = listed.Except(read).Except(ReadByLibraries).Order().ToList();
        Assert.True(notListed.Count == 0, "read by the code but not in the README's configuration table: " + string.Join(", ", notListed));
        Assert.True(notRead.Count == 0, "in the README's configuration table but read nowhere: " + string.Join(", ", notRead));

        // A default written as literals only (`30`, or `11111`, `30000` for two names) must give, set explicitly, exactly
        // the settings that leaving it unset gives. Prose defaults ("none", "SILO_PORT − 3030") are not checked.
        var gatewayDefault = DescribeGateway([]);
        var siloDefault = DescribeSilo([]);
        var checkedDefaults = 0;
        var wrong = new List<string>();
        foreach (var row in rows)
        {
            if (row.Defaults is not { } defaults)
            {
                continue;
            }

            for (var i = 0; i < row.Names.Count; i++)
            {
                var value = defaults.Count == 1 ? defaults[0] : defaults[i];
                var set = new Dictionary<string, string?> { [row.Names[i]] = value };
                if (row.Components.Contains("gateway") && DescribeGateway(set) != gatewayDefault)
                {
                    wrong.Add($"{row.Names[i]}={value} (gateway)");
                }

                if (row.Components.Contains("silo") && DescribeSilo(set) != siloDefault)
                {
                    wrong.Add($"{row.Names[i]}={value} (silo)");
                }

                checkedDefaults++;
            }
        }

        output.WriteLine($"defaults checked: {checkedDefaults}");
        Assert.True(wrong.Count == 0, "the README's default is not the code's (setting it changes the settings): " + string.Join(", ", wrong));
        Assert.True(checkedDefaults >= 25, $"only {checkedDefaults} defaults were checked: the table's format changed under this test");
    }

    [Fact]
    public void Every_test_file_and_setting_a_doc_names_exists()
    {
        var files = Repository.Files();
        var testSources = files.Where(f => f.StartsWith("tests/", StringComparison.Ordinal) || f.StartsWith("bench/Ingest.Bench.Tests/", StringComparison.Ordinal))
            .Where(f => f.EndsWith(".cs", StringComparison.Ordinal))
            .Select(f => File.ReadAllText(Path.Combine(Root, f)))
            .ToList();
        var code = string.Join('\n', files
            .Where(f => !f.EndsWith(".md", StringComparison.Ordinal) && !f.StartsWith("tests/", StringComparison.Ordinal) && !f.StartsWith("bench/results/", StringComparison.Ordinal) && IsText(f))
            .Select(f => File.ReadAllText(Path.Combine(Root, f))));

        var problems = new List<string>();
        var named = 0;
        foreach (var doc in files.Where(f => f.EndsWith(".md", StringComparison.Ordinal)))
        {
            var text = File.ReadAllText(Path.Combine(Root, doc));
            foreach (Match span in CodeSpan().Matches(text))
            {
                var value = span.Groups[1].Value.Trim();
                if (TestName().Match(value) is { Success: true } test)
                {
                    named++;
                    var type = test.Groups["type"].Value;
                    var holders = testSources.Where(s => Regex.IsMatch(s, @"\bclass\s+" + type + @"\b")).ToList();
                    if (holders.Count == 0)
                    {
                        problems.Add($"{doc}: test class {type} does not exist");
                    }
                    else if (test.Groups["method"].Success && !holders.Any(s => s.Contains(" " + test.Groups["method"].Value + "(", StringComparison.Ordinal)))
                    {
                        problems.Add($"{doc}: test {type}.{test.Groups["method"].Value} does not exist");
                    }
                }
                else if (FilePath().IsMatch(value))
                {
                    named++;
                    var path = value.TrimEnd('/');
                    if (Generated.Contains(path))
                    {
                        continue;
                    }

                    // A path relative to a project the doc shows (../Ingest.Testing/...): the part after the "../".
                    while (path.StartsWith("../", StringComparison.Ordinal))
                    {
                        path = path[3..];
                    }

                    var docDir = Path.GetDirectoryName(doc)!.Replace('\\', '/');
                    var exists = files.Any(f => f == path || f.StartsWith(path + "/", StringComparison.Ordinal) || f.EndsWith("/" + path, StringComparison.Ordinal) || f.Contains("/" + path + "/", StringComparison.Ordinal)
                        || (docDir.Length > 0 && (f == docDir + "/" + path || f.StartsWith(docDir + "/" + path + "/", StringComparison.Ordinal))));
                    if (!exists)
                    {
                        problems.Add($"{doc}: file {value} does not exist");
                    }
                }
                else if (SettingName().IsMatch(value))
                {
                    named++;
                    if (!code.Contains(value, StringComparison.Ordinal) && !ReadByLibraries.Contains(value))
                    {
                        problems.Add($"{doc}: setting {value} is read nowhere");
                    }
                }
            }
        }

        output.WriteLine($"names checked: {named}");
        Assert.True(problems.Count == 0, string.Join('\n', problems.Distinct()));
        Assert.True(named > 300, $"only {named} names were checked: the docs' format changed under this test");
    }

    private sealed record Row(List<string> Names, string Components, List<string>? Defaults);

    /// <summary>The rows of the README's "## Configuration" table: names (first cell), components (second), default (last).</summary>
    private static List<Row> ConfigurationRows()
    {
        var lines = File.ReadAllLines(Path.Combine(Root, "README.md"));
        var start = Array.FindIndex(lines, l => l.StartsWith("## Configuration", StringComparison.Ordinal));
        Assert.True(start >= 0, "README.md has no '## Configuration' section");
        var rows = new List<Row>();
        foreach (var line in lines.Skip(start + 1).TakeWhile(l => !l.StartsWith("## ", StringComparison.Ordinal)))
        {
            if (!line.StartsWith("| `", StringComparison.Ordinal))
            {
                continue;
            }

            var cells = line.Trim('|').Split(" | ");
            var names = SettingInCell().Matches(cells[0]).Select(m => m.Groups[1].Value).ToList();
            var literals = LiteralsOnly().Match(cells[^1].Trim());
            var defaults = literals.Success ? Literal().Matches(cells[^1]).Select(m => m.Groups[1].Value).ToList() : null;
            if (defaults is not null && defaults.Count != 1 && defaults.Count != names.Count)
            {
                defaults = null;
            }

            rows.Add(new Row(names, cells[1], defaults));
        }

        Assert.True(rows.Count >= 30, $"README's configuration table has only {rows.Count} rows: its format changed under this test");
        return rows;
    }

    /// <summary>Every key the gateway's and the silo's settings ask of their configuration, plus the code's other readers.</summary>
    private static HashSet<string> SettingsTheCodeReads()
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        GatewaySettings.From(Recording([], keys));
        SiloSettings.From(Recording([], keys)).Ingest(new IngestOptions());

        // Read outside the settings records (the dashboard, TLS, tracing wiring): the keys those files ask for by name.
        foreach (var file in Repository.Files().Where(f => f.EndsWith(".cs", StringComparison.Ordinal)
            && (f.StartsWith("Gateway/", StringComparison.Ordinal) || f.StartsWith("Silo/", StringComparison.Ordinal) || f.StartsWith("ServiceDefaults/", StringComparison.Ordinal))))
        {
            foreach (Match m in ConfigurationKeyInCode().Matches(File.ReadAllText(Path.Combine(Root, file))))
            {
                keys.Add(m.Groups["key"].Value);
            }
        }

        keys.RemoveWhere(k => !SettingName().IsMatch(k) && k is not "PORT");
        return keys;
    }

    private static string DescribeGateway(Dictionary<string, string?> values) => GatewaySettings.From(Recording(values, [])).ToString();

    private static string DescribeSilo(Dictionary<string, string?> values)
    {
        var settings = SiloSettings.From(Recording(values, []));
        var ingest = new IngestOptions();
        settings.Ingest(ingest);
        return settings + " " + string.Join(", ", typeof(IngestOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Select(p => p.Name + "=" + p.GetValue(ingest)));
    }

    private static IConfiguration Recording(Dictionary<string, string?> values, HashSet<string> read) =>
        new ConfigurationBuilder().Add(new RecordingSource(values, read)).Build();

    private sealed class RecordingSource(Dictionary<string, string?> values, HashSet<string> read) : IConfigurationSource
    {
        public IConfigurationProvider Build(IConfigurationBuilder builder) => new RecordingProvider(values, read);
    }

    /// <summary>A configuration that notes every key asked of it (the indexer and the options binder both come here).</summary>
    private sealed class RecordingProvider(Dictionary<string, string?> values, HashSet<string> read) : ConfigurationProvider
    {
        public override void Load() => Data = new Dictionary<string, string?>(values, StringComparer.OrdinalIgnoreCase);

        public override bool TryGet(string key, out string? value)
        {
            read.Add(key);
            return base.TryGet(key, out value);
        }
    }

    private static bool IsText(string file) =>
        Path.GetExtension(file) is ".cs" or ".sh" or ".yaml" or ".yml" or ".json" or ".toml" or ".lua" or ".js" or ".html" or ""
        && new FileInfo(Path.Combine(Root, file)).Length < 2_000_000;

    [GeneratedRegex("`([^`\n]+)`")]
    private static partial Regex CodeSpan();

    // SomeTests, SomeTests.Method_name, SomeTests.Method_name(args)
    [GeneratedRegex(@"^(?<type>[A-Z]\w*Tests)(\.(?<method>[A-Za-z_]\w*))?(\(.*\))?$")]
    private static partial Regex TestName();

    // a path with a folder or a known extension, without placeholders, not a URL or an HTTP route
    [GeneratedRegex(@"^(?!/)(?!https?:)[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*(/|\.(cs|sh|md|lua|json|ya?ml|csproj|sln|props|toml|js|html|tsv|txt|wav))$")]
    private static partial Regex FilePath();

    [GeneratedRegex(@"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$")]
    private static partial Regex SettingName();

    [GeneratedRegex(@"`([A-Z][A-Z0-9_]*)`")]
    private static partial Regex SettingInCell();

    [GeneratedRegex(@"^`[^`]+`(,\s*`[^`]+`)*$")]
    private static partial Regex LiteralsOnly();

    [GeneratedRegex(@"`([^`]+)`")]
    private static partial Regex Literal();

    [GeneratedRegex(@"(\[\s*""(?<key>[A-Z][A-Z0-9_]+)""\s*\]|\(\s*\w*[cC]onfiguration\w*\s*,\s*""(?<key>[A-Z][A-Z0-9_]+)""|ConfigurationKeyName\(""(?<key>[A-Z0-9_]+)""\)|const string \w*Setting\w* = ""(?<key>[A-Z][A-Z0-9_]+)"")")]
    private static partial Regex ConfigurationKeyInCode();
}
