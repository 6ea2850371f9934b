"""Scenario 27, beyond test_decoder_fuzz.py: chunking, hostile seeds, one line out.

test_decoder_fuzz.py checks the rule "records, NEED_DATA or DecodeError,
never anything else" on real frames, lines and datagrams.  This adds:

* hostile seeds (``__reduce__`` gadgets, memo bombs, deep nesting, huge
  length prefixes) mutated the same way;
* chunking invariance: the same bytes fed whole or in any chunks give the
  same records and the same counts (h11's whole / byte-at-a-time rule);
* one record in, one line out: every decoded record encodes to exactly one
  valid JSON line and renders to one console line without control bytes.
"""

import io
import os
import pickle
import re
import struct

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_decoder_fuzz import FRAMES, LINES, mutated

from netlog.decode.datagram import decode_datagram
from netlog.decode.stream import NEED_DATA, StreamDecoder
from netlog.errors import DecodeError
from netlog.sinks.console import ConsoleSink
from netlog.sinks.encode import encode_line

#: What a terminal or a line reader would obey: C0 (but the newline), DEL, C1,
#: line and paragraph separators, bidi controls, lone surrogates.
UNSAFE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class _Gadget:
    def __reduce__(self):
        return (os.system, ("touch /nonexistent/netlog-fuzz-marker",))


def _framed(body: bytes) -> bytes:
    return struct.pack(">L", len(body)) + body


def _hostile_frames() -> list[bytes]:
    big = "B" * 2000
    dag: list = [big]
    for _ in range(20):
        dag = [dag, dag]
    nested = b"]" * 300 + b"a" * 299
    return [
        _framed(pickle.dumps({"msg": "gadget", "x": _Gadget()}, 2)),
        _framed(pickle.dumps({"msg": "list", "x": [big] * 5000}, 1)),
        _framed(pickle.dumps({"msg": "dag", "x": dag}, 4)),
        _framed(b"\x80\x02}r\xff\xff\xff\x7f."),
        _framed(b"}X\x03\x00\x00\x00msgX\x01\x00\x00\x00xsX\x01\x00\x00\x00y" + nested + b"s."),
        struct.pack(">L", 0xFFFFFFF0) + b"\x80\x02",
        _framed(pickle.dumps({"msg": "odd \ud800 \x1b]0;t\x07 \r\n", "n": float("nan")}, 3)),
    ]


HOSTILE = _hostile_frames()
HOSTILE_LINES = [
    b'{"event": "e \\u001b]0;t\\u0007 \\ud800", "v": 1e400}\n',
    b'{"event": ' + b"[" * 300 + b"]" * 300 + b"}\n",
    b"\xff\xfe text \x1b[2J\r\n",
]


class FixedClock:
    def __call__(self):
        return 1_700_000_000.5


def decode(data: bytes, chunks: list[int], *, abandon: bool = False):
    """Feed ``data`` in ``chunks``; the records, the counts and the error reason, if any."""
    decoder = StreamDecoder("p", max_frame=8192, max_line=600, clock=FixedClock())
    records = []
    position = 0
    try:
        for size in [*chunks, len(data)]:
            piece = data[position : position + size]
            position += len(piece)
            if piece:
                records += decoder.feed(piece)
        if abandon:
            decoder.abandon()
        else:
            records += decoder.feed(b"")
        assert decoder.next_record() is NEED_DATA
    except DecodeError as exc:
        return records, decoder.dropped, exc.reason
    return records, decoder.dropped, None


def assert_one_line_each(records) -> None:
    stream = io.StringIO()
    console = ConsoleSink("pretty", stream, colors=False)
    for record in records:
        line = encode_line(record)
        assert line.endswith(b"\n")
        assert line.count(b"\n") == 1
        assert len(line.decode("utf-8").splitlines()) == 1
        obj = orjson.loads(line)
        assert set(obj) >= {"ts", "received", "level", "logger", "message", "fields", "peer"}
        console.write([record])
    if not records:
        return
    text = stream.getvalue()
    record_lines = [r for r in records if not r.exc]
    assert text.count("\n") >= len(records)
    if len(record_lines) == len(records):
        assert text.count("\n") == len(records)
    unsafe = UNSAFE.search(text)
    assert unsafe is None, repr(unsafe)


class TestHostileSeeds:
    """Mutated hostile frames: records or DecodeError, and every record one line."""

    @SETTINGS
    @given(
        st.lists(mutated(HOSTILE + FRAMES), min_size=1, max_size=4),
        st.lists(st.integers(1, 500), max_size=8),
    )
    def test_frames(self, frames, chunks):
        records, _, _ = decode(b"".join(frames), chunks)
        assert_one_line_each(records)

    @SETTINGS
    @given(st.lists(mutated(HOSTILE_LINES + LINES), min_size=1, max_size=6))
    def test_lines(self, lines):
        records, _, _ = decode(b"".join(lines), [])
        assert_one_line_each(records)

    @SETTINGS
    @given(mutated(HOSTILE + FRAMES + HOSTILE_LINES + LINES))
    def test_datagrams(self, data):
        try:
            record = decode_datagram(data, "p", 1.0, max_frame=8192)
        except DecodeError:
            return
        assert_one_line_each([record])


class TestChunkingInvariance:
    """Whole or in pieces, the same bytes give the same records and counts."""

    @SETTINGS
    @given(
        st.lists(mutated(FRAMES + HOSTILE[:3]), min_size=1, max_size=4),
        st.lists(st.integers(1, 97), min_size=1, max_size=30),
    )
    def test_frames(self, frames, chunks):
        data = b"".join(frames)
        assert decode(data, chunks) == decode(data, [])

    @SETTINGS
    @given(
        st.lists(mutated(LINES + HOSTILE_LINES), min_size=1, max_size=6),
        st.lists(st.integers(1, 50), min_size=1, max_size=30),
    )
    def test_lines(self, lines, chunks):
        data = b"".join(lines)
        assert decode(data, chunks) == decode(data, [])

    @SETTINGS
    @given(
        st.lists(mutated(FRAMES + LINES), min_size=1, max_size=4),
        st.lists(st.integers(1, 64), min_size=1, max_size=20),
    )
    def test_abandon(self, pieces, chunks):
        data = b"".join(pieces)
        whole = decode(data, [], abandon=True)
        assert decode(data, chunks, abandon=True) == whole
        assert_one_line_each(whole[0])
