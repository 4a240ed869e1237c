using System.Globalization;

namespace Ingest.Grains.Interfaces;

/// <summary>
/// The bound on every call-path grain call (<see cref="ICallStreamGrain"/>'s Start, Append and Stop). Orleans enforces
/// it (<c>[ResponseTimeout]</c>), so the gateway arms no timer of its own per frame; a call that times out is treated
/// as a lost silo and presented again. The silo checks at start that a grain always answers within it (its Redis
/// write bound and replica wait are well below it: IngestOptionsValidator).
/// </summary>
public static class CallGrainTimeout
{
    /// <summary>The bound as <c>[ResponseTimeout]</c> takes it.</summary>
    public const string Text = "00:00:03";

    public static readonly TimeSpan Value = TimeSpan.Parse(Text, CultureInfo.InvariantCulture);
}
