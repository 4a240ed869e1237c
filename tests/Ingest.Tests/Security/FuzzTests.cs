using System.Collections.Concurrent;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using Ingest.Gateway.Protocol;
using Ingest.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Ingest.Tests.Security;

/// <summary>Thousands of mutated protocol vectors through the parsers, and hundreds through a live gateway.</summary>
[Collection(SecurityCollection.Name)]
public sealed class FuzzTests(SecurityFixture fixture, ITestOutputHelper output)
{
    public const int ExotelParserCases = 30_000;
    public const int NativeParserCases = 10_000;
    public const int LiveSockets = 4;
    public const int LiveMessagesPerSocket = 100;

    private static readonly byte[][] ExotelVectors =
        Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Vectors"), "*.json").Order(StringComparer.Ordinal).Select(File.ReadAllBytes).ToArray();

    private static readonly byte[][] NativeVectors =
    [
        """{"event":"start","stream_id":"native-fuzz","sample_rate":16000,"encoding":"pcm16le","channels":1,"metadata":{"agent":"a-17","lang":"hi"}}"""u8.ToArray(),
        """{"event":"start","streamId":"native-fuzz","sampleRate":"8000Hz"}"""u8.ToArray(),
        """{"event":"stop"}"""u8.ToArray(),
    ];

