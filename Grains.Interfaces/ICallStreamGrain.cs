using System.Collections.Immutable;

namespace Ingest.Grains.Interfaces;

/// <summary>
/// One grain per audio stream (keyed by Exotel stream_sid or native stream_id). It checks sequencing and
/// publishes to Redis Streams. Every method is idempotent with respect to what already reached Redis,
/// so the gateway can resend after a silo failure.
/// </summary>
public interface ICallStreamGrain : IGrainWithStringKey
{
    // The call path's bound (CallGrainTimeout): Orleans enforces it, so the gateway arms no timer of its own per frame.
    [ResponseTimeout(CallGrainTimeout.Text)]
    ValueTask<CallAck> Start(CallStart start);

    /// <summary>
    /// Items of the connection <paramref name="connectionId"/>, which must own the stream (the one whose Start was
    /// accepted); any other connection gets <see cref="CallAckStatus.Conflict"/>.
    /// </summary>
    [ResponseTimeout(CallGrainTimeout.Text)]
    ValueTask<CallAck> Append(string connectionId, ImmutableArray<CallItem> items);

    [ResponseTimeout(CallGrainTimeout.Text)]
    ValueTask<CallAck> Stop(CallStop stop);

    /// <summary>
    /// Wakes the call for the lifecycle sweeper: copies to <c>ingest:calls</c> what its last activation left, and lets
    /// a call nobody owns any more end as an orphan. Harmless on a live call.
    /// </summary>
    ValueTask Sweep();
}
