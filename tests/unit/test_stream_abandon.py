"""StreamDecoder.abandon: the server gives up on a connection the peer did not close."""

import logging
import logging.handlers

import pytest

from netlog.decode.stream import NEED_DATA, StreamDecoder
from netlog.errors import DecodeError


def frame(msg):
    record = logging.makeLogRecord({"name": "app", "msg": msg, "levelno": 20})
    return logging.handlers.SocketHandler("x", 0).makePickle(record)


class TestAbandon:
    """A half record at shutdown or idle timeout is counted, never returned."""

    @pytest.mark.parametrize(
        ("data", "kind"),
        [
            (b'{"event": "whole"}\n{"event": "cut in ha', "line"),
            (b"whole\nhalf a text li", "line"),
            (frame("whole") + frame("cut")[:-7], "pickle frame"),
        ],
    )
    def test_half_record_is_counted_not_returned(self, data, kind):
        decoder = StreamDecoder("p")
        assert [r.message for r in decoder.feed(data)] == ["whole"]
        decoder.abandon()
        assert decoder.dropped == {"truncated": 1}
        assert decoder.pending == 0
        assert decoder.last_problem.startswith(f"connection given up inside a {kind}")
        assert decoder.next_record() is NEED_DATA

    def test_at_a_record_boundary_nothing_is_counted(self):
        decoder = StreamDecoder("p")
        decoder.feed(b"one\ntwo\n")
        decoder.abandon()
        assert not decoder.dropped

    def test_inside_an_overlong_line_counts_it_once(self):
        decoder = StreamDecoder("p", max_line=16)
        decoder.feed(b"x" * 100)
        decoder.abandon()
        assert decoder.dropped == {"line_too_long": 1}

    def test_complete_records_stay_available(self):
        decoder = StreamDecoder("p")
        decoder.receive_data(b"ready\nhalf")
        decoder.abandon()
        assert decoder.next_record().message == "ready"
        assert decoder.next_record() is NEED_DATA

    def test_data_after_abandon_is_an_error(self):
        decoder = StreamDecoder("p")
        decoder.abandon()
        with pytest.raises(DecodeError, match="after EOF"):
            decoder.feed(b"more\n")

    def test_after_eof_or_error_it_does_nothing(self):
        decoder = StreamDecoder("p")
        decoder.feed(b"last line")
        assert [r.message for r in decoder.feed(b"")] == ["last line"]
        decoder.abandon()
        assert not decoder.dropped
        broken = StreamDecoder("p", max_frame=10)
        with pytest.raises(DecodeError):
            broken.feed(b"\x00\x00\x01\x00")
        broken.abandon()
        assert not broken.dropped
