namespace Ingest.Grains.Interfaces;

/// <summary>
/// A live call as its grain sees it. <see cref="Frames"/> (the inbound or only track), <see cref="FramesOutbound"/>
/// (the outbound track, when the call has one), <see cref="Gaps"/> and <see cref="Missing"/> count what is already
/// written to Redis; <see cref="Buffered"/> is what waits to be written (Redis slow or away).
/// <see cref="StartedAt"/> is when this activation took the call (after a silo failure: when it was presented again).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record CallStatus(
    [property: Id(0)] string StreamId,
    [property: Id(1)] CallProtocol Protocol,
    [property: Id(2)] DateTime StartedAt,
    [property: Id(3)] long Frames,
    [property: Id(4)] long Gaps,
    [property: Id(5)] long Missing,
    [property: Id(6)] int Buffered,
    [property: Id(7)] string? CallSid,
    [property: Id(8)] string Silo,
    [property: Id(9)] long? FramesOutbound = null);
