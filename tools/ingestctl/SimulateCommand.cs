using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace Ingest.Ctl;

/// <summary>Plays calls into the gateway: Exotel (Basic auth, JSON events, base64 media) or native (JWT, binary frames).</summary>
internal static class SimulateCommand
{
    /// <summary>What to play. <see cref="Tracks"/> are the Exotel tracks sent per frame (null: no track field, the classic call).</summary>
    private sealed record Plan(
        Uri Url, string Protocol, string? Basic, string? Bearer, int Rate, byte[] Pcm, int FrameBytes, int CadenceMs,
        int? Duplicate, int? Drop, (string Digit, int After)? Dtmf, string Encoding, string?[] Tracks, byte[]? AgentPcm)
    {
        public byte[] Source(string? track) => track == "outbound" ? AgentPcm ?? Pcm : Pcm;

        public int FrameCount => Tracks.Max(t => (Source(t).Length + FrameBytes - 1) / FrameBytes);

        /// <summary>What the start declares (CONTRACT §5): PCM16, or G.711 with its rate.</summary>
        public string DeclaredEncoding => Encoding switch
        {
            "mulaw" => "audio/x-mulaw;rate=" + Rate.ToString(CultureInfo.InvariantCulture),
            "alaw" => "audio/x-alaw;rate=" + Rate.ToString(CultureInfo.InvariantCulture),
            _ => "audio/x-raw",
        };
    }

    private sealed record Result(string Sid, int Sent, WebSocketCloseStatus? Status, string? Description, string? Problem);

