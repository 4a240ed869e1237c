using Ingest.Grains.Interfaces;
using Ingest.Grains.Publishing;

namespace Ingest.Grains;

/// <summary>The operators' read-only view of the call (<see cref="ICallStatusGrain"/>); kept apart from the call path.</summary>
public sealed partial class CallStreamGrain : ICallStatusGrain
{
    public ValueTask<CallStatus?> GetStatus()
    {
        // Interleaved: reads fields only, never awaits, so it sees a consistent state between two turns of the call path.
        // Protocol, call sid and start time come from the cursor, so they survive a failover.
        if (!_loaded || _warmup || !Head.Started || Head.Stopped || Head.Owner.Length == 0)
        {
            return ValueTask.FromResult<CallStatus?>(null);
        }

        return ValueTask.FromResult<CallStatus?>(new CallStatus(
            _streamId,
            Head.Protocol == "native" ? CallProtocol.Native : CallProtocol.Exotel,
            DateTimeOffset.FromUnixTimeMilliseconds(Head.StartedAt).UtcDateTime,
            _outbox.Written.Frames,
            _outbox.Written.Gaps,
            _outbox.Written.Missing,
            _outbox.Count,
            Head.CallSid.Length > 0 ? Head.CallSid : null,
            RuntimeIdentity,
            Head.Tracks.HasFlag(CallTracks.Outbound) ? _outbox.Written.FramesOutbound : null));
    }
}
