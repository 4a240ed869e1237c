using Ingest.Grains.Interfaces;
using Ingest.Grains.Publishing;

namespace Ingest.Grains;

/// <summary>The operators' read-only view of the call (<see cref="ICallStatusGrain"/>); kept apart from the call path.</summary>
public sealed partial class CallStreamGrain : ICallStatusGrain
{
    public ValueTask<CallStatus?> GetStatus() => ValueTask.FromResult(Describe());

    /// <summary>
    /// The call's status, or null when it is not live here. Reads fields only, never awaits: interleaved (GetStatus) it
    /// sees the state between two turns of the call path; from the silo's <see cref="LiveCalls"/> it reads each field
    /// whole, as of a recent turn. Protocol, call sid and start time come from the cursor, so they survive a failover.
    /// </summary>
    internal CallStatus? Describe()
    {
        var head = _loaded ? Head : CallCursor.Empty;
        var written = _loaded ? _outbox.Written : CallCursor.Empty;
        if (!_loaded || _warmup || !head.Started || head.Stopped || head.Owner.Length == 0)
        {
            return null;
        }

        return new CallStatus(
            _streamId,
            head.Protocol == "native" ? CallProtocol.Native : CallProtocol.Exotel,
            DateTimeOffset.FromUnixTimeMilliseconds(head.StartedAt).UtcDateTime,
            written.Frames,
            written.Gaps,
            written.Missing,
            _outbox.Count,
            head.CallSid.Length > 0 ? head.CallSid : null,
            RuntimeIdentity,
            head.Tracks.HasFlag(CallTracks.Outbound) ? written.FramesOutbound : null);
    }
}