    public static Command Build()
    {
        var url = new Option<string>("--url") { Description = "the gateway's WebSocket URL; ws://user:pass@host/... carries Exotel's Basic credentials (env INGESTCTL_WS_URL)", DefaultValueFactory = _ => Common.Env("INGESTCTL_WS_URL") ?? "ws://127.0.0.1:8080/v1/ingest" };
        var protocol = new Option<string>("--protocol") { Description = "exotel (Basic auth, JSON events) or native (JWT, binary frames)", DefaultValueFactory = _ => "exotel" };
        protocol.AcceptOnlyFromAmong("exotel", "native");
        var user = new Option<string?>("--user") { Description = "Exotel Basic user (env EXOTEL_BASIC_AUTH_USER)", DefaultValueFactory = _ => Common.Env("EXOTEL_BASIC_AUTH_USER") };
        var pass = new Option<string?>("--pass") { Description = "Exotel Basic password (env EXOTEL_BASIC_AUTH_PASS)", DefaultValueFactory = _ => Common.Env("EXOTEL_BASIC_AUTH_PASS") };
        var token = new Option<string?>("--token") { Description = "native: the JWT (default: one minted for 1h from JWT_SECRET)" };
        var wav = new Option<FileInfo?>("--wav") { Description = "a PCM16 WAV at 8000, 16000 or 24000 Hz to play (default: a tone); two channels play as caller (inbound) and agent (outbound)" };
        var agentWav = new Option<FileInfo?>("--agent-wav") { Description = "exotel: a PCM16 mono WAV played as the outbound track (the agent), beside --wav as the caller" };
        var encoding = new Option<string>("--encoding") { Description = "exotel: the media encoding sent, pcm16 (audio/x-raw), mulaw (audio/x-mulaw) or alaw (audio/x-alaw)", DefaultValueFactory = _ => "pcm16" };
        encoding.AcceptOnlyFromAmong("pcm16", "mulaw", "alaw");
        var tracks = new Option<string?>("--tracks") { Description = "exotel: none (no track field, the classic applet), inbound, outbound or both (default: both for a stereo WAV or --agent-wav, else none)" };
        tracks.AcceptOnlyFromAmong("none", "inbound", "outbound", "both");
        var tone = Common.IntOption("--tone", "tone frequency in Hz when no --wav is given", 440, 20, 12_000);
        var frames = Common.IntOption("--frames", "tone: frames to send", 50, 1, 1_000_000);
        var rate = Common.IntOption("--rate", "tone: sample rate, 8000, 16000 or 24000", 8000, 8000, 24_000);
        var frameMs = Common.IntOption("--frame-ms", "milliseconds of audio per frame", 100, 10, 1000);
        var cadence = Common.IntOption("--cadence-ms", "pause between frames; 0 sends flat out", 100, 0, 60_000);
        var calls = Common.IntOption("--calls", "concurrent calls", 1, 1, 10_000);
        var duplicate = Common.OptionalInt("--duplicate", "resend media frame N right after itself (same sequence number)", 1, 1_000_000);
        var drop = Common.OptionalInt("--drop", "skip media frame N (its sequence number is used up: a gap)", 1, 1_000_000);
        var dtmf = new Option<string?>("--dtmf") { Description = "send dtmf digit D after media frame N, written D@N (e.g. 5@20)" };
        var sid = new Option<string?>("--sid") { Description = "the stream id (with --calls N: <sid>-1 ... <sid>-N); a stream id can be used once" };
        var sidPrefix = new Option<string>("--sid-prefix") { Description = "prefix of the fresh stream ids chosen without --sid", DefaultValueFactory = _ => "demo-" };
        var command = new Command("simulate", "Play a WAV file or a tone as one or more Exotel or native calls; prints the stream ids and how the server closed each")
        {
            url, protocol, user, pass, token, wav, agentWav, encoding, tracks, tone, frames, rate, frameMs, cadence, calls, duplicate, drop, dtmf, sid, sidPrefix,
        };
        command.SetAction(async (p, ct) =>
        {
            if (!Uri.TryCreate(p.GetValue(url), UriKind.Absolute, out var uri) || uri.Scheme is not ("ws" or "wss"))
            {
                throw CtlException.Usage($"--url must be a ws:// or wss:// URL, not '{p.GetValue(url)}'");
            }

            var proto = p.GetValue(protocol)!;
            (string, int)? dtmfAt = null;
            if (p.GetValue(dtmf) is { } d)
            {
                var parts = d.Split('@');
                if (parts.Length != 2 || parts[0].Length != 1 || !"0123456789*#ABCD".Contains(parts[0], StringComparison.Ordinal) ||
                    !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var after) || after < 1)
                {
                    throw CtlException.Usage($"--dtmf must be D@N (a digit 0-9, *, #, A-D after media frame N >= 1), not '{d}'");
                }

                dtmfAt = (parts[0], after);
            }

            if (proto == "native" && (p.GetValue(duplicate) is not null || p.GetValue(drop) is not null || dtmfAt is not null))
            {
                throw CtlException.Usage("--duplicate, --drop and --dtmf need --protocol exotel: a native frame's sequence number is its position, so it cannot be resent, skipped or carry a dtmf");
            }

            if (proto == "native" && (p.GetResult(encoding) is { Implicit: false } || p.GetValue(tracks) is not null || p.GetValue(agentWav) is not null))
            {
                throw CtlException.Usage("--encoding, --tracks and --agent-wav need --protocol exotel: native calls are PCM16 with one track (CONTRACT §6)");
            }

            int sampleRate;
            byte[] pcm;
            byte[]? agent = null;
            if (p.GetValue(wav) is { } file)
            {
                var audio = Wav.Read(file.FullName);
                if (p.GetResult(rate) is { Implicit: false } && p.GetValue(rate) != audio.SampleRate)
                {
                    throw CtlException.Usage($"--rate {p.GetValue(rate)} differs from the WAV's {audio.SampleRate} Hz; resampling is not done here (sox in.wav -r {p.GetValue(rate)} out.wav)");
                }

                (sampleRate, pcm, agent) = (audio.SampleRate, audio.Pcm, audio.Second);
            }
            else
            {
                sampleRate = p.GetValue(rate);
                pcm = Tone(p.GetValue(tone), sampleRate, sampleRate * p.GetValue(frameMs) / 1000 * p.GetValue(frames));
            }

            if (p.GetValue(agentWav) is { } agentFile)
            {
                var second = Wav.Read(agentFile.FullName);
                if (second.SampleRate != sampleRate || second.Second is not null)
                {
                    throw CtlException.Usage($"--agent-wav must be mono at the caller's {sampleRate} Hz, not {(second.Second is null ? "mono" : "two channels")} at {second.SampleRate} Hz");
                }

                agent = second.Pcm;
            }

            if (proto == "native" && agent is not null)
            {
                throw CtlException.Usage("a two-channel WAV plays as two Exotel tracks: it needs --protocol exotel (native calls have one track, CONTRACT §6)");
            }

            var trackChoice = p.GetValue(tracks) ?? (agent is not null ? "both" : "none");
            if (trackChoice is "both" && agent is null)
            {
                // A tone call with both tracks: the agent's tone a fifth above the caller's.
                agent = Tone(p.GetValue(tone) * 3 / 2, sampleRate, pcm.Length / 2);
            }

            string?[] trackList = trackChoice switch
            {
                "both" => ["inbound", "outbound"],
                "inbound" => ["inbound"],
                "outbound" => ["outbound"],
                _ => [null],
            };

            if (sampleRate is not (8000 or 16000 or 24000))
            {
                throw CtlException.Usage($"the audio is {sampleRate} Hz; the gateway takes 8000, 16000 or 24000 (convert: sox in.wav -r 8000 out.wav)");
            }

            if (pcm.Length == 0)
            {
                throw CtlException.Usage("the WAV has no audio");
            }

            string? basic = null;
            string? bearer = null;
            if (proto == "exotel")
            {
                var (u, pw) = uri.UserInfo.Length > 0
                    ? (Uri.UnescapeDataString(uri.UserInfo.Split(':')[0]), Uri.UnescapeDataString(uri.UserInfo.Contains(':', StringComparison.Ordinal) ? uri.UserInfo[(uri.UserInfo.IndexOf(':', StringComparison.Ordinal) + 1)..] : ""))
                    : (p.GetValue(user), p.GetValue(pass));
                basic = u is null ? null : Convert.ToBase64String(Encoding.UTF8.GetBytes(u + ":" + (pw ?? "")));
            }
            else
            {
                bearer = p.GetValue(token) ?? TokenCommand.Mint(TokenCommand.ResolveSecret(null, "JWT_SECRET", "native"), "native", "ingestctl", TimeSpan.FromHours(1));
            }

            uri = new UriBuilder(uri) { UserName = "", Password = "" }.Uri;
            var frameBytes = Math.Max(2, sampleRate * p.GetValue(frameMs) / 1000 * 2);
            var plan = new Plan(uri, proto, basic, bearer, sampleRate, pcm, frameBytes, p.GetValue(cadence), p.GetValue(duplicate), p.GetValue(drop), dtmfAt,
                p.GetValue(encoding)!, trackList, agent);
            var count = p.GetValue(calls);
            var sids = Enumerable.Range(1, count).Select(i => p.GetValue(sid) is { } s ? (count == 1 ? s : $"{s}-{i}") : p.GetValue(sidPrefix) + Guid.NewGuid().ToString("N")[..8]).ToArray();
            var totalFrames = plan.FrameCount;
            var what = proto == "exotel" ? $", {plan.DeclaredEncoding}, tracks {trackChoice}" : "";
            Console.WriteLine($"playing {count} {proto} call(s) to {uri}: {totalFrames} frames of {p.GetValue(frameMs)} ms at {sampleRate} Hz{what}, cadence {plan.CadenceMs} ms");
            foreach (var s in sids)
            {
                Console.WriteLine($"stream_id {s}");
            }

            var progress = new int[count];
            var clock = Stopwatch.StartNew();
            var tasks = sids.Select((s, i) => Task.Run(() => PlayAsync(plan, s, n => progress[i] = n, ct), ct)).ToArray();
            var all = Task.WhenAll(tasks);
            while (await Task.WhenAny(all, Task.Delay(1000, ct)) != all)
            {
                Common.Progress($"{clock.Elapsed:mm\\:ss} sent {progress.Sum()} of {totalFrames * count} frames");
            }

            Common.ProgressDone();
            var results = await all;
            foreach (var r in results)
            {
                var how = r.Status is { } st ? $"closed {(int)st} {st} \"{r.Description}\"" : r.Problem ?? "no close";
                var line = $"{r.Sid}: sent {r.Sent} media frame(s); {how}";
                if (r.Status == WebSocketCloseStatus.NormalClosure && r.Problem is null)
                {
                    Console.WriteLine(line);
                }
                else
                {
                    await Console.Error.WriteLineAsync("ingestctl: " + line);
                    if (r.Description?.Contains("already", StringComparison.Ordinal) == true)
                    {
                        await Console.Error.WriteLineAsync("ingestctl: that stream id was used before; run without --sid (a fresh one is chosen) or pick a new one");
                    }
                }
            }

            if (results.All(r => r.Status == WebSocketCloseStatus.NormalClosure && r.Problem is null))
            {
                Console.WriteLine($"done in {clock.Elapsed.TotalSeconds:F1} s; dump one: ingestctl dump {sids[0]} -o {sids[0]}.wav");
                return Program.Ok;
            }

            return Program.Failure;
        });
        return command;
    }

    private static byte[] Tone(int hz, int rate, int samples)
    {
        var pcm = new byte[samples * 2];
        for (var i = 0; i < samples; i++)
        {
            var sample = (short)(Math.Sin(2 * Math.PI * hz * i / rate) * 8000);
            pcm[2 * i] = (byte)sample;
            pcm[(2 * i) + 1] = (byte)(sample >> 8);
        }

        return pcm;
    }

    private static async Task<Result> PlayAsync(Plan plan, string sid, Action<int> progress, CancellationToken ct)
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        if (plan.Basic is not null)
        {
            socket.Options.SetRequestHeader("Authorization", "Basic " + plan.Basic);
        }
        else if (plan.Bearer is not null)
        {
            socket.Options.SetRequestHeader("Authorization", "Bearer " + plan.Bearer);
        }

        try
        {
            await socket.ConnectAsync(plan.Url, ct);
        }
        catch (WebSocketException ex)
        {
            var status = (int)socket.HttpStatusCode;
            return new Result(sid, 0, null, null, status > 0
                ? $"upgrade refused: HTTP {status}{(status == 401 ? " (Exotel support off, or wrong credentials/token; ingestctl refusals says which)" : "")}"
                : $"cannot connect to {plan.Url}: {Program.OneLine(ex.Message)}");
        }

        // Listen from the start: a refused stream id (1008 "stream already ended") is reported now, not after every frame.
        var closed = ReceiveCloseAsync(socket, ct);
        var callSid = Guid.NewGuid().ToString("N");
        var seq = 1;
        var sent = 0;
        try
        {
            if (plan.Protocol == "exotel")
            {
                await SendJsonAsync(socket, new { @event = "connected" }, ct);
                await SendJsonAsync(socket, new
                {
                    @event = "start",
                    sequence_number = "1",
                    stream_sid = sid,
                    start = new
                    {
                        stream_sid = sid,
                        call_sid = callSid,
                        account_sid = "ingestctl",
                        from = "+919876543210",
                        to = "+918047491899",
                        custom_parameters = new { },
                        media_format = new { encoding = plan.DeclaredEncoding, sample_rate = plan.Rate.ToString(CultureInfo.InvariantCulture), bit_rate = plan.Encoding == "pcm16" ? "128kbps" : "64kbps" },
                    },
                }, ct);
            }
            else
            {
                await SendJsonAsync(socket, new { @event = "start", stream_id = sid, sample_rate = plan.Rate, encoding = "pcm16le", channels = 1, metadata = new { source = "ingestctl" } }, ct);
            }

            var frameCount = plan.FrameCount;
            var next = Stopwatch.GetTimestamp();
            for (var chunk = 1; chunk <= frameCount; chunk++)
            {
                if (closed.IsCompleted)
                {
                    return await EarlyAsync(closed, sid, sent);
                }

                var offset = (chunk - 1) * plan.FrameBytes;
                if (plan.Protocol == "exotel")
                {
                    // One message per track (track selection both interleaves them); --drop and --duplicate act on the first.
                    foreach (var track in plan.Tracks)
                    {
                        var source = plan.Source(track);
                        if (offset >= source.Length)
                        {
                            continue;
                        }

                        seq++;
                        var first = track == plan.Tracks[0];
                        if (first && chunk == plan.Drop)
                        {
                            continue;
                        }

                        var pcm = source.AsSpan(offset, Math.Min(plan.FrameBytes, source.Length - offset));
                        var payload = Convert.ToBase64String(plan.Encoding == "pcm16" ? pcm : G711.Encode(pcm, plan.Encoding));
                        var chunkText = chunk.ToString(CultureInfo.InvariantCulture);
                        var timestamp = ((long)offset * 500 / plan.Rate).ToString(CultureInfo.InvariantCulture);
                        var message = JsonSerializer.SerializeToUtf8Bytes(new
                        {
                            @event = "media",
                            sequence_number = seq.ToString(CultureInfo.InvariantCulture),
                            stream_sid = sid,
                            media = track is null
                                ? (object)new { chunk = chunkText, timestamp, payload }
                                : new { track, chunk = chunkText, timestamp, payload },
                        });
                        await socket.SendAsync(message, WebSocketMessageType.Text, true, ct);
                        sent++;
                        if (first && chunk == plan.Duplicate)
                        {
                            await socket.SendAsync(message, WebSocketMessageType.Text, true, ct);
                        }
                    }

                    if (plan.Dtmf is { } d && d.After == chunk)
                    {
                        await SendJsonAsync(socket, new { @event = "dtmf", sequence_number = (++seq).ToString(CultureInfo.InvariantCulture), stream_sid = sid, dtmf = new { digit = d.Digit, duration = "100" } }, ct);
                    }
                }
                else
                {
                    await socket.SendAsync(plan.Pcm.AsMemory(offset, Math.Min(plan.FrameBytes, plan.Pcm.Length - offset)), WebSocketMessageType.Binary, true, ct);
                    sent++;
                }

                progress(chunk);
                if (plan.CadenceMs > 0)
                {
                    // Real time: the schedule is kept from the first frame, so slow sends do not add up to drift.
                    next += plan.CadenceMs * Stopwatch.Frequency / 1000;
                    var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), next);
                    if (wait > TimeSpan.Zero)
                    {
                        await Task.WhenAny(closed, Task.Delay(wait, ct));
                    }
                }
            }

            if (closed.IsCompleted)
            {
                return await EarlyAsync(closed, sid, sent);
            }

            if (plan.Protocol == "exotel")
            {
                await SendJsonAsync(socket, new { @event = "stop", sequence_number = (++seq).ToString(CultureInfo.InvariantCulture), stream_sid = sid, stop = new { call_sid = callSid, account_sid = "ingestctl", reason = "callended" } }, ct);
            }
            else
            {
                await SendJsonAsync(socket, new { @event = "stop" }, ct);
            }

            var result = await closed.WaitAsync(TimeSpan.FromSeconds(30), ct);
            return new Result(sid, sent, result.CloseStatus, result.CloseStatusDescription, null);
        }
        catch (WebSocketException)
        {
            return await EarlyAsync(closed, sid, sent);
        }
        catch (TimeoutException)
        {
            return new Result(sid, sent, null, null, "the server did not close the stream within 30 s of stop");
        }
    }

    private static async Task<Result> EarlyAsync(Task<WebSocketReceiveResult> closed, string sid, int sent)
    {
        try
        {
            var r = await closed.WaitAsync(TimeSpan.FromSeconds(5));
            return new Result(sid, sent, r.CloseStatus, r.CloseStatusDescription, r.CloseStatus == WebSocketCloseStatus.NormalClosure ? "ended by the server before the audio was sent" : null);
        }
        catch (Exception ex) when (ex is WebSocketException or TimeoutException)
        {
            return new Result(sid, sent, null, null, "the connection dropped");
        }
    }

    private static Task SendJsonAsync(ClientWebSocket socket, object message, CancellationToken ct) =>
        socket.SendAsync(JsonSerializer.SerializeToUtf8Bytes(message), WebSocketMessageType.Text, true, ct);

    private static async Task<WebSocketReceiveResult> ReceiveCloseAsync(ClientWebSocket socket, CancellationToken ct)
    {
        var buffer = new byte[4096];
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, ct);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return result;
            }
        }
    }
}
