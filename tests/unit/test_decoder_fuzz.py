import contextlib
import json
import logging
import logging.handlers
import pickle

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netlog.decode.datagram import decode_datagram
from netlog.decode.stream import NEED_DATA, StreamDecoder
from netlog.decode.unpickle import unpickle_dict
from netlog.errors import DecodeError
from netlog.record import Record


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


@st.composite
def mutated(draw, seeds):
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete" and data:
            del data[position : position + draw(st.integers(1, 8))]
        elif action == "cut":
            del data[position:]
    return bytes(data)


def _check_record(record):
    assert isinstance(record, Record)
    assert isinstance(record.message, str)
    assert isinstance(record.logger, str)
    assert isinstance(record.level, str)
    assert record.exc is None or isinstance(record.exc, str)
    json.dumps(record.fields, allow_nan=False)  # only JSON types, no NaN


def _check_stream(data, chunks):
    decoder = StreamDecoder("p", max_frame=4096, max_line=512)
    position = 0
    try:
        for size in [*chunks, len(data)]:
            piece = data[position : position + size]
            position += len(piece)
            if piece:
                for record in decoder.feed(piece):
                    _check_record(record)
        for record in decoder.feed(b""):
            _check_record(record)
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
        _check_record(record)
