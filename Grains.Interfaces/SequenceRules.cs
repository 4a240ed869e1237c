namespace Ingest.Grains.Interfaces;

/// <summary>Sequencing rules gateway and grain share (CONTRACT §5).</summary>
public static class SequenceRules
{
    /// <summary>A number more than this far beyond the stream's highest is malformed (an epoch timestamp, 2^63-2).</summary>
    public const long MaxJump = 100_000;
}
