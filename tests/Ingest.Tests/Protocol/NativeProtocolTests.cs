using System.Text;
using Ingest.Gateway.Protocol;
using Xunit;

namespace Ingest.Tests.Protocol;

public class NativeProtocolTests
{
    [Fact]
    public void Start_with_every_field_is_read_as_sent()
    {
        var start = ParseStart("""{"event":"start","stream_id":"dev-42.mic:1","sample_rate":16000,"encoding":"pcm16le","channels":1,"metadata":{"site":"blr","floor":3}}""");

        Assert.Equal("dev-42.mic:1", start.StreamId);
        Assert.Equal(16000, start.SampleRate);
        Assert.Equal("pcm16le", start.Encoding);
        Assert.Equal(1, start.Channels);
        Assert.Equal(new Dictionary<string, string> { ["site"] = "blr", ["floor"] = "3" }, start.Metadata);
    }

    [Fact]
    public void Start_with_only_a_stream_id_takes_the_defaults()
    {
        var start = ParseStart("""{"event":"start","stream_id":"s1"}""");

        Assert.Equal("s1", start.StreamId);
        Assert.Equal(8000, start.SampleRate);
        Assert.Equal("pcm16le", start.Encoding);
        Assert.Equal(1, start.Channels);
        Assert.Empty(start.Metadata);
    }

    [Fact]
    public void Start_accepts_string_numbers_camel_case_and_an_event_key_after_the_fields()
    {
        var start = ParseStart("""{"streamId":"s2","sampleRate":"24000Hz","channels":"1","event":"START"}""");

        Assert.Equal("s2", start.StreamId);
        Assert.Equal(24000, start.SampleRate);
    }

    [Theory]
    [InlineData("""{"event":"start"}""", ProtocolErrorKind.MissingField)]
    [InlineData("""{"event":"start","stream_id":null}""", ProtocolErrorKind.MissingField)]
    [InlineData("""{"event":"start","stream_id":"has space"}""", ProtocolErrorKind.InvalidStreamId)]
    [InlineData("""{"event":"start","stream_id":"../x"}""", ProtocolErrorKind.InvalidStreamId)]
    [InlineData("""{"event":"start","stream_id":"s","sample_rate":44100}""", ProtocolErrorKind.UnsupportedSampleRate)]
    [InlineData("""{"event":"start","stream_id":"s","sample_rate":"fast"}""", ProtocolErrorKind.InvalidNumber)]
    [InlineData("""{"event":"start","stream_id":"s","channels":2}""", ProtocolErrorKind.NumberOutOfRange)]
    [InlineData("""{"event":"start","stream_id":"s","channels":0}""", ProtocolErrorKind.NumberOutOfRange)]
    [InlineData("""{"event":"start","stream_id":"s","metadata":"x"}""", ProtocolErrorKind.InvalidFieldType)]
    [InlineData("""{"event":"start","stream_id":"s","sample_rate":16000""", ProtocolErrorKind.InvalidJson)]
    [InlineData("""{"event":"stop""", ProtocolErrorKind.InvalidJson)]
    [InlineData("""{"event":"stop"}x""", ProtocolErrorKind.InvalidJson)]
    [InlineData("not json", ProtocolErrorKind.InvalidJson)]
    [InlineData("""["start"]""", ProtocolErrorKind.NotAnObject)]
    [InlineData("""{"stream_id":"s"}""", ProtocolErrorKind.MissingEvent)]
    public void Malformed_control_frame_is_rejected_with_a_specific_kind(string json, ProtocolErrorKind expected)
    {
        Assert.False(NativeProtocol.TryParseControl(Encoding.UTF8.GetBytes(json), out var kind, out var start, out var error));

        Assert.Equal(expected, error.Kind);
        Assert.Equal(NativeControlKind.Unknown, kind);
        Assert.Null(start);
    }

    [Fact]
    public void Encoding_other_than_pcm16le_is_rejected_with_a_clear_reason()
    {
        Assert.False(NativeProtocol.TryParseControl("""{"event":"start","stream_id":"s","encoding":"mulaw"}"""u8, out _, out var start, out var error));

        Assert.Null(start);
        Assert.Equal(ProtocolErrorKind.MissingField, error.Kind);
        Assert.Equal("encoding must be pcm16le", error.Detail);
    }

    [Fact]
    public void Stop_frame_is_a_stop()
    {
        Assert.True(NativeProtocol.TryParseControl("""{"event":"stop"}"""u8, out var kind, out var start, out _));

        Assert.Equal(NativeControlKind.Stop, kind);
        Assert.Null(start);
    }

    [Fact]
    public void Unknown_event_is_accepted_and_reported_as_unknown()
    {
        Assert.True(NativeProtocol.TryParseControl("""{"event":"ping","stream_id":"not checked"}"""u8, out var kind, out var start, out _));

        Assert.Equal(NativeControlKind.Unknown, kind);
        Assert.Null(start);
    }

    [Fact]
    public void Oversized_control_frame_is_rejected_unread()
    {
        Assert.False(NativeProtocol.TryParseControl(new byte[NativeProtocol.MaxControlBytes + 1], out _, out _, out var error));

        Assert.Equal(ProtocolErrorKind.TooLarge, error.Kind);
    }

    private static NativeStart ParseStart(string json)
    {
        Assert.True(NativeProtocol.TryParseControl(Encoding.UTF8.GetBytes(json), out var kind, out var start, out var error), error.ToString());
        Assert.Equal(NativeControlKind.Start, kind);
        Assert.NotNull(start);
        return start;
    }
}
