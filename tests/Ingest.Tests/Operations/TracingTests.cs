using System.Net;
using Ingest.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Ingest.Tests.Operations;

/// <summary>
/// Traces over OTLP (issue 11 item 5): one call through a real gateway, silo and redis-server, exported with
/// OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf to a receiver this test runs; the call's span and the grain's lifecycle
/// spans share one trace id, and the session's log lines carry it.
/// </summary>
public sealed class TracingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task One_call_is_one_trace_across_gateway_grain_and_redis()
    {
        using var receiver = new OtlpReceiver();
        var otel = new Dictionary<string, string?>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.Endpoint,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
        };
        var logs = new CapturingLoggerProvider();
        var sid = "trace-" + Guid.NewGuid().ToString("N")[..12];
        await using (var stack = await IngestStack.StartAsync())
        {
            await stack.AddSiloAsync(new(otel) { ["OTEL_SERVICE_NAME"] = "ingest-silo" });
            var gateway = await stack.AddGatewayAsync(
                new(otel) { ["SUPPORT_EXOTEL"] = "true", ["OTEL_SERVICE_NAME"] = "ingest-gateway", ["Logging:LogLevel:Ingest"] = "Information" },
                b => b.Logging.AddProvider(logs));
            Assert.True(await RedisStreams.WaitUntilAsync(() => Task.FromResult(IngestStack.SupportsExotel(gateway)), TimeSpan.FromSeconds(10)));

            await using (var call = await ExotelClient.ConnectAsync(IngestStack.IngestUri(gateway)))
            {
                await call.StartAsync(sid, "call-trace");
                for (var seq = 2; seq <= 6; seq++)
                {
                    await call.MediaAsync(sid, seq, seq - 1, ExotelClient.Pcm(1, seq));
                }

                await call.StopAsync(sid, 7);
                Assert.NotNull(await call.WaitForCloseAsync(TimeSpan.FromSeconds(10)));
            }

            await RedisStreams.WaitUntilAsync(() => Task.FromResult(receiver.Spans.Count(s => s.Name == "ingest.grain.stop" && s.Kind == 2) >= 1), TimeSpan.FromSeconds(10));
        }

        // The hosts are disposed: their tracer providers have flushed whatever was still batched. Both hosts share this
        // test process, so each provider saw every "Ingest" span: one copy per span id is kept.
        var spans = receiver.Spans.DistinctBy(s => s.SpanId).ToList();
        foreach (var span in spans)
        {
            output.WriteLine($"{span.Name} kind={span.Kind} trace={span.TraceId} span={span.SpanId} parent={span.ParentSpanId} {string.Join(' ', span.Attributes.Select(a => a.Key + "=" + a.Value))}");
        }

        var callSpan = Assert.Single(spans, s => s.Name == "ingest.call" && s.Attributes.GetValueOrDefault("stream_id") == sid);
        Assert.Equal("exotel", callSpan.Attributes.GetValueOrDefault("protocol"));
        Assert.Equal("callended", callSpan.Attributes.GetValueOrDefault("end_reason"));
        Assert.Equal(string.Empty, callSpan.ParentSpanId);
        var trace = spans.Where(s => s.TraceId == callSpan.TraceId).ToList();

        // Gateway side: the Start and Stop grain calls are children of the call span. Silo side: the grain's own spans
        // continue the trace through Orleans' activity propagation, and the start and stop batches' Redis writes hang below them.
        var clientStart = Assert.Single(trace, s => s.Name == "ingest.grain.start" && s.Kind == 3);
        Assert.Equal(callSpan.SpanId, clientStart.ParentSpanId);
        var grainStart = Assert.Single(trace, s => s.Name == "ingest.grain.start" && s.Kind == 2);
        Assert.True(IsBelow(grainStart, clientStart, trace), "the grain's Start span is not below the gateway's");
        var grainStop = Assert.Single(trace, s => s.Name == "ingest.grain.stop" && s.Kind == 2);
        Assert.Single(trace, s => s.Name == "ingest.grain.stop" && s.Kind == 3 && s.ParentSpanId == callSpan.SpanId);
        Assert.Equal(2, trace.Count(s => s.Name == "ingest.redis.write" && (s.ParentSpanId == grainStart.SpanId || s.ParentSpanId == grainStop.SpanId)));

        // Lifecycle only: five frames made no span of their own (no Append, no heartbeat).
        Assert.DoesNotContain(spans, s => s.Name.Contains("Append", StringComparison.OrdinalIgnoreCase));
        Assert.True(trace.Count <= 12, $"{trace.Count} spans in the call's trace");

        // Log lines of the session carry the call's trace id.
        var ended = Assert.Single(logs.Entries, e => e.Message.StartsWith("Call ended", StringComparison.Ordinal) && e.Message.Contains(sid, StringComparison.Ordinal));
        Assert.Contains(callSpan.TraceId, ended.Scopes, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>True when <paramref name="span"/> descends from <paramref name="ancestor"/> (Orleans' own grain call spans may sit between).</summary>
    private static bool IsBelow(Span span, Span ancestor, List<Span> trace)
    {
        for (var current = span; current is not null; current = trace.FirstOrDefault(s => s.SpanId == current.ParentSpanId))
        {
            if (current.ParentSpanId == ancestor.SpanId)
            {
                return true;
            }
        }

        return false;
    }

    [Fact]
    public async Task Without_an_OTLP_endpoint_no_tracer_is_registered()
    {
        await using var stack = await IngestStack.StartAsync();
        var silo = await stack.AddSiloAsync();
        Assert.Null(silo.Services.GetService<OpenTelemetry.Trace.TracerProvider>());
    }

    /// <summary>A decoded span; <paramref name="Kind"/> is OTLP's (2 server, 3 client).</summary>
    public sealed record Span(string Service, string Name, int Kind, string TraceId, string SpanId, string ParentSpanId, Dictionary<string, string> Attributes);

    /// <summary>An OTLP/HTTP receiver for traces: records every POST to /v1/traces and decodes the few fields the test needs.</summary>
    private sealed class OtlpReceiver : IDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly List<Span> _spans = [];
        private readonly Task _loop;

        public OtlpReceiver()
        {
            var port = RedisServer.FreePort();
            Endpoint = $"http://127.0.0.1:{port}";
            _listener.Prefixes.Add(Endpoint + "/");
            _listener.Start();
            _loop = Task.Run(LoopAsync);
        }

        public string Endpoint { get; }

        public IReadOnlyList<Span> Spans
        {
            get
            {
                lock (_spans)
                {
                    return _spans.ToList();
                }
            }
        }

        private async Task LoopAsync()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
                {
                    return;
                }

                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                if (context.Request.Url?.AbsolutePath == "/v1/traces")
                {
                    var decoded = Decode(body.ToArray());
                    lock (_spans)
                    {
                        _spans.AddRange(decoded);
                    }
                }

                context.Response.StatusCode = 200;
                context.Response.ContentType = "application/x-protobuf";
                context.Response.Close();
            }
        }

        public void Dispose()
        {
            _listener.Close();
            _loop.Wait(TimeSpan.FromSeconds(2));
        }

        // ExportTraceServiceRequest { 1: ResourceSpans { 1: Resource { 1: KeyValue }, 2: ScopeSpans { 2: Span } } }
        // Span { 1: trace_id, 2: span_id, 4: parent_span_id, 5: name, 9: KeyValue { 1: key, 2: AnyValue { 1: string, 3: int } } }
        private static List<Span> Decode(byte[] request)
        {
            var spans = new List<Span>();
            foreach (var (field, resourceSpans) in Fields(request))
            {
                if (field != 1)
                {
                    continue;
                }

                var service = string.Empty;
                foreach (var (f, value) in Fields(resourceSpans))
                {
                    if (f == 1)
                    {
                        service = Attributes(value, 1).GetValueOrDefault("service.name") ?? string.Empty;
                    }
                    else if (f == 2)
                    {
                        foreach (var (sf, span) in Fields(value))
                        {
                            if (sf == 2)
                            {
                                spans.Add(DecodeSpan(service, span));
                            }
                        }
                    }
                }
            }

            return spans;
        }

        private static Span DecodeSpan(string service, byte[] span)
        {
            string trace = string.Empty, id = string.Empty, parent = string.Empty, name = string.Empty;
            var kind = 0;
            foreach (var (f, value) in Fields(span, keepVarints: true))
            {
                switch (f)
                {
                    case 6: kind = (int)BitConverter.ToInt64(value); break;
                    case 1: trace = Convert.ToHexStringLower(value); break;
                    case 2: id = Convert.ToHexStringLower(value); break;
                    case 4: parent = Convert.ToHexStringLower(value); break;
                    case 5: name = System.Text.Encoding.UTF8.GetString(value); break;
                }
            }

            return new Span(service, name, kind, trace, id, parent, Attributes(span, 9));
        }

        private static Dictionary<string, string> Attributes(byte[] message, int field)
        {
            var result = new Dictionary<string, string>();
            foreach (var (f, kv) in Fields(message))
            {
                if (f != field)
                {
                    continue;
                }

                string key = string.Empty, text = string.Empty;
                foreach (var (kf, kvValue) in Fields(kv))
                {
                    if (kf == 1)
                    {
                        key = System.Text.Encoding.UTF8.GetString(kvValue);
                    }
                    else if (kf == 2)
                    {
                        foreach (var (af, any) in Fields(kvValue, keepVarints: true))
                        {
                            text = af == 1 ? System.Text.Encoding.UTF8.GetString(any) : af == 3 ? BitConverter.ToInt64(any).ToString(System.Globalization.CultureInfo.InvariantCulture) : text;
                        }
                    }
                }

                result[key] = text;
            }

            return result;
        }

        /// <summary>The length-delimited fields of a protobuf message (varints skipped unless asked for, as 8 bytes).</summary>
        private static IEnumerable<(int Field, byte[] Value)> Fields(byte[] message, bool keepVarints = false)
        {
            var at = 0;
            while (at < message.Length)
            {
                var tag = (long)Varint(message, ref at);
                var field = (int)(tag >> 3);
                switch (tag & 7)
                {
                    case 0:
                        var v = Varint(message, ref at);
                        if (keepVarints)
                        {
                            yield return (field, BitConverter.GetBytes(v));
                        }

                        break;
                    case 1: at += 8; break;
                    case 5: at += 4; break;
                    case 2:
                        var length = (int)Varint(message, ref at);
                        yield return (field, message[at..(at + length)]);
                        at += length;
                        break;
                    default: throw new InvalidDataException($"wire type {tag & 7}");
                }
            }
        }

        private static ulong Varint(byte[] data, ref int at)
        {
            ulong value = 0;
            for (var shift = 0; ; shift += 7)
            {
                var b = data[at++];
                value |= (ulong)(b & 0x7f) << shift;
                if (b < 0x80)
                {
                    return value;
                }
            }
        }
    }
}
