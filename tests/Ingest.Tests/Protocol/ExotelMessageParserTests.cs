using System.Text;
using System.Text.Json;
using Ingest.Gateway.Protocol;
using Xunit;

namespace Ingest.Tests.Protocol;

public class ExotelMessageParserTests
{
    private const string StreamSid = "6f048d2e897a0d2d4029560f3f541947";
    private const string CallSid = "56b1234567abcdef89abcdef12345678";

    // ---- the vectors from exotel/PROTOCOL.md ------------------------------------------------

    [Fact]
    public void Connected_vector_parses_with_no_stream_fields()
    {
        var message = ParseVector("01-connected.json");

        Assert.Equal(ExotelEventKind.Connected, message.Kind);
        Assert.Equal("connected", message.EventName);
        Assert.Null(message.StreamSid);
        Assert.Null(message.SequenceNumber);
        Assert.Equal(0, message.UnknownFieldCount);
    }

    [Fact]
    public void Canonical_start_with_string_numbers_parses_every_field()
    {
        var message = ParseVector("02-start-strings-8k.json");

        Assert.Equal(ExotelEventKind.Start, message.Kind);
        Assert.Equal(StreamSid, message.StreamSid);
        Assert.Equal(1L, message.SequenceNumber);
        Assert.Equal(CallSid, message.CallSid);
        Assert.Equal("exotelt", message.AccountSid);
        Assert.Equal("+919876543210", message.From);
        Assert.Equal("+918047491899", message.To);
        Assert.Equal(new Dictionary<string, string> { ["lang"] = "hi", ["tenant"] = "acme" }, message.CustomParameters);
        Assert.Equal("audio/x-raw", message.Encoding);
        Assert.Equal(8000, message.SampleRate);
        Assert.Equal(16, message.BitRate);
        Assert.Null(message.Payload);
        Assert.Equal(0, message.UnknownFieldCount);
    }

    [Fact]
    public void Start_with_numeric_sequence_at_16k_keeps_national_numbers_and_empty_custom_parameters()
    {
        var message = ParseVector("03-start-numbers-16k.json");

        Assert.Equal(ExotelEventKind.Start, message.Kind);
        Assert.Equal("a3f1c2d4e5b60718293a4b5c6d7e8f90", message.StreamSid);
        Assert.Equal(1L, message.SequenceNumber);
        Assert.Equal("0f1e2d3c4b5a69788796a5b4c3d2e1f0", message.CallSid);
        Assert.Equal("09876543210", message.From);
        Assert.Equal("08047491899", message.To);
        Assert.NotNull(message.CustomParameters);
        Assert.Empty(message.CustomParameters);
        Assert.Equal("raw", message.Encoding);
        Assert.Equal(16000, message.SampleRate);
        Assert.Equal(128, message.BitRate);
    }

    [Fact]
    public void Camel_case_start_parses_like_snake_case()
    {
        var camel = ParseVector("04-start-camelcase.json");
        var snake = ParseVector("02-start-strings-8k.json");

        Assert.Equal(ExotelEventKind.Start, camel.Kind);
        Assert.Equal(snake.StreamSid, camel.StreamSid);
        Assert.Equal(snake.SequenceNumber, camel.SequenceNumber);
        Assert.Equal(snake.CallSid, camel.CallSid);
        Assert.Equal(snake.AccountSid, camel.AccountSid);
        Assert.Equal(snake.From, camel.From);
        Assert.Equal(snake.To, camel.To);
        Assert.Equal(snake.Encoding, camel.Encoding);
        Assert.Equal(8000, camel.SampleRate);
        Assert.Null(camel.BitRate);
        Assert.NotNull(camel.CustomParameters);
        Assert.Empty(camel.CustomParameters);
        Assert.Equal(0, camel.UnknownFieldCount);
    }

    [Fact]
    public void Unit_suffixes_on_media_format_are_stripped()
    {
        var message = ParseVector("05-start-unit-suffixes.json");

        Assert.Equal(8000, message.SampleRate);
        Assert.Equal(128, message.BitRate);
        Assert.Equal("raw/slin", message.Encoding);
        Assert.Equal(StreamSid, message.StreamSid);
    }

