using Ingest.Grains.Sequencing;

namespace Ingest.Tests.Sequencing;

public sealed class SequenceTrackerTests
{
    private static SequenceTracker StartedAt(long? baseline)
    {
        var tracker = new SequenceTracker();
        tracker.SetBaseline(baseline);
        return tracker;
    }

    [Fact]
    public void Consecutive_frames_after_start_make_no_gap()
    {
        var tracker = StartedAt(1);
        Assert.All(Enumerable.Range(2, 10), s => Assert.Equal(0, tracker.OnMedia(s, s - 1).Missing));
    }

    [Fact]
    public void Resent_frame_is_a_duplicate()
    {
        var tracker = StartedAt(1);
        tracker.OnMedia(2, 1);
        tracker.OnMedia(3, 2);
        Assert.False(tracker.OnMedia(3, 2).Accept);
        Assert.False(tracker.OnMedia(2, 1).Accept);
    }

    [Fact]
    public void Frame_missing_right_after_start_is_a_gap()
    {
        var decision = StartedAt(1).OnMedia(4, 3);
        Assert.Equal(2, decision.Missing);
        Assert.Equal(2, decision.MissingFrom);
        Assert.Equal(3, decision.MissingTo);
    }

    [Fact]
    public void Dtmf_and_mark_numbers_between_frames_are_not_lost_frames()
    {
        var tracker = StartedAt(1);
        tracker.OnMedia(2, 1);
        tracker.OnEvent(3);
        tracker.OnEvent(4);
        Assert.Equal(0, tracker.OnMedia(5, 2).Missing);
    }

    [Fact]
    public void Chunks_copied_from_sequence_numbers_make_no_phantom_gap_around_a_dtmf()
    {
        var tracker = StartedAt(1);
        tracker.OnMedia(2, 2);
        tracker.OnEvent(3);
        Assert.Equal(0, tracker.OnMedia(4, 4).Missing);
    }

    [Fact]
    public void Lost_frame_is_found_by_sequence_even_when_a_later_dtmf_arrived_first()
    {
        // The protocol vectors' order: media 2, media 3, dtmf 7, media 5 (chunk 4): frame 4 is missing.
        var tracker = StartedAt(1);
        tracker.OnMedia(2, 1);
        tracker.OnMedia(3, 2);
        tracker.OnEvent(7);
        Assert.Equal(1, tracker.OnMedia(5, 4).Missing);
    }

    [Fact]
    public void First_frame_numbered_like_the_start_is_kept()
    {
        var decision = StartedAt(1).OnMedia(1, 1);
        Assert.True(decision.Accept);
        Assert.Equal(0, decision.Missing);
    }

    [Fact]
    public void Without_a_start_number_the_first_frame_sets_the_baseline()
    {
        var tracker = StartedAt(null);
        Assert.Equal(0, tracker.OnMedia(40, null).Missing);
        Assert.Equal(1, tracker.OnMedia(42, null).Missing);
    }

    [Fact]
    public void Restored_tracker_continues_where_redis_left_off()
    {
        var tracker = new SequenceTracker();
        tracker.Restore(new SequenceState(Baseline: 1, MediaSeq: 10, Chunk: 9, EventsAbove: 1, EventMax: 11));
        Assert.False(tracker.OnMedia(10, 9).Accept);

        // The event 11 above the last frame is still counted, so frame 12 follows without a gap.
        Assert.Equal(0, tracker.OnMedia(12, 10).Missing);
    }

    [Fact]
    public void A_gateway_overflow_range_longer_than_the_jump_limit_moves_the_position_and_later_frames_follow()
    {
        var tracker = new SequenceTracker();
        tracker.SetBaseline(0);
        Assert.True(tracker.OnMedia(1, null).Accept);

        var range = tracker.OnMediaRange(2, 250_001, out var before);

        Assert.True(range.Accept);
        Assert.Equal(0, before.Missing);
        Assert.Equal(250_000, range.Missing);
        var next = tracker.OnMedia(250_002, null);
        Assert.True(next.Accept);
        Assert.Equal(0, next.Missing);
    }
}
