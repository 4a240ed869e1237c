namespace Ingest.Grains.Publishing;

/// <summary>
/// One entry of a call as the grain decides it; <see cref="CallStreamWriter"/> alone turns it into the fields of
/// CONTRACT §7. Audio goes to the call's audio stream; every other kind is a lifecycle entry of <c>ingest:calls</c>.
/// </summary>
public abstract record CallEntry
{
    public bool IsAudio => this is AudioEntry;
}

public sealed record AudioEntry(long Seq, long TimestampMs, byte[] Audio) : CallEntry;

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

public sealed record StopEntry(string Reason, long Frames, long Gaps, long Missing, long EventsDropped, long At, string? CallSid) : CallEntry;

public sealed record GapEntry(long FromSeq, long ToSeq, long Missing, string Reason) : CallEntry;

public sealed record DtmfEntry(long Seq, long TimestampMs, string Digit, long? DurationMs) : CallEntry;

public sealed record MarkEntry(long Seq, long TimestampMs, string Name) : CallEntry;
