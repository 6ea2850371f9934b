"""The forward-protocol decoder under random and mutated bytes: records or DecodeError only."""

import gzip
import struct

import msgpack
from fuzzkit import check_record, mutated, reads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netlog.decode.forward import ForwardDecoder
from netlog.errors import DecodeError

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_EVENT_TIME = msgpack.ExtType(0, struct.pack(">II", 1700000000, 5))
_DOCKER = {"container_id": "abc", "container_name": "/web", "source": "stderr", "log": "INFO hi"}
_PARTIAL = {
    **_DOCKER,
    "partial_message": "true",
    "partial_id": "p",
    "partial_ordinal": "1",
    "partial_last": "false",
}
_ENTRIES = msgpack.packb([1, {"message": "a", "n": [1, {"x": b"\xff"}]}]) + msgpack.packb(
    [_EVENT_TIME, _DOCKER]
)
SEEDS = [
    msgpack.packb(["app", 1700000000, {"message": "m", "level": "warn"}]),
    msgpack.packb(["app", _EVENT_TIME, {"msg": "e"}, {"chunk": "c1"}]),
    msgpack.packb(["t", [[1, _DOCKER], [2.5, _PARTIAL]], {"size": 2}]),
    msgpack.packb(["t", _ENTRIES, {"chunk": "c2"}]),
    msgpack.packb(["t", gzip.compress(_ENTRIES), {"compressed": "gzip"}]),
    msgpack.packb(["t", 3, {"log": '{"level": 30, "msg": "json"}', "source": "stdout"}]),
    b"\xc0",
]


def _check(data: bytes, chunks: list[int], *, abandon: bool = False) -> None:
    decoder = ForwardDecoder("p", max_frame=4096, max_line=512, clock=lambda: 1.0)
    try:
        for piece in reads(data, chunks):
            for record in decoder.feed(piece):
                check_record(record, "fluent")
            assert isinstance(decoder.replies(), bytes)
            assert decoder.pending >= 0
        if abandon:
            decoder.abandon()
        else:
            for record in decoder.feed(b""):
                check_record(record, "fluent")
    except DecodeError:
        assert decoder.error is not None
    assert decoder.pending >= 0


class TestForwardFuzz:
    """Records or DecodeError, whatever the bytes and however they are cut."""

    @SETTINGS
    @given(st.binary(max_size=2048), st.lists(st.integers(1, 64), max_size=20))
    def test_random_bytes(self, data, chunks):
        _check(data, chunks)

    @SETTINGS
    @given(
        st.lists(mutated(SEEDS), min_size=1, max_size=4),
        st.lists(st.integers(1, 300), max_size=10),
        st.booleans(),
    )
    def test_mutated_messages(self, frames, chunks, abandon):
        _check(b"".join(frames), chunks, abandon=abandon)

    @SETTINGS
    @given(st.binary(max_size=600))
    def test_random_packed_entries(self, body):
        _check(msgpack.packb(["t", body]), [])
        _check(msgpack.packb(["t", gzip.compress(body), {"compressed": "gzip"}]), [])

    @SETTINGS
    @given(
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(2**64), 2**64 - 1)
            | st.floats()
            | st.text(max_size=20)
            | st.binary(max_size=20),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text(max_size=8) | st.integers(), children, max_size=4)
            ),
            max_leaves=20,
        )
    )
    def test_any_record_value(self, value):
        record = {"message": "m", "v": value, "log": value, "source": value}
        try:
            data = msgpack.packb(["t", 1, record])
        except (OverflowError, ValueError, TypeError):
            return
        _check(data, [])
        _check(
            msgpack.packb(
                ["t", 1, {"log": "INFO plain", "source": value, "container_name": value}]
            ),
            [],
        )