    private static bool IsUtf8(byte[] bytes)
    {
        try
        {
            _ = new UTF8Encoding(false, true).GetCharCount(bytes);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }

    [Fact]
    public void Thirty_thousand_mutated_exotel_vectors_never_throw_and_whatever_parses_is_within_bounds()
    {
        var mutator = new Mutator(20261125);
        int parsed = 0, rejected = 0;
        for (var i = 0; i < ExotelParserCases; i++)
        {
            var input = mutator.Mutate(ExotelVectors[i % ExotelVectors.Length]);
            if (ExotelMessageParser.TryParse(input, out var message, out var error))
            {
                parsed++;
                Assert.True(message.SampleRate is null or 8000 or 16000 or 24000, mutator.LastStrategy);
                Assert.True(message.SequenceNumber is null or >= 0);
                Assert.True(message.Chunk is null or >= 0);
                Assert.True(message.Payload is null || message.PayloadError is null);
                Assert.True(message.Kind != ExotelEventKind.Media || message.Payload is not null || message.PayloadError is not null);
                Assert.True(message.StreamSid is null || ExotelMessageParser.IsValidStreamId(message.StreamSid));
                Assert.False(string.IsNullOrEmpty(message.EventName));
            }
            else
            {
                rejected++;
                Assert.False(string.IsNullOrEmpty(error.Detail));
                Assert.True(error.Detail.Length <= 100, error.Detail);
            }
        }

        output.WriteLine($"exotel parser fuzz: {ExotelParserCases} cases, {parsed} parsed, {rejected} rejected");
        Assert.True(parsed > 0 && rejected > 0);
    }

    [Fact]
    public void Ten_thousand_mutated_native_control_messages_never_throw_and_whatever_parses_is_within_bounds()
    {
        var mutator = new Mutator(6);
        int parsed = 0, rejected = 0;
        for (var i = 0; i < NativeParserCases; i++)
        {
            var input = mutator.Mutate(NativeVectors[i % NativeVectors.Length]);
            if (NativeProtocol.TryParseControl(input, out var kind, out var start, out var error))
            {
                parsed++;
                if (kind == NativeControlKind.Start)
                {
                    Assert.NotNull(start);
                    Assert.True(start.SampleRate is 8000 or 16000 or 24000);
                    Assert.True(ExotelMessageParser.IsValidStreamId(start.StreamId));
                    Assert.Equal(1, start.Channels);
                }
            }
            else
            {
                rejected++;
                Assert.False(string.IsNullOrEmpty(error.Detail));
                Assert.True(error.Detail.Length <= 100, error.Detail);
            }
        }

        output.WriteLine($"native parser fuzz: {NativeParserCases} cases, {parsed} parsed, {rejected} rejected");
        Assert.True(parsed > 0 && rejected > 0);
    }

    [Fact]
    public async Task Four_hundred_mutated_messages_over_live_sockets_leave_the_gateway_up_and_good_calls_in_parallel_intact()
    {
        var errorsBefore = fixture.Logs.Entries.Count(e => e.Level >= LogLevel.Error);
        var closes = new ConcurrentDictionary<string, int>();
        var sent = 0;
        var connections = 0;

        var good = Task.WhenAll(Enumerable.Range(0, 3).Select(n => fixture.GoodExotelCallAsync(fixture.Main, frames: 100, streamNumber: 500 + n, pace: TimeSpan.FromMilliseconds(10))));
        var hostile = Task.WhenAll(Enumerable.Range(0, LiveSockets).Select(async n =>
        {
            var mutator = new Mutator(1000 + n);
            var random = new Random(2000 + n);
            var sid = $"fuzz-{n}-{Guid.NewGuid():N}";
            ExotelClient? client = null;
            var lastSent = string.Empty;
            var invalidUtf8 = false;
            Task<(WebSocketCloseStatus? Status, string? Description)>? closed = null;
            try
            {
                for (var i = 0; i < LiveMessagesPerSocket; i++)
                {
                    if (client is null || closed!.IsCompleted)
                    {
                        if (client is not null)
                        {
                            var (status, description) = await closed!;
                            closes.AddOrUpdate(status?.ToString() ?? "none", 1, (_, c) => c + 1);
                            if (status is null)
                            {
                                closes.AddOrUpdate(invalidUtf8 ? "none after invalid UTF-8" : "none after valid UTF-8 only", 1, (_, c) => c + 1);
                                output.WriteLine("no close frame: " + description + " after " + lastSent);
                            }
                            await client.DisposeAsync();
                        }

                        client = await ExotelClient.ConnectAsync(SecurityFixture.Uri(fixture.Main));
                        invalidUtf8 = false;
                        closed = SecurityFixture.WaitForCloseAsync(client.Socket, TimeSpan.FromMinutes(2));
                        Interlocked.Increment(ref connections);

                        // Half the connections open with a real start so later mutations hit a live call.
                        if (random.Next(2) == 0)
                        {
                            sid = $"fuzz-{n}-{Guid.NewGuid():N}";
                            await client.StartAsync(sid, "fuzz");
                        }
                    }

                    var vector = Encoding.UTF8.GetString(ExotelVectors[random.Next(ExotelVectors.Length)])
                        .Replace("6f048d2e897a0d2d4029560f3f541947", sid, StringComparison.Ordinal);
                    var mutated = mutator.Mutate(Encoding.UTF8.GetBytes(vector));
                    try
                    {
                        var type = random.Next(40) == 0 ? WebSocketMessageType.Binary : WebSocketMessageType.Text;
                        invalidUtf8 |= type == WebSocketMessageType.Text && !IsUtf8(mutated);
                        lastSent = type + " " + mutator.LastStrategy + " " + Convert.ToHexString(mutated.AsSpan(0, Math.Min(mutated.Length, 60)));
                        await client.Socket.SendAsync(mutated, type, true, CancellationToken.None);
                        Interlocked.Increment(ref sent);
                    }
                    catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
                    {
                        // The server closed this one (1003, 1007, 1008, a stop): the next round reconnects.
                    }

                    // Give the server time to answer, so the next message sees a close that already happened.
                    await Task.Delay(5);
                }
            }
            finally
            {
                if (client is not null)
                {
                    await client.DisposeAsync();
                }
            }
        }));

        await Task.WhenAll(good, hostile);

        output.WriteLine($"live fuzz: {sent} mutated messages sent over {connections} connections; server closes: {string.Join(", ", closes.Select(c => $"{c.Key}={c.Value}"))}");
        Assert.True(sent >= LiveSockets * LiveMessagesPerSocket * 9 / 10, $"only {sent} sent");
        Assert.All(closes.Keys, k => Assert.Contains(k, new[] { "NormalClosure", "InvalidMessageType", "InvalidPayloadData", "PolicyViolation", "MessageTooBig", "none", "none after invalid UTF-8", "none after valid UTF-8 only" }));
        Assert.DoesNotContain("InternalServerError", closes.Keys);

        // A connection that ends without a close frame is always one that sent invalid UTF-8: the framework closes it
        // with 1007 and aborts, and a peer still sending may get the reset before it reads the close frame.
        Assert.DoesNotContain("none after valid UTF-8 only", closes.Keys);
        Assert.Equal(errorsBefore, fixture.Logs.Entries.Count(e => e.Level >= LogLevel.Error));

        using var http = new HttpClient();
        using var live = await http.GetAsync(IngestStack.HttpUri(fixture.Main, "/healthz"));
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        await fixture.GoodExotelCallAsync(fixture.Main, frames: 20, streamNumber: 600);
    }
}
