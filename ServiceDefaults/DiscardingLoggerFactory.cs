using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;

namespace Ingest.ServiceDefaults;

/// <summary>
/// Loggers that do everything the process's console loggers do with a line (the same level filters, the same
/// formatter) except write it: the formatted line goes to <see cref="TextWriter.Null"/>. The start-up warm-up's calls
/// log through these, so the logging path of a call is compiled before the first real one, and no line of theirs is
/// ever seen. With no console formatter registered they are null loggers.
/// </summary>
public sealed class DiscardingLoggerFactory(ILoggerFactory real, IEnumerable<ConsoleFormatter> formatters, IOptionsMonitor<ConsoleLoggerOptions> console)
    : ILoggerFactory
{
    private readonly ConsoleFormatter? _formatter = formatters.FirstOrDefault(f => f.Name == console.CurrentValue.FormatterName);

    public ILogger CreateLogger(string categoryName) =>
        _formatter is null ? NullLogger.Instance : new DiscardingLogger(real.CreateLogger(categoryName), categoryName, _formatter);

    public void AddProvider(ILoggerProvider provider)
    {
        // Nothing is ever written: a provider added here would have nothing to write.
    }

    public void Dispose()
    {
        // The real factory is the host's; it disposes it.
    }

    private sealed class DiscardingLogger(ILogger filter, string category, ConsoleFormatter formatter) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => filter.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter1)
        {
            if (IsEnabled(logLevel))
            {
                formatter.Write(new LogEntry<TState>(logLevel, category, eventId, state, exception, formatter1), null, TextWriter.Null);
            }
        }
    }
}
