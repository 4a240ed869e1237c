namespace Ingest.Grains.Publishing;

/// <summary>
/// One entry of a call as the grain decides it; <see cref="CallStreamWriter"/> alone turns it into the fields of
/// CONTRACT §7. Audio goes to the call's audio stream; every other kind is a lifecycle entry of <c>ingest:calls</c>.
/// </summary>
public abstract record CallEntry
{
    public bool IsAudio => this is AudioEntry;
}

/// <summary>An audio frame; <paramref name="Outbound"/> puts it in the call's outbound track stream (<c>…:outbound</c>).</summary>
public sealed record AudioEntry(long Seq, long TimestampMs, byte[] Audio, bool Outbound = false) : CallEntry;

public sealed record StartEntry(
    string Protocol,
    string Encoding,
    int SampleRate,
    long At,
    string? CallSid,
    string? AccountSid,
    string? From,
    string? To,
    IReadOnlyDictionary<string, string> Parameters,
    string? SourceEncoding = null) : CallEntry;

/// <summary>The stop; <paramref name="FramesOutbound"/> is set when the call had an outbound track.</summary>
public sealed record StopEntry(string Reason, long Frames, long Gaps, long Missing, long EventsDropped, long At, string? CallSid, long? FramesOutbound = null) : CallEntry;

/// <summary>
/// Numbers no frame took. A gap of a tracked call names its <paramref name="Track"/>; one judged by chunk carries
/// <paramref name="FromChunk"/>..<paramref name="ToChunk"/> and no sequence numbers (CONTRACT §5).
/// </summary>
public sealed record GapEntry(long FromSeq, long ToSeq, long Missing, string Reason, string? Track = null, long? FromChunk = null, long? ToChunk = null) : CallEntry
{
    /// <summary>Judged by chunk: its sequence numbers are not known.</summary>
    public bool ByChunk => FromChunk.HasValue;

    /// <summary>True when <paramref name="next"/> continues this gap: same reason and track, the next number (or chunk) on.</summary>
    public bool ContinuedBy(GapEntry next) =>
        next.Reason == Reason && next.Track == Track && next.ByChunk == ByChunk
        && (ByChunk ? ToChunk + 1 == next.FromChunk : ToSeq + 1 == next.FromSeq);

    /// <summary>This gap grown by <paramref name="next"/> (see <see cref="ContinuedBy"/>).</summary>
    public GapEntry Join(GapEntry next) => this with { ToSeq = next.ToSeq, ToChunk = next.ToChunk, Missing = Missing + next.Missing };
}

public sealed record DtmfEntry(long Seq, long TimestampMs, string Digit, long? DurationMs) : CallEntry;

public sealed record MarkEntry(long Seq, long TimestampMs, string Name) : CallEntry;
