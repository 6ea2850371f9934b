import datetime as dt
import logging
import logging.handlers
import os
import pickle
import sys
import tracemalloc

import pytest
import structlog

from netlog.decode import stream as stream_module
from netlog.decode.stream import NEED_DATA, StreamDecoder
from netlog.errors import DecodeError

PEER = "127.0.0.1:5555"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def frame(msg="hello", **extra):
    record = logging.makeLogRecord(
        {"name": "app", "msg": msg, "levelname": "INFO", "levelno": 20, **extra}
    )
    return logging.handlers.SocketHandler("x", 0).makePickle(record)


def _fail():
    raise KeyError("k")


def error_frame():
    try:
        _fail()
    except KeyError:
        info = sys.exc_info()
    record = logging.LogRecord("app.err", logging.ERROR, "/a.py", 1, "failed: %s", ("ü",), info)
    handler = logging.handlers.SocketHandler("x", 0)
    handler.format(record)
    return handler.makePickle(record)


def raw_frame(obj, protocol=1):
    data = pickle.dumps(obj, protocol)
    return len(data).to_bytes(4, "big") + data


def json_line(**event):
    return structlog.processors.JSONRenderer()(None, "info", event).encode() + b"\n"


def drain(decoder):
    out = []
    while True:
        record = decoder.next_record()
        if record is NEED_DATA:
            return out
        out.append(record)


def feed_all(data, chunk=None, *, eof=True, **kwargs):
    kwargs.setdefault("clock", Clock())
    decoder = StreamDecoder(PEER, **kwargs)
    out = []
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        out += decoder.feed(data[i : i + step])
    if eof:
        out += decoder.feed(b"")
    return decoder, out


PICKLE_STREAM = frame("one") + error_frame() + frame("three", user=7, when=dt.date(2024, 1, 2))
LINE_STREAM = (
    json_line(event="first", timestamp="2024-01-01T00:00:00Z", level="debug", logger="a")
    + b"plain text line\r\n"
    + b"\n   \n"
    + "non-ascii ü line\n".encode()
    + json_line(event="last", n=1)
)


