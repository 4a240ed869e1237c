using Ingest.Grains.Interfaces;
using Ingest.ServiceDefaults;
using Microsoft.Extensions.Logging;

namespace Ingest.Grains;

/// <summary>
/// Persisted state of <see cref="IngestFlagsGrain"/>. Its name and namespace are part of the stored data: keep them.
/// </summary>
[GenerateSerializer]
public sealed class IngestFlagsState
{
    [Id(0)] public bool SupportExotel { get; set; }

    [Id(1)] public long Version { get; set; }

    [Id(2)] public string Source { get; set; } = "default";

    [Id(3)] public DateTimeOffset ChangedAt { get; set; }
}

/// <summary>The cluster-wide SUPPORT_EXOTEL flag, persisted in Redis so it survives a restart of the whole cluster.</summary>
public sealed partial class IngestFlagsGrain(
    [PersistentState("flags", IngestFlagsGrain.StorageName)] IPersistentState<IngestFlagsState> state,
    ILogger<IngestFlagsGrain> logger) : Grain, IIngestFlagsGrain
{
    public const string StorageName = "ingest";

    public ValueTask<IngestFlags> Get() => ValueTask.FromResult(Snapshot());

    public async ValueTask<IngestFlags> SetSupportExotel(bool enabled, string source)
    {
        if (state.RecordExists && state.State.SupportExotel == enabled)
        {
            return Snapshot();
        }

        var previous = state.State.SupportExotel;
        state.State.SupportExotel = enabled;
        state.State.Version++;
        state.State.Source = source;
        state.State.ChangedAt = DateTimeOffset.UtcNow;
        await state.WriteStateAsync();
        LogChanged(LogValues.Bool(enabled), LogValues.Bool(previous), source);
        return Snapshot();
    }

    private IngestFlags Snapshot() =>
        new(state.State.SupportExotel, state.State.Version, state.State.Source, state.State.ChangedAt);

    [LoggerMessage(Level = LogLevel.Information, Message = "supportExotel: {Enabled} (was {Previous}; source: {Source})")]
    private partial void LogChanged(string enabled, string previous, string source);
}
