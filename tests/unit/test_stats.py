from collections import Counter

from netlog.stats import STREAM_BAD_FRAME_REASONS, Stats


class TestBadFrame:
    """A bad frame is counted once as a bad frame and once as dropped."""

    def test_counts_both(self):
        stats = Stats()
        stats.bad_frame("bad_pickle")
        stats.bad_frame("bad_pickle")
        stats.bad_frame("http_too_large")
        assert stats.bad_frames == Counter({"bad_pickle": 2, "http_too_large": 1})
        assert stats.dropped == stats.bad_frames
        assert stats.summary(7) == "7 records written, 3 dropped, 3 bad frames"


class TestAddConnection:
    """A finished connection's counts: every drop is dropped, only undecodable input is bad."""

    def test_bad_frames_are_the_undecodable_reasons(self):
        stats = Stats()
        dropped = Counter({"bad_frame": 2, "bad_json": 1, "truncated": 3, "line_too_long": 4})
        stats.add_connection(Counter({"json_as_text": 5}), dropped)
        assert stats.dropped == dropped
        assert stats.bad_frames == Counter({"bad_frame": 2, "bad_json": 1})
        assert stats.notes == Counter({"json_as_text": 5})
        assert set(stats.bad_frames) <= STREAM_BAD_FRAME_REASONS

    def test_adds_to_what_is_there(self):
        stats = Stats()
        stats.bad_frame("bad_frame")
        stats.add_connection(Counter(), Counter({"bad_frame": 1}))
        stats.add_connection(Counter({"invalid_utf8": 1}), Counter())
        assert stats.bad_frames == Counter({"bad_frame": 2})
        assert stats.dropped == Counter({"bad_frame": 2})
        assert stats.notes == Counter({"invalid_utf8": 1})
