using Ingest.SampleWorker;
using StackExchange.Redis;

// A sample consumer of the platform's streams (docs/CONSUMERS.md): claims calls through a consumer group on
// ingest:calls, re-frames each call's audio to fixed 500 ms chunks and writes them to samples:chunks:{<stream_id>}.
//   dotnet Ingest.SampleWorker.dll --redis localhost:6379 --group asr --name worker-1 --claim-idle-ms 5000
var options = WorkerOptions.Parse(args);
if (options is null)
{
    Console.Error.WriteLine("usage: Ingest.SampleWorker --redis <host:port|config> --group <name> --name <consumer> [--claim-idle-ms 5000] [--max-calls 100] [--poll-ms 50] [--checkpoint-ttl-seconds 86400]");
    return 2;
}

using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cts.Cancel();
};
AppDomain.CurrentDomain.ProcessExit += (_, _) => cts.Cancel();

using var redis = await ConnectionMultiplexer.ConnectAsync(options.Redis);
var worker = new CallWorker(redis.GetDatabase(), options);
try
{
    await worker.RunAsync(cts.Token);
}
catch (OperationCanceledException) when (cts.IsCancellationRequested)
{
}

Log.Write(options.Name, "stopped");
return 0;
