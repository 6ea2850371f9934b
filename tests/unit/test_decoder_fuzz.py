import contextlib
import logging
import logging.handlers
import pickle

from fuzzkit import check_record, mutated, reads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netlog.decode.datagram import decode_datagram
from netlog.decode.stream import NEED_DATA, StreamDecoder
from netlog.decode.unpickle import unpickle_dict
from netlog.errors import DecodeError


def _frames():
    handler = logging.handlers.SocketHandler("x", 0)
    records = [
        logging.makeLogRecord({"msg": "hello", "user": 7}),
        logging.makeLogRecord({"msg": "ü %s", "args": ("x",), "exc_text": "Traceback"}),
        logging.makeLogRecord({"msg": "s", "tags": {1, 2}, "blob": b"\x00\xff", "n": 10**30}),
    ]
    frames = [handler.makePickle(r) for r in records]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        body = pickle.dumps(
            {"msg": "p", "nested": [[{"a": (1, 2.5)}]], "f": frozenset("ab")}, protocol
        )
        frames.append(len(body).to_bytes(4, "big") + body)
    return frames


FRAMES = _frames()
LINES = [
    b'{"event": "hi", "timestamp": "2024-01-01T00:00:00Z", "level": "info", "x": [{"y": null}]}\n',
    b"plain text\r\n",
    b"<34>Oct 11 22:14:15 mymachine su: failed\n",
]

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_stream(data, chunks):
    decoder = StreamDecoder("p", max_frame=4096, max_line=512)
    try:
        for piece in reads(data, chunks):
            for record in decoder.feed(piece):
                check_record(record)
        for record in decoder.feed(b""):
            check_record(record)
        assert decoder.next_record() is NEED_DATA
    except DecodeError:
        pass


class TestStreamFuzz:
    """A stream decoder yields records, NEED_DATA or DecodeError, never anything else."""

    @SETTINGS
    @given(st.binary(max_size=2048), st.lists(st.integers(1, 64), max_size=20))
    def test_random_bytes(self, data, chunks):
        _check_stream(data, chunks)

    @SETTINGS
    @given(
        st.lists(mutated(FRAMES), min_size=1, max_size=4),
        st.lists(st.integers(1, 300), max_size=10),
    )
    def test_mutated_frames(self, frames, chunks):
        _check_stream(b"".join(frames), chunks)

    @SETTINGS
    @given(
        st.lists(mutated(LINES), min_size=1, max_size=6), st.lists(st.integers(1, 40), max_size=10)
    )
    def test_mutated_lines(self, lines, chunks):
        _check_stream(b"".join(lines), chunks)

    @SETTINGS
    @given(st.binary(max_size=600))
    def test_random_pickle_bodies(self, body):
        _check_stream(len(body).to_bytes(4, "big") + body, [])
        with contextlib.suppress(DecodeError):
            unpickle_dict(body)


class TestDatagramFuzz:
    """decode_datagram returns a Record or raises DecodeError, nothing else."""

    @SETTINGS
    @given(st.one_of(st.binary(max_size=1024), mutated(FRAMES), mutated(LINES)))
    def test_any_datagram(self, data):
        try:
            record = decode_datagram(data, "p", 1.0, max_frame=4096)
        except DecodeError:
            return
        check_record(record)