class TestPickleFrames:
    """SocketHandler frames, however they are cut."""

    def test_whole(self):
        decoder, records = feed_all(PICKLE_STREAM)
        assert [r.message for r in records] == ["one", "failed: ü", "three"]
        assert records[1].level == "error"
        assert records[1].exc is not None
        assert "KeyError: 'k'" in records[1].exc
        assert records[2].fields["user"] == 7
        assert records[2].fields["when"] == "2024-01-02"
        assert all(r.format == "pickle" and r.peer == PEER for r in records)
        assert decoder.format == "pickle"
        assert decoder.records == 3
        assert decoder.pending == 0
        assert not decoder.dropped

    def test_one_byte_at_a_time(self):
        _, whole = feed_all(PICKLE_STREAM)
        decoder, records = feed_all(PICKLE_STREAM, 1)
        assert [r._replace(received=0) for r in records] == [r._replace(received=0) for r in whole]
        assert not decoder.dropped

    def test_trailing_partial_frame_is_pending(self):
        decoder = StreamDecoder(PEER)
        records = decoder.feed(PICKLE_STREAM + frame("four")[:10])
        assert len(records) == 3
        assert decoder.pending == 10

    @pytest.mark.parametrize("cut", range(1, len(frame("x"))))
    def test_truncated_at_every_offset(self, cut):
        data = frame("x")
        decoder, records = feed_all(data[:cut])
        assert records == []
        assert decoder.dropped == {"truncated": 1}
        assert decoder.last_problem is not None
        assert decoder.pending == 0

    def test_truncated_after_good_frames(self):
        decoder, records = feed_all(PICKLE_STREAM + frame("four")[:-1])
        assert len(records) == 3
        assert decoder.dropped == {"truncated": 1}

    def test_received_is_when_the_last_byte_came(self):
        clock = Clock()
        decoder = StreamDecoder(PEER, clock=clock)
        data = frame("x")
        assert decoder.feed(data[:5]) == []
        clock.now = 2000.0
        (record,) = decoder.feed(data[5:])
        assert record.received == 2000.0

    def test_frame_too_large_fails_at_four_bytes(self):
        decoder = StreamDecoder(PEER)
        assert decoder.feed(b"\xff\xff\xff") == []
        with pytest.raises(DecodeError) as info:
            decoder.feed(b"\xf0")
        assert info.value.reason == "frame_too_large"
        assert decoder.pending == 0
        with pytest.raises(DecodeError) as again:
            decoder.feed(b"more")
        assert again.value.reason == "frame_too_large"
        with pytest.raises(DecodeError):
            decoder.next_record()

    def test_frame_too_large_respects_max_frame(self):
        data = frame("x" * 200)
        _, records = feed_all(data, max_frame=len(data) - 4)
        assert len(records) == 1
        with pytest.raises(DecodeError, match="exceeds"):
            feed_all(data, max_frame=len(data) - 5)

    def test_records_before_a_fatal_error_are_returned(self):
        decoder = StreamDecoder(PEER)
        records = decoder.feed(frame("ok") + b"\x7f\xff\xff\xff")
        assert [r.message for r in records] == ["ok"]
        with pytest.raises(DecodeError):
            decoder.feed(b"")

    def test_bad_frames_are_skipped(self):
        stream = (
            frame("a")
            + raw_frame([1, 2])
            + b"\x00\x00\x00\x00"
            + b"\x00\x00\x00\x03abc"
            + raw_frame({1: 2})
            + frame("b")
        )
        decoder, records = feed_all(stream)
        assert [r.message for r in records] == ["a", "b"]
        assert decoder.dropped == {"bad_frame": 4}
        assert decoder.last_problem is not None
        assert "bad pickle frame" in decoder.last_problem

    @pytest.mark.parametrize("chunk", [None, 1, 7, 600, 4096])
    def test_a_frame_failing_midway_or_with_bytes_after_stop_spoils_no_other(self, chunk):
        # Frames of one read share an unpickler: what a frame leaves unread
        # (it failed early, or had bytes after its STOP) must not be taken
        # as the start of the next frame.
        def framed(body):
            return len(body).to_bytes(4, "big") + body

        trailing = frame("b")[4:] + b"N."
        stream = (
            frame("a")
            + framed(b"h\x05" + b"N" * 10 + b".")
            + framed(trailing)
            + frame("c")
            + framed(b"}q\x00(X\x01\x00\x00\x00kh\x03u.")  # GETs what "c" PUT at 3
            + frame("d")
        )
        decoder, records = feed_all(stream, chunk)
        assert [r.message for r in records] == ["a", "b", "c", "d"]
        assert decoder.dropped == {"bad_frame": 2}

    def test_next_record_interface(self):
        decoder = StreamDecoder(PEER)
        assert decoder.next_record() is NEED_DATA
        decoder.receive_data(PICKLE_STREAM[:-3])
        assert len(drain(decoder)) == 2
        decoder.receive_data(PICKLE_STREAM[-3:])
        assert [r.message for r in drain(decoder)] == ["three"]
        decoder.receive_data(b"")
        assert decoder.next_record() is NEED_DATA
        assert decoder.next_record() is NEED_DATA

    def test_feeding_after_eof(self):
        decoder = StreamDecoder(PEER)
        decoder.feed(frame())
        decoder.feed(b"")
        with pytest.raises(DecodeError) as info:
            decoder.feed(frame())
        assert info.value.reason == "data_after_eof"
        with pytest.raises(DecodeError):
            decoder.receive_data(b"")


