using System.Diagnostics;
using StackExchange.Redis;

namespace Ingest.Tests.Infrastructure;

/// <summary>
/// Reads the audio streams of live calls the way a consumer does, every 20 ms, and keeps the moment (this process'
/// clock) each entry became readable. A call sent at real-time cadence shows a gap of about one frame interval between
/// two entries; a call that stalled shows the stall on top of it. Entry ids are no clock (the writer's epoch lease
/// steps their millisecond part), so stalls are measured here, where a reader sees them. An entry first seen at one
/// poll became readable after the poll before it; a gap is counted from the poll that saw the earlier entry to the
/// poll before the one that saw the later, so a pause of this process (a GC, a busy test host) is never taken for a
/// stall of the calls: a gap is at most what a consumer saw, and at least the stall.
/// </summary>
public sealed class ReadableWatch : IAsyncDisposable
{
    private readonly IDatabase _redis;
    private readonly string[] _keys;
    private readonly RedisValue[] _last;
    private readonly List<(long After, long Seen)>[] _readable;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public ReadableWatch(IConnectionMultiplexer redis, IEnumerable<LiveCall> calls)
    {
        _redis = redis.GetDatabase();
        _keys = calls.Select(c => "ingest:audio:{" + c.StreamSid + "}").ToArray();
        _last = _keys.Select(_ => (RedisValue)"0-0").ToArray();
        _readable = _keys.Select(_ => new List<(long, long)>()).ToArray();
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Milliseconds on the watch's clock, to mark an event (a signal sent, a process gone).</summary>
    public long Now => _clock.ElapsedMilliseconds;

    private async Task LoopAsync()
    {
        // An entry first seen in a poll's answer became readable after the previous poll was sent (that poll did not see it).
        var previousSent = Now;
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var sent = Now;
                var read = await _redis.StreamReadAsync(_keys.Select((k, i) => new StreamPosition(k, _last[i])).ToArray(), countPerStream: 200);
                var seen = Now;
                var after = previousSent;
                previousSent = sent;
                foreach (var stream in read)
                {
                    var i = Array.IndexOf(_keys, stream.Key.ToString());
                    if (i < 0 || stream.Entries.Length == 0)
                    {
                        continue;
                    }

                    _last[i] = stream.Entries[^1].Id;
                    lock (_readable[i])
                    {
                        _readable[i].AddRange(Enumerable.Repeat((after, seen), stream.Entries.Length));
                    }
                }

                await Task.Delay(20, _stop.Token);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (RedisException)
            {
                // A consumer retries; so does the watch. A gap it causes shows as a stall of every call alike.
            }
        }
    }

    /// <summary>
    /// Per call (in the order given), the longest wait between two of its entries becoming readable, counting only gaps
    /// that end in [<paramref name="from"/>, <paramref name="to"/>] (watch milliseconds).
    /// </summary>
    public IReadOnlyList<long> LongestGaps(long from, long to) => _readable.Select(times =>
    {
        lock (times)
        {
            return times.Zip(times.Skip(1)).Where(p => p.Second.Seen >= from && p.Second.Seen <= to)
                .Select(p => Math.Max(0, p.Second.After - p.First.Seen)).DefaultIfEmpty(0).Max();
        }
    }).ToList();

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
