using Ingest.Grains.Interfaces;

namespace Ingest.Grains;

/// <summary>The operators' read-only view of the call (<see cref="ICallStatusGrain"/>); kept apart from the call path.</summary>
public sealed partial class CallStreamGrain : ICallStatusGrain
{
    // Set by Start; read only here.
    private DateTime _statusStartedUtc;
    private CallProtocol _statusProtocol;

    public ValueTask<CallStatus?> GetStatus()
    {
        // Interleaved: reads fields only, never awaits, so it sees a consistent state between two turns of the call path.
        if (!_loaded || !_head.Started || _head.Stopped || _owner is null)
        {
            return ValueTask.FromResult<CallStatus?>(null);
        }

        return ValueTask.FromResult<CallStatus?>(new CallStatus(
            _streamId,
            _statusProtocol,
            _statusStartedUtc,
            _written.Frames,
            _written.Gaps,
            _written.Missing,
            _pending.Count,
            _callSid,
            RuntimeIdentity));
    }
}