class TestHostileFrames:
    """Frames crafted to hurt the sink are contained."""

    def test_os_system(self, tmp_path):
        marker = tmp_path / "pwned"

        class Evil:
            def __reduce__(self):
                return os.system, (f"touch {marker}",)

        decoder, records = feed_all(frame("x", payload=Evil()) + raw_frame({"msg": Evil()}, 2))
        assert not marker.exists()
        assert len(records) == 2
        assert "touch" in records[0].fields["payload"]
        assert records[1].message.startswith("<")
        assert not decoder.dropped

    def test_memo_amplification(self):
        big = "x" * 10_000
        data = raw_frame({"msg": "hi", "big": [big] * 100_000})
        tracemalloc.start()
        try:
            decoder, records = feed_all(data + frame("after"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert [r.message for r in records] == ["after"]
        assert decoder.dropped == {"bad_frame": 1}
        assert decoder.last_problem is not None
        assert "expands" in decoder.last_problem
        assert peak < 64 << 20

    def test_deep_nesting(self):
        depth = 100_000
        body = b"\x80\x02}X\x03\x00\x00\x00msgX\x01\x00\x00\x00mX\x01\x00\x00\x00a"
        body += b"]" * depth + b"a" * (depth - 1) + b"u."
        body = body.replace(b"}X", b"}(X", 1)
        _, records = feed_all(len(body).to_bytes(4, "big") + body)
        (record,) = records
        assert record.message == "m"
        nested = record.fields["a"]
        while isinstance(nested, list):
            nested = nested[0]
        assert nested == "<nested too deep>"

    def test_memo_bomb(self):
        body = b"\x80\x02}r\x00\x00\x00\x40."
        decoder, records = feed_all(len(body).to_bytes(4, "big") + body + frame("ok"))
        assert [r.message for r in records] == ["ok"]
        assert decoder.dropped == {"bad_frame": 1}


class TestLines:
    """JSON and text lines."""

    def test_whole(self):
        decoder, records = feed_all(LINE_STREAM)
        assert [(r.format, r.message) for r in records] == [
            ("json", "first"),
            ("text", "plain text line"),
            ("text", "non-ascii ü line"),
            ("json", "last"),
        ]
        assert records[0].level == "debug"
        assert records[0].logger == "a"
        assert records[0].ts == 1704067200.0
        assert records[3].fields == {"n": 1}
        assert decoder.format == "lines"
        assert decoder.pending == 0
        assert not decoder.dropped
        assert not decoder.notes

    @pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
    def test_chunked(self, chunk):
        _, whole = feed_all(LINE_STREAM)
        _, records = feed_all(LINE_STREAM, chunk)
        assert [r._replace(received=0) for r in records] == [r._replace(received=0) for r in whole]

    @pytest.mark.parametrize("cut", range(1, len(LINE_STREAM)))
    def test_cut_at_every_offset(self, cut):
        decoder = StreamDecoder(PEER)
        records = decoder.feed(LINE_STREAM[:cut]) + decoder.feed(LINE_STREAM[cut:])
        assert len(records) == 4
        assert decoder.pending == 0

    def test_final_line_without_newline_at_eof(self):
        decoder = StreamDecoder(PEER)
        assert decoder.feed(b'{"event": "no newline"}') == []
        assert decoder.pending == 23
        (record,) = decoder.feed(b"")
        assert (record.format, record.message) == ("json", "no newline")

    def test_bad_json_is_kept_as_text(self):
        decoder, records = feed_all(b'{"event": oops\n  {"event": "indented"}\n')
        assert [(r.format, r.message) for r in records] == [
            ("text", '{"event": oops'),
            ("json", "indented"),
        ]
        assert decoder.notes == {"json_as_text": 1}
        assert not decoder.dropped

    def test_invalid_utf8(self):
        decoder, records = feed_all(b"caf\xe9 \xff\n")
        assert records[0].message == "caf\\xe9 \\xff"
        assert decoder.notes == {"invalid_utf8": 1}

    def test_control_characters_are_not_escaped_here(self):
        _, records = feed_all(b"a\x1b[31mred\tb\n")
        assert records[0].message == "a\x1b[31mred\tb"

    def test_first_byte_detection(self):
        for start in (b"\t", b"\r", b"\n", b" ", b"x", "é".encode(), b"{"):
            decoder = StreamDecoder(PEER)
            decoder.feed(start)
            assert decoder.format == "lines", start
        # A <PRI> start is syslog's non-transparent framing (test_syslog_stream.py).
        decoder = StreamDecoder(PEER)
        decoder.feed(b"<13>")
        assert decoder.format == "syslog"
        for start in (b"\x00", b"\x01", b"\x1f", b"\x7f", b"\x80", b"\xc1", b"\xf5", b"\xff"):
            decoder = StreamDecoder(PEER)
            decoder.feed(start)
            assert decoder.format == "pickle", start

    def test_line_too_long_is_dropped_and_resynchronised(self):
        long_line = b"x" * 5000 + b"\n"
        data = b"before\n" + long_line + b"after\n" + b"y" * 5000
        for chunk in (None, 1, 100, 999):
            decoder, records = feed_all(data, chunk, max_line=1000)
            assert [r.message for r in records] == ["before", "after"], chunk
            assert decoder.dropped == {"line_too_long": 2}, chunk
            assert decoder.last_problem is not None

    def test_line_at_the_limit_is_kept(self):
        _, records = feed_all(b"x" * 1000 + b"\r\n", 7, max_line=1000)
        assert len(records[0].message) == 1000

    def test_memory_is_bounded_without_newlines(self):
        decoder = StreamDecoder(PEER, max_line=4096)
        chunk = b"z" * 65536
        decoder.feed(b"start")
        for _ in range(200):
            assert decoder.feed(chunk) == []
            assert decoder.pending <= 4096
        assert decoder.feed(b"\nok\n")[0].message == "ok"
        assert decoder.dropped == {"line_too_long": 1}

    def test_deep_json_is_capped(self):
        line = b'{"event": "e", "deep": ' + b"[" * 500 + b"]" * 500 + b"}\n"
        _, records = feed_all(line)
        assert records[0].format == "json"
        depth = 0
        value = records[0].fields["deep"]
        while isinstance(value, list) and value:
            value = value[0]
            depth += 1
        assert depth < 254

    def test_empty_stream(self):
        decoder, records = feed_all(b"")
        assert records == []
        assert decoder.format is None


class TestPoisonFrames:
    """Issue 15 items 1-3: a poison frame between good ones costs only itself."""

    def test_good_records_around_poison_survive(self):
        def framed(value):
            data = pickle.dumps(value, 4)
            return len(data).to_bytes(4, "big") + data

        twice: list = []
        twice.extend([twice, twice])
        poison = [
            {"msg": "level", "levelno": 10**5000},
            {"msg": "twice", "f": twice},
            {"msg": ["x" * 1000] * 3000},  # a message built to 3 MB from 4 KB
        ]
        data = framed({"msg": "a"}) + b"".join(map(framed, poison)) + framed({"msg": "b"})
        decoder = StreamDecoder(PEER, max_line=100_000)
        records = decoder.feed(data)
        assert [r.message for r in records][:3] == ["a", "level", "twice"]
        assert records[-1].message == "b"
        assert len(records[3].message) <= 100_000
        assert decoder.notes["message_truncated"] == 1
        assert not decoder.dropped


class TestSafetyNet:
    """A frame the decoder fails on (a bug) costs that frame, not the read's others."""

    def test_unexpected_exception_skips_one_frame(self, monkeypatch):
        real = stream_module.from_logrecord

        def buggy(data, *args, **kwargs):
            if data.get("msg") == "bug":
                raise ValueError("a decoder bug")
            return real(data, *args, **kwargs)

        monkeypatch.setattr(stream_module, "from_logrecord", buggy)
        decoder = StreamDecoder(PEER)
        records = decoder.feed(frame("before") + frame("bug") + frame("after"))
        assert [r.message for r in records] == ["before", "after"]
        assert decoder.dropped == {"internal_error": 1}
        assert "ValueError: a decoder bug" in decoder.last_problem