    [Theory]
    [InlineData("06-media-strings-320B.json", 2, 1, 100, 320)]
    [InlineData("07-media-numbers-1600B.json", 3, 2, 200, 1600)]
    [InlineData("08-media-after-gap.json", 5, 4, 400, 320)]
    public void Media_vector_decodes_payload_byte_for_byte(string vector, long sequence, long chunk, long timestamp, int payloadBytes)
    {
        var message = ParseVector(vector);

        Assert.Equal(ExotelEventKind.Media, message.Kind);
        Assert.Equal(StreamSid, message.StreamSid);
        Assert.Equal(sequence, message.SequenceNumber);
        Assert.Equal(chunk, message.Chunk);
        Assert.Equal(timestamp, message.Timestamp);
        Assert.NotNull(message.Payload);
        Assert.Equal(payloadBytes, message.Payload.Length);
        Assert.Equal(Convert.FromBase64String(PayloadTextOf(vector)), message.Payload);
    }

    [Fact]
    public void Dtmf_vector_gives_digit_and_duration()
    {
        var message = ParseVector("09-dtmf.json");

        Assert.Equal(ExotelEventKind.Dtmf, message.Kind);
        Assert.Equal(7L, message.SequenceNumber);
        Assert.Equal("5", message.Digit);
        Assert.Equal(100L, message.DurationMs);
        Assert.Equal(StreamSid, message.StreamSid);
    }

    [Fact]
    public void Mark_vector_gives_mark_name()
    {
        var message = ParseVector("10-mark.json");

        Assert.Equal(ExotelEventKind.Mark, message.Kind);
        Assert.Equal(15L, message.SequenceNumber);
        Assert.Equal("turn-3-end", message.MarkName);
    }

    [Theory]
    [InlineData("11-stop-callended.json", 20, "callended")]
    [InlineData("12-stop-stopped-numeric.json", 21, "stopped")]
    public void Stop_vector_gives_reason_and_call(string vector, long sequence, string reason)
    {
        var message = ParseVector(vector);

        Assert.Equal(ExotelEventKind.Stop, message.Kind);
        Assert.Equal(sequence, message.SequenceNumber);
        Assert.Equal(reason, message.StopReason);
        Assert.Equal(CallSid, message.CallSid);
        Assert.Equal("exotelt", message.AccountSid);
        Assert.Equal(StreamSid, message.StreamSid);
    }

    [Fact]
    public void Unknown_event_vector_succeeds_as_unknown_with_its_name()
    {
        var message = ParseVector("13-unknown-event.json");

        Assert.Equal(ExotelEventKind.Unknown, message.Kind);
        Assert.Equal("closed", message.EventName);
        Assert.Equal(StreamSid, message.StreamSid);
    }

    [Fact]
    public void Every_vector_file_parses()
    {
        var files = Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Vectors"), "*.json");

        Assert.Equal(13, files.Length);
        foreach (var file in files)
        {
            Assert.True(ExotelMessageParser.TryParse(File.ReadAllBytes(file), out _, out var error), $"{Path.GetFileName(file)}: {error}");
        }
    }

