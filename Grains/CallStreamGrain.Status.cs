using Ingest.Grains.Interfaces;

namespace Ingest.Grains;

/// <summary>The operators' read-only view of the call (<see cref="ICallStatusGrain"/>); kept apart from the call path.</summary>
public sealed partial class CallStreamGrain : ICallStatusGrain
{
    public ValueTask<CallStatus?> GetStatus()
    {
        // Interleaved: reads fields only, never awaits, so it sees a consistent state between two turns of the call path.
        // Protocol, call sid and start time come from the cursor, so they survive a failover.
        if (!_loaded || _warmup || !_head.Started || _head.Stopped || _head.Owner.Length == 0)
        {
            return ValueTask.FromResult<CallStatus?>(null);
        }

        return ValueTask.FromResult<CallStatus?>(new CallStatus(
            _streamId,
            _head.Protocol == "native" ? CallProtocol.Native : CallProtocol.Exotel,
            DateTimeOffset.FromUnixTimeMilliseconds(_head.StartedAt).UtcDateTime,
            _outbox.Written.Frames,
            _outbox.Written.Gaps,
            _outbox.Written.Missing,
            _outbox.Count,
            _head.CallSid.Length > 0 ? _head.CallSid : null,
            RuntimeIdentity));
    }
}
