using System.Collections.Immutable;

namespace Ingest.Grains.Interfaces;

/// <summary>
/// One grain per audio stream (keyed by Exotel stream_sid or native stream_id). It checks sequencing and
/// publishes to Redis Streams. Every method is idempotent with respect to what already reached Redis,
/// so the gateway can resend after a silo failure.
/// </summary>
public interface ICallStreamGrain : IGrainWithStringKey
{
    // The gateway's bound on a call path grain call (CallForwarder.GrainCallTimeout): Orleans enforces it, so the
    // gateway arms no timer of its own per frame. A call that times out is treated as a lost silo and presented again.
    [ResponseTimeout("00:00:03")]
    ValueTask<CallAck> Start(CallStart start);

    /// <summary>
    /// Items of the connection <paramref name="connectionId"/>, which must own the stream (the one whose Start was
    /// accepted); any other connection gets <see cref="CallAckStatus.Conflict"/>.
    /// </summary>
    [ResponseTimeout("00:00:03")]
    ValueTask<CallAck> Append(string connectionId, ImmutableArray<CallItem> items);

    [ResponseTimeout("00:00:03")]
    ValueTask<CallAck> Stop(CallStop stop);

    /// <summary>
    /// Wakes the call for the lifecycle sweeper: copies to <c>ingest:calls</c> what its last activation left, and lets
    /// a call nobody owns any more end as an orphan. Harmless on a live call.
    /// </summary>
    ValueTask Sweep();
}
