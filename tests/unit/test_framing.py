"""netlog.decode.framing: bytes cut into frames, before any format."""

import pickle

import pytest

from netlog.decode.framing import (
    PICKLE_START,
    LengthPrefixed,
    Lines,
    is_pickle_start,
    pickle_datagram,
)
from netlog.errors import DecodeError


class Problems:
    """Collects what a framer reports, as a decoder's ``_problem`` would."""

    def __init__(self):
        self.seen = []

    def __call__(self, reason, text):
        self.seen.append((reason, text))

    @property
    def reasons(self):
        return [reason for reason, _ in self.seen]


def prefixed(payload):
    return len(payload).to_bytes(4, "big") + payload


def push_bytewise(framer, data):
    frames = []
    for index in range(len(data)):
        frames += framer.push(data[index : index + 1])
    return frames


class TestPickleStart:
    """The first byte tells pickle framing from lines."""

    def test_table(self):
        assert is_pickle_start(0x00)
        assert is_pickle_start(0x80)
        assert not is_pickle_start(ord("{"))
        assert not is_pickle_start(ord("\t"))
        assert not is_pickle_start(0xC3)  # starts a UTF-8 letter such as é
        assert len(PICKLE_START) == 29 + 1 + 66 + 11


class TestLengthPrefixed:
    """SocketHandler framing: a 4-byte big-endian length, then the frame."""

    def test_whole_and_bytewise_and_with_trailing_data(self):
        data = prefixed(b"abc") + prefixed(b"") + prefixed(b"x" * 300)
        expected = [b"abc", b"", b"x" * 300]
        assert LengthPrefixed(1 << 20, Problems()).push(data) == expected
        framer = LengthPrefixed(1 << 20, Problems())
        assert push_bytewise(framer, data) == expected
        assert framer.pending == 0
        framer = LengthPrefixed(1 << 20, Problems())
        assert framer.push(data + b"\x00\x00") == expected
        assert framer.pending == 2

    def test_too_large_is_fatal_after_the_good_frames(self):
        framer = LengthPrefixed(10, Problems())
        frames = framer.push(prefixed(b"ok") + (11).to_bytes(4, "big") + b"x")
        assert frames == [b"ok"]
        assert framer.fatal is not None
        assert framer.fatal.reason == "frame_too_large"

    def test_too_large_is_seen_from_its_prefix_alone(self):
        framer = LengthPrefixed(10, Problems())
        assert framer.push(b"\x00\x00\x01") == []
        assert framer.fatal is None
        assert framer.push(b"\x00") == []
        assert framer.fatal is not None

    def test_eof_inside_a_frame_is_truncated(self):
        problems = Problems()
        framer = LengthPrefixed(1 << 20, problems)
        assert framer.push(prefixed(b"abcdef")[:-2]) == []
        assert framer.pending == 8
        assert framer.finish() == []
        assert problems.reasons == ["truncated"]
        assert framer.pending == 0


class TestLines:
    """LF-terminated lines, one CR removed, at most max_line bytes each."""

    def test_endings(self):
        framer = Lines(100, Problems())
        assert framer.push(b"a\nb\r\nc\r\r\n\n") == [b"a", b"b", b"c\r", b""]

    def test_bytewise_equals_whole(self):
        data = b'{"a":1}\r\ntext\n\nlast'
        framer = Lines(100, Problems())
        assert push_bytewise(framer, data) == [b'{"a":1}', b"text", b""]
        assert framer.pending == 4
        assert framer.finish() == [b"last"]

    def test_long_line_in_one_read_is_dropped(self):
        problems = Problems()
        framer = Lines(5, problems)
        assert framer.push(b"short\n" + b"x" * 6 + b"\nok\r\n") == [b"short", b"ok"]
        assert problems.reasons == ["line_too_long"]

    def test_cr_does_not_count_against_the_limit(self):
        problems = Problems()
        framer = Lines(5, problems)
        assert framer.push(b"12345\r\n" + b"12345\r\n") == [b"12345", b"12345"]
        assert push_bytewise(framer, b"12345\r\n") == [b"12345"]
        assert problems.seen == []

    def test_long_line_over_many_reads_is_skipped_without_buffering(self):
        problems = Problems()
        framer = Lines(5, problems)
        assert framer.push(b"abc") == []
        assert framer.push(b"defgh") == []
        assert framer.pending == 0  # given up on, not buffered
        assert framer.push(b"ijk" * 1000) == []
        assert framer.pending == 0
        assert framer.push(b"...\nnext\n") == [b"next"]
        assert problems.reasons == ["line_too_long"]

    def test_long_last_line_at_eof(self):
        problems = Problems()
        framer = Lines(5, problems)
        framer.push(b"1234567")  # over 5 + 1 (room for a CR): given up at once
        assert framer.pending == 0
        assert framer.finish() == []
        framer = Lines(5, problems)
        framer.push(b"123456")  # exactly 5 + 1: kept in case a CR ends it
        assert framer.pending == 6
        assert framer.finish() == []
        assert problems.reasons == ["line_too_long", "line_too_long"]

    def test_clear_forgets_the_line(self):
        framer = Lines(100, Problems())
        framer.push(b"partial")
        framer.clear()
        assert framer.pending == 0
        assert framer.push(b"x\n") == [b"x"]


class TestPickleDatagram:
    """DatagramHandler: one prefixed frame that fills its datagram."""

    def test_payload(self):
        payload = pickle.dumps({"msg": "m"})
        assert pickle_datagram(prefixed(payload), 1 << 20) == payload

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            (b"\x00\x01", "bad_datagram"),
            (prefixed(b"abc")[:-1], "length_mismatch"),
            (prefixed(b"abc") + b"!", "length_mismatch"),
            (prefixed(b"x" * 11), "frame_too_large"),
        ],
    )
    def test_bad(self, data, reason):
        with pytest.raises(DecodeError) as info:
            pickle_datagram(data, 10)
        assert info.value.reason == reason
