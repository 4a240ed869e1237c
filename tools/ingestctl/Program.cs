using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Parsing;

namespace Ingest.Ctl;

/// <summary>
/// ingestctl: the operators' tool for Orleans.Ingest. Exit codes: 0 done, 1 the thing failed (refused, unreachable,
/// not found), 2 the command line was wrong, 130 interrupted (Ctrl+C).
/// </summary>
public static class Program
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 2;
    public const int Interrupted = 130;

    public static async Task<int> Main(string[] args)
    {
        // Callers' free text (stream ids, stop reasons, details) is printed with its control characters escaped.
        Console.SetOut(new PrintableWriter(Console.Out));
        Console.SetError(new PrintableWriter(Console.Error));
        var root = new RootCommand("ingestctl: see, steer and debug Orleans.Ingest (tokens, flags, live calls, refusals, simulated calls, dumps of landed audio)")
        {
            TokenCommand.Build(),
            AdminCommands.Flags(),
            AdminCommands.Calls(),
            AdminCommands.Refusals(),
            SimulateCommand.Build(),
            DumpCommand.Build(),
            TailCommand.Build(),
        };

        var parse = root.Parse(args);
        if (parse.Action is HelpAction)
        {
            return await parse.InvokeAsync();
        }

        if (parse.Errors.Count > 0)
        {
            var error = parse.Errors[0];
            var message = OneLine(error.Message);
            var option = error.SymbolResult switch
            {
                OptionResult o => o.Option.Name,
                ArgumentResult { Parent: OptionResult o } => o.Option.Name,
                _ => null,
            };
            if (option is not null && !message.Contains(option, StringComparison.Ordinal))
            {
                message = $"{option}: {message}";
            }

            await Console.Error.WriteLineAsync($"ingestctl: {message} (see --help)");
            return Usage;
        }

        if (parse.CommandResult.Command == root || (parse.CommandResult.Command.Subcommands.Count > 0 && parse.CommandResult.Command.Action is null))
        {
            await Console.Error.WriteLineAsync($"ingestctl: say what to do: {string.Join(", ", parse.CommandResult.Command.Subcommands.Select(c => c.Name))} (see --help)");
            return Usage;
        }

        try
        {
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (CtlException ex)
        {
            await Console.Error.WriteLineAsync($"ingestctl: {ex.Message}");
            return ex.ExitCode;
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync("ingestctl: interrupted");
            return Interrupted;
        }
        catch (Exception ex) when (ex is HttpRequestException or System.Net.WebSockets.WebSocketException or StackExchange.Redis.RedisException or IOException or TimeoutException)
        {
            await Console.Error.WriteLineAsync($"ingestctl: {OneLine(ex.Message)}");
            return Failure;
        }
    }

    public static string OneLine(string text) => System.Text.RegularExpressions.Regex.Replace(text, @"\s+", " ").Trim();
}

/// <summary>A failure the user should read as one line; <see cref="ExitCode"/> says whose fault (1 the world, 2 the command line).</summary>
public sealed class CtlException(string message, int exitCode = Program.Failure) : Exception(message)
{
    public int ExitCode { get; } = exitCode;

    public static CtlException Usage(string message) => new(message, Program.Usage);
}
