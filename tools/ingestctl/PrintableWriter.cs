using System.Globalization;
using System.Text;

namespace Ingest.Ctl;

/// <summary>
/// Everything ingestctl prints goes through this writer: control characters other than newline, carriage return and
/// tab are written as <c>\u001b</c>-style escapes. Stream ids, call sids, stop reasons and refusal details are text a
/// caller chose; printed raw, an escape sequence in one could rewrite the operator's terminal.
/// </summary>
internal sealed class PrintableWriter(TextWriter inner) : TextWriter
{
    public override Encoding Encoding => inner.Encoding;

    public override void Write(char value)
    {
        if (IsHostile(value))
        {
            inner.Write(Escape(value));
        }
        else
        {
            inner.Write(value);
        }
    }

    public override void Write(string? value)
    {
        if (value is null)
        {
            return;
        }

        if (!value.AsSpan().ContainsAny(Hostile))
        {
            inner.Write(value);
            return;
        }

        var sb = new StringBuilder(value.Length + 16);
        foreach (var c in value)
        {
            sb.Append(IsHostile(c) ? Escape(c) : c.ToString());
        }

        inner.Write(sb.ToString());
    }

    public override void WriteLine(string? value)
    {
        Write(value);
        inner.WriteLine();
    }

    public override void Flush() => inner.Flush();

    /// <summary>The text as it would be printed (for tests).</summary>
    public static string Escaped(string text)
    {
        using var writer = new StringWriter(CultureInfo.InvariantCulture);
        new PrintableWriter(writer).Write(text);
        return writer.ToString();
    }

    private static readonly System.Buffers.SearchValues<char> Hostile = System.Buffers.SearchValues.Create(
        [.. Enumerable.Range(0, 0x20).Where(c => c is not ('\n' or '\r' or '\t')).Select(c => (char)c), '\u007f', .. Enumerable.Range(0x80, 0x20).Select(c => (char)c)]);

    private static bool IsHostile(char c) => Hostile.Contains(c);

    private static string Escape(char c) => "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture);
}