    [Fact]
    public void Every_truncation_of_every_vector_is_invalid_json_and_never_throws()
    {
        foreach (var file in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Vectors"), "*.json"))
        {
            var bytes = File.ReadAllText(file).Trim();
            var utf8 = Encoding.UTF8.GetBytes(bytes);
            for (var length = 0; length < utf8.Length; length++)
            {
                Assert.False(ExotelMessageParser.TryParse(utf8.AsSpan(0, length), out _, out var error));
                Assert.Equal(ProtocolErrorKind.InvalidJson, error.Kind);
            }
        }
    }

    [Fact]
    public void Corrupted_vectors_never_throw()
    {
        var random = new Random(20260901);
        var vectors = Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Vectors"), "*.json").Select(File.ReadAllBytes).ToArray();
        var failures = 0;
        for (var i = 0; i < 5000; i++)
        {
            var bytes = (byte[])vectors[random.Next(vectors.Length)].Clone();
            for (var flips = random.Next(1, 4); flips > 0; flips--)
            {
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            }

            if (!ExotelMessageParser.TryParse(bytes, out _, out var error))
            {
                failures++;
                Assert.False(string.IsNullOrEmpty(error.Detail));
                Assert.True(error.Detail.Length <= 100, error.Detail);
            }
        }

        Assert.True(failures > 0);
    }

    // ---- leniency ------------------------------------------------------------------------------

    [Fact]
    public void Event_name_is_case_insensitive_and_a_capitalised_event_key_is_accepted()
    {
        var message = Parse("""{"Event":"MEDIA","media":{"payload":""}}""");

        Assert.Equal(ExotelEventKind.Media, message.Kind);
        Assert.Equal("MEDIA", message.EventName);
        Assert.Empty(message.Payload!);
    }

    [Fact]
    public void Event_after_the_objects_it_governs_still_decides_the_shape()
    {
        var message = Parse("""{"media":{"chunk":9,"payload":"AAAA/w=="},"event":"media"}""");

        Assert.Equal(ExotelEventKind.Media, message.Kind);
        Assert.Equal(9L, message.Chunk);
        Assert.Equal(new byte[] { 0, 0, 0, 0xFF }, message.Payload);
    }

    [Theory]
    [InlineData("\" 7 \"")]
    [InlineData("\"7\"")]
    [InlineData("7")]
    [InlineData("\"007\"")]
    public void Sequence_number_is_read_from_numbers_and_numeric_strings(string json)
    {
        var message = Parse($$$"""{"event":"mark","sequence_number":{{{json}}},"mark":{"name":"m"}}""");

        Assert.Equal(7L, message.SequenceNumber);
    }

    [Fact]
    public void Camel_case_sequence_number_and_stream_sid_are_accepted_on_media()
    {
        var message = Parse("""{"event":"media","sequenceNumber":"12","streamSid":"abc","media":{"chunk":"11","timestamp":"1100","Payload":"AAA="}}""");

        Assert.Equal(12L, message.SequenceNumber);
        Assert.Equal("abc", message.StreamSid);
        Assert.Equal(11L, message.Chunk);
        Assert.Equal(1100L, message.Timestamp);
        Assert.Equal(new byte[] { 0, 0 }, message.Payload);
    }

    [Fact]
    public void Nested_stream_sid_is_used_when_the_top_level_has_none()
    {
        var message = Parse("""{"event":"start","start":{"streamSid":"nested-1","call_sid":"c"}}""");

        Assert.Equal("nested-1", message.StreamSid);
        Assert.Equal("c", message.CallSid);
        Assert.Null(message.SampleRate);
        Assert.Null(message.CustomParameters);
    }

    [Fact]
    public void Top_level_call_sid_is_used_when_start_has_none()
    {
        var message = Parse("""{"event":"start","stream_sid":"s1","call_sid":"top-call","account_sid":"acct","start":{}}""");

        Assert.Equal("s1", message.StreamSid);
        Assert.Equal("top-call", message.CallSid);
        Assert.Equal("acct", message.AccountSid);
    }

    [Theory]
    [InlineData("AQIDBA==", "AQIDBA")]
    [InlineData("AQIDBAUG", "AQIDBAUG")]
    [InlineData("AQIDBAUGBwg=", "AQIDBAUGBwg")]
    public void Unpadded_base64_decodes_like_padded(string padded, string unpadded)
    {
        var expected = Convert.FromBase64String(padded);

        Assert.Equal(expected, Parse($$$"""{"event":"media","media":{"payload":"{{{padded}}}"}}""").Payload);
        Assert.Equal(expected, Parse($$$"""{"event":"media","media":{"payload":"{{{unpadded}}}"}}""").Payload);
    }

    [Fact]
    public void Escaped_slash_in_payload_decodes()
    {
        var message = Parse("""{"event":"media","media":{"payload":"AAAA\/w=="}}""");

        Assert.Equal(new byte[] { 0, 0, 0, 0xFF }, message.Payload);
    }

    [Fact]
    public void Empty_payload_is_an_empty_frame()
    {
        var message = Parse("""{"event":"media","media":{"payload":""}}""");

        Assert.NotNull(message.Payload);
        Assert.Empty(message.Payload);
    }

    [Fact]
    public void Unknown_fields_are_counted_at_every_level()
    {
        var message = Parse(
            """{"event":"start","extra":1,"stream_sid":"s","media":{"payload":"!"},"start":{"x":[1,2],"media_format":{"channels":1,"sample_rate":"16000"}}}""");

        Assert.Equal(ExotelEventKind.Start, message.Kind);
        Assert.Equal(16000, message.SampleRate);
        Assert.Equal(4, message.UnknownFieldCount);
    }

    [Fact]
    public void Non_string_custom_parameters_keep_their_raw_json_text()
    {
        var message = Parse("""{"event":"start","stream_sid":"s","start":{"custom_parameters":{"n":5,"b":true,"z":null,"o":{"a":[1, 2]},"s":"t\u00e9"}}}""");

        Assert.Equal(
            new Dictionary<string, string> { ["n"] = "5", ["b"] = "true", ["z"] = "null", ["o"] = """{"a":[1, 2]}""", ["s"] = "té" },
            message.CustomParameters);
    }

    [Theory]
    [InlineData("*", "*")]
    [InlineData("#", "#")]
    [InlineData("0", "0")]
    [InlineData("d", "D")]
    [InlineData("A", "A")]
    public void Dtmf_accepts_every_key_on_the_pad(string sent, string expected)
    {
        var message = Parse($$$"""{"event":"dtmf","dtmf":{"digit":"{{{sent}}}"}}""");

        Assert.Equal(expected, message.Digit);
        Assert.Null(message.DurationMs);
    }

    [Fact]
    public void Utf8_byte_order_mark_is_ignored()
    {
        var bytes = Encoding.UTF8.GetPreamble().Concat(Encoding.UTF8.GetBytes("""{"event":"stop","stop":{"reason":"callended"}}""")).ToArray();

        Assert.True(ExotelMessageParser.TryParse(bytes, out var message, out _));
        Assert.Equal("callended", message.StopReason);
    }

    [Fact]
    public void Null_fields_count_as_absent()
    {
        var message = Parse("""{"event":"media","stream_sid":null,"sequence_number":null,"media":{"chunk":null,"payload":"AAA="}}""");

        Assert.Null(message.StreamSid);
        Assert.Null(message.SequenceNumber);
        Assert.Null(message.Chunk);
    }

    [Fact]
    public void Unknown_event_skips_objects_it_does_not_understand()
    {
        var message = Parse("""{"event":"clear","media":{"payload":"not base64!"}}""");

        Assert.Equal(ExotelEventKind.Unknown, message.Kind);
        Assert.Equal("clear", message.EventName);
        Assert.Equal(1, message.UnknownFieldCount);
    }

    // ---- malformed frames ----------------------------------------------------------------------

    [Theory]
    [InlineData("{not json", ProtocolErrorKind.InvalidJson)]
    [InlineData("""{"event":"media","media":{"payload":"AAAA""", ProtocolErrorKind.InvalidJson)]
    [InlineData("""{"event":"stop"}}""", ProtocolErrorKind.InvalidJson)]
    [InlineData("""{"event":"stop"} {"event":"stop"}""", ProtocolErrorKind.InvalidJson)]
    [InlineData("""{"event":"stop",}""", ProtocolErrorKind.InvalidJson)]
    [InlineData("", ProtocolErrorKind.InvalidJson)]
    [InlineData("""[{"event":"media"}]""", ProtocolErrorKind.NotAnObject)]
    [InlineData("\"media\"", ProtocolErrorKind.NotAnObject)]
    [InlineData("42", ProtocolErrorKind.NotAnObject)]
    [InlineData("""{"stream_sid":"abc"}""", ProtocolErrorKind.MissingEvent)]
    [InlineData("""{"event":null}""", ProtocolErrorKind.MissingEvent)]
    [InlineData("""{"event":7}""", ProtocolErrorKind.MissingEvent)]
    [InlineData("""{"event":""}""", ProtocolErrorKind.MissingEvent)]
    [InlineData("""{"event":"media","media":{"chunk":"1"}}""", ProtocolErrorKind.MissingField)]
    [InlineData("""{"event":"media","sequence_number":2}""", ProtocolErrorKind.MissingField)]
    [InlineData("""{"event":"media","media":{"payload":null}}""", ProtocolErrorKind.MissingField)]
    [InlineData("""{"event":"media","media":"AAAA"}""", ProtocolErrorKind.InvalidFieldType)]
    [InlineData("""{"event":"start","start":{"call_sid":"c"}}""", ProtocolErrorKind.MissingField)]
    [InlineData("""{"event":"dtmf","dtmf":{"duration":"100"}}""", ProtocolErrorKind.MissingField)]
    [InlineData("""{"event":"dtmf"}""", ProtocolErrorKind.MissingField)]
    [InlineData("""{"event":"dtmf","dtmf":{"digit":"X"}}""", ProtocolErrorKind.InvalidDigit)]
    [InlineData("""{"event":"dtmf","dtmf":{"digit":"12"}}""", ProtocolErrorKind.InvalidDigit)]
    public void Malformed_frame_is_rejected_with_a_specific_kind(string json, ProtocolErrorKind expected)
    {
        Assert.Equal(expected, Reject(json).Kind);
    }

    [Theory]
    [InlineData("-1", ProtocolErrorKind.NumberOutOfRange)]
    [InlineData("\"-1\"", ProtocolErrorKind.NumberOutOfRange)]
    [InlineData("9223372036854775808", ProtocolErrorKind.NumberOutOfRange)]
    [InlineData("\"9223372036854775808\"", ProtocolErrorKind.NumberOutOfRange)]
    [InlineData("\"99999999999999999999999999\"", ProtocolErrorKind.NumberOutOfRange)]
    [InlineData("1.5", ProtocolErrorKind.InvalidNumber)]
    [InlineData("1e3", ProtocolErrorKind.InvalidNumber)]
    [InlineData("\"abc\"", ProtocolErrorKind.InvalidNumber)]
    [InlineData("\"7Hz\"", ProtocolErrorKind.InvalidNumber)]
    [InlineData("true", ProtocolErrorKind.InvalidNumber)]
    [InlineData("[1]", ProtocolErrorKind.InvalidNumber)]
    public void Bad_sequence_number_is_rejected_naming_the_field(string value, ProtocolErrorKind expected)
    {
        var error = Reject($$$"""{"event":"media","sequence_number":{{{value}}},"media":{"payload":""}}""");

        Assert.Equal(expected, error.Kind);
        Assert.Contains("sequence_number", error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Largest_sequence_number_is_accepted()
    {
        var message = Parse("""{"event":"media","sequence_number":"9223372036854775807","media":{"payload":""}}""");

        Assert.Equal(long.MaxValue, message.SequenceNumber);
    }

    [Theory]
    [InlineData("chunk", "-3")]
    [InlineData("timestamp", "-1")]
    public void Negative_media_counters_are_out_of_range(string field, string value)
    {
        var error = Reject($$$"""{"event":"media","media":{"{{{field}}}":{{{value}}},"payload":""}}""");

        Assert.Equal(ProtocolErrorKind.NumberOutOfRange, error.Kind);
        Assert.Contains("media." + field, error.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("1000000000")]
    [InlineData("\"1000000000Hz\"")]
    [InlineData("44100")]
    [InlineData("\"0\"")]
    [InlineData("-8000")]
    [InlineData("\"99999999999999999999999\"")]
    public void Unsupported_sample_rate_in_start_is_rejected(string value)
    {
        var error = Reject("""{"event":"start","stream_sid":"s","start":{"media_format":{"sample_rate":""" + value + "}}}");

        Assert.Equal(ProtocolErrorKind.UnsupportedSampleRate, error.Kind);
        Assert.Contains("sample_rate", error.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("24000", 24000)]
    [InlineData("\"16000 Hz\"", 16000)]
    [InlineData("\"8000hz\"", 8000)]
    public void Supported_sample_rate_in_start_is_read(string value, int expected)
    {
        var message = Parse("""{"event":"start","stream_sid":"s","start":{"mediaFormat":{"sampleRate":""" + value + "}}}");

        Assert.Equal(expected, message.SampleRate);
    }

    [Theory]
    [InlineData("\"128kbps\"", 128)]
    [InlineData("\"16\"", 16)]
    [InlineData("128", 128)]
    [InlineData("\"64 KBPS\"", 64)]
    [InlineData("\"oops\"", null)]
    [InlineData("-5", null)]
    public void Bit_rate_is_informational_and_never_fails_the_start(string value, int? expected)
    {
        var message = Parse("""{"event":"start","stream_sid":"s","start":{"media_format":{"bit_rate":""" + value + "}}}");

        Assert.Equal(expected, message.BitRate);
    }

    public static TheoryData<string> BadStreamIds => new()
    {
        "has space",
        new string('a', 200),
        "../x",
        "",
        "a/b",
        "tab\there",
        "caf\u00e9",
    };

    [Theory]
    [MemberData(nameof(BadStreamIds))]
    public void Bad_stream_id_is_rejected_at_top_level_and_in_start(string streamId)
    {
        var quoted = JsonSerializer.Serialize(streamId);

        Assert.Equal(ProtocolErrorKind.InvalidStreamId, Reject($$$"""{"event":"media","stream_sid":{{{quoted}}},"media":{"payload":""}}""").Kind);
        Assert.Equal(ProtocolErrorKind.InvalidStreamId, Reject($$$"""{"event":"start","start":{"stream_sid":{{{quoted}}}}}""").Kind);
    }

    [Fact]
    public void Stream_id_of_exactly_128_characters_is_accepted_and_129_is_not()
    {
        var ok = new string('x', ExotelMessageParser.MaxStreamIdLength);
        var tooLong = ok + "x";

        Assert.Equal(ok, Parse($$$"""{"event":"start","stream_sid":"{{{ok}}}"}""").StreamSid);
        Assert.Equal(ProtocolErrorKind.InvalidStreamId, Reject($$$"""{"event":"start","stream_sid":"{{{tooLong}}}"}""").Kind);
    }

    [Fact]
    public void Escaped_characters_in_a_stream_id_are_checked_after_unescaping()
    {
        Assert.Equal("AB", Parse("""{"event":"start","stream_sid":"\u0041B"}""").StreamSid);
        Assert.Equal(ProtocolErrorKind.InvalidStreamId, Reject("""{"event":"start","stream_sid":"a\u002Fb"}""").Kind);
    }

    [Fact]
    public void A_media_frame_above_one_mebibyte_is_parsed_the_size_limit_is_the_gateway_setting_alone()
    {
        // MAX_MESSAGE_BYTES may be set up to 16 MiB; the parser once refused anything above its own 1 MiB.
        var audio = new byte[1_200_000];
        Random.Shared.NextBytes(audio);
        var json = "{\"event\":\"media\",\"sequence_number\":\"2\",\"stream_sid\":\"big\",\"media\":{\"chunk\":\"1\",\"payload\":\"" + Convert.ToBase64String(audio) + "\"}}";
        var bytes = System.Text.Encoding.UTF8.GetBytes(json);
        Assert.True(bytes.Length > 1024 * 1024);

        Assert.True(ExotelMessageParser.TryParse(bytes, out var message, out var error), error.ToString());
        Assert.Equal(audio, message!.Payload);
    }

    [Fact]
    public void Invalid_utf8_inside_a_string_is_invalid_json()
    {
        byte[] bytes = [.. "{\"event\":\"st"u8, 0xFF, 0xFE, .. "op\"}"u8];

        Assert.False(ExotelMessageParser.TryParse(bytes, out _, out var error));
        Assert.Equal(ProtocolErrorKind.InvalidJson, error.Kind);
    }

    [Fact]
    public void Error_detail_names_the_field_and_does_not_echo_the_input()
    {
        var junk = new string('!', 5000);

        var message = Parse($$$"""{"event":"media","sequence_number":5,"media":{"payload":"{{{junk}}}"}}""");

        Assert.Null(message.Payload);
        Assert.Contains("media.payload", message.PayloadError, StringComparison.Ordinal);
        Assert.DoesNotContain("!!", message.PayloadError, StringComparison.Ordinal);
        Assert.True(message.PayloadError!.Length <= 64);
    }

    [Theory]
    [InlineData("""{"event":"media","sequence_number":7,"media":{"payload":"AA$A"}}""")]
    [InlineData("""{"event":"media","sequence_number":7,"media":{"payload":"AA AA"}}""")]
    [InlineData("""{"event":"media","sequence_number":7,"media":{"payload":"AAAA\nAAAA"}}""")]
    [InlineData("""{"event":"media","sequence_number":7,"media":{"payload":"AAAAA"}}""")]
    [InlineData("""{"event":"media","sequence_number":7,"media":{"payload":"AAA=="}}""")]
    [InlineData("""{"event":"media","sequence_number":7,"media":{"payload":"AA-_"}}""")]
    [InlineData("""{"event":"media","sequence_number":7,"media":{"payload":1234}}""")]
    [InlineData("""{"event":"media","sequence_number":7,"media":{"payload":{"a":[1]}}}""")]
    public void Media_with_an_unusable_payload_keeps_its_number_and_says_why(string json)
    {
        var message = Parse(json);

        Assert.Equal(ExotelEventKind.Media, message.Kind);
        Assert.Equal(7, message.SequenceNumber);
        Assert.Null(message.Payload);
        Assert.Contains("media.payload", message.PayloadError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("AA==", 1)]
    [InlineData("AAAA", 3)]
    [InlineData("AAAAAAA=", 5)]
    public void Payload_of_an_odd_byte_count_is_kept_byte_for_byte(string base64, int bytes)
    {
        var message = Parse($$$"""{"event":"media","media":{"payload":"{{{base64}}}"}}""");

        Assert.Equal(Convert.FromBase64String(base64), message.Payload);
        Assert.Equal(bytes, message.Payload!.Length);
    }

    [Theory]
    [InlineData("""{"event":"start","sequence_number":1,"start":{"stream_sid":"s1","media_format":{"sample_rate":8000.0}}}""", 8000)]
    [InlineData("""{"event":"start","sequence_number":"1.0","start":{"stream_sid":"s1","media_format":{"sample_rate":"16000.00"}}}""", 16000)]
    public void Whole_numbers_written_with_a_decimal_point_are_those_integers(string json, int rate)
    {
        var message = Parse(json);

        Assert.Equal(rate, message.SampleRate);
        Assert.Equal(1, message.SequenceNumber);
    }

    [Fact]
    public void Media_sequence_number_written_as_a_decimal_string_is_read()
    {
        Assert.Equal(2, Parse("""{"event":"media","sequence_number":"2.0","media":{"payload":"AAAA"}}""").SequenceNumber);
        Assert.Equal(ProtocolErrorKind.InvalidNumber, Reject("""{"event":"media","sequence_number":"2.5","media":{"payload":"AAAA"}}""").Kind);
    }

    [Fact]
    public void Unusable_optional_start_fields_are_left_out_and_the_start_still_parses()
    {
        var longSid = new string('c', 2000);
        var parameters = "{" + string.Join(",", Enumerable.Range(1, 65).Select(n => $"\"p{n}\":\"v{n}\"")) + "}";
        var json = $$$$"""{"event":"start","sequence_number":1,"start":{"stream_sid":"s1","call_sid":"{{{{longSid}}}}","from":{"number":"+91"},"to":["x"],"custom_parameters":{{{{parameters}}}},"media_format":{"encoding":{"a":1},"sample_rate":8000}}}""";

        var message = Parse(json);

        Assert.Equal("s1", message.StreamSid);
        Assert.Null(message.CallSid);
        Assert.Null(message.From);
        Assert.Null(message.To);
        Assert.Equal(64, message.CustomParameters!.Count);
        Assert.True(message.UnknownFieldCount >= 5);
    }

    [Fact]
    public void Deeply_nested_unknown_field_is_invalid_json_not_a_crash()
    {
        var json = """{"event":"media","x":""" + new string('[', 1000) + new string(']', 1000) + "}";

        Assert.Equal(ProtocolErrorKind.InvalidJson, Reject(json).Kind);
    }

    // ---- the upgrade URL's sample rate -------------------------------------------------------

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("  ")]
    public void Absent_sample_rate_query_means_no_rate(string? value)
    {
        Assert.True(ExotelMessageParser.TryParseSampleRateQuery(value, out var rate, out _));
        Assert.Null(rate);
    }

    [Theory]
    [InlineData("16000", 16000)]
    [InlineData("16000Hz", 16000)]
    [InlineData("24000", 24000)]
    [InlineData("8000", 8000)]
    public void Supported_sample_rate_query_is_read(string value, int expected)
    {
        Assert.True(ExotelMessageParser.TryParseSampleRateQuery(value, out var rate, out _));
        Assert.Equal(expected, rate);
    }

    [Theory]
    [InlineData("44100", ProtocolErrorKind.UnsupportedSampleRate)]
    [InlineData("1000000000", ProtocolErrorKind.UnsupportedSampleRate)]
    [InlineData("-16000", ProtocolErrorKind.UnsupportedSampleRate)]
    [InlineData("abc", ProtocolErrorKind.InvalidNumber)]
    [InlineData("16kHz", ProtocolErrorKind.InvalidNumber)]
    [InlineData("16000\u00a0", ProtocolErrorKind.InvalidNumber)]
    public void Unusable_sample_rate_query_is_an_error(string value, ProtocolErrorKind expected)
    {
        Assert.False(ExotelMessageParser.TryParseSampleRateQuery(value, out var rate, out var error));
        Assert.Null(rate);
        Assert.Equal(expected, error.Kind);
    }

    // ---- stream ids ---------------------------------------------------------------------------

    [Theory]
    [InlineData("6f048d2e897a0d2d4029560f3f541947", true)]
    [InlineData("MZ.call_1:leg-2", true)]
    [InlineData("a", true)]
    [InlineData("", false)]
    [InlineData("a b", false)]
    [InlineData("../x", false)]
    [InlineData("key*", false)]
    public void Stream_id_allows_only_a_safe_alphabet(string id, bool valid)
    {
        Assert.Equal(valid, ExotelMessageParser.IsValidStreamId(id));
    }

    // ---- helpers --------------------------------------------------------------------------------

    private static ExotelMessage ParseVector(string name)
    {
        var bytes = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Vectors", name));
        Assert.True(ExotelMessageParser.TryParse(bytes, out var message, out var error), error.ToString());
        return message;
    }

    private static string PayloadTextOf(string name)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Vectors", name)));
        return document.RootElement.GetProperty("media").GetProperty("payload").GetString()!;
    }

    private static ExotelMessage Parse(string json)
    {
        Assert.True(ExotelMessageParser.TryParse(Encoding.UTF8.GetBytes(json), out var message, out var error), error.ToString());
        return message;
    }

    private static ProtocolError Reject(string json)
    {
        Assert.False(ExotelMessageParser.TryParse(Encoding.UTF8.GetBytes(json), out var message, out var error));
        Assert.Null(message);
        Assert.False(string.IsNullOrEmpty(error.Detail));
        return error;
    }
}
