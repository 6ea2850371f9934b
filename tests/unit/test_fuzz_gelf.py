"""Fuzzing the GELF decoders: records or DecodeError, nothing else, whatever the input."""

import collections
import gzip
import json
import zlib

from fuzzkit import check_record, mutated, reads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netlog.decode.gelf import CHUNK_MAGIC, GelfDatagrams, GelfStreamDecoder
from netlog.errors import DecodeError

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PAYLOADS = [
    json.dumps(
        {
            "version": "1.1",
            "host": "h",
            "short_message": "hi",
            "full_message": 'Traceback (most recent call last):\n  File "a", line 1\n',
            "timestamp": 1700000000.5,
            "level": 3,
            "_user": {"id": [1, 2.5, None]},
            "facility": "app",
        }
    ).encode(),
    json.dumps(
        {
            "version": "1.1",
            "short_message": '{"event": "x", "level": "warning", "logger": "l"}',
            "level": 6,
            "_container_name": "c",
            "_container_id": "id",
        }
    ).encode(),
    json.dumps({"short_message": "WARNING:root:x", "level": 3, "_container_id": "i"}).encode(),
]
COMPRESSED = [pack(p) for p in PAYLOADS for pack in (gzip.compress, zlib.compress)]


@st.composite
def chunk_datagrams(draw):
    """Chunks of a few messages, some with headers mangled, in any order."""
    out = []
    for message_id in draw(st.lists(st.binary(min_size=8, max_size=8), min_size=1, max_size=3)):
        payload = draw(st.sampled_from(PAYLOADS + COMPRESSED))
        size = draw(st.integers(1, 64))
        parts = [payload[i : i + size] for i in range(0, len(payload), size)][:128]
        for n, part in enumerate(parts):
            header = bytes([n, len(parts)])
            if draw(st.integers(0, 9)) == 0:
                header = draw(st.binary(min_size=2, max_size=2))
            out.append(CHUNK_MAGIC + message_id + header + part)
    return draw(st.permutations(out))


def _datagrams(datagrams):
    decode = GelfDatagrams(
        notes=collections.Counter(), dropped=collections.Counter(), max_frame=4096, max_line=512
    )
    for data in datagrams:
        try:
            record = decode(data, "p", 1.0)
        except DecodeError:
            continue
        if record is not None:
            check_record(record, "gelf")
            assert len(record.message) <= 512


class TestFuzzGelf:
    @SETTINGS
    @given(st.lists(st.one_of(st.binary(max_size=600), mutated(PAYLOADS + COMPRESSED)), max_size=5))
    def test_any_datagram(self, datagrams):
        _datagrams(datagrams)

    @SETTINGS
    @given(chunk_datagrams())
    def test_chunks_in_any_order_some_mangled(self, datagrams):
        _datagrams(datagrams)

    @SETTINGS
    @given(
        st.lists(st.one_of(mutated(PAYLOADS), st.binary(max_size=100)), max_size=6),
        st.lists(st.integers(1, 64), max_size=20),
    )
    def test_tcp_stream(self, frames, sizes):
        data = b"".join(frame + b"\0" for frame in frames)
        decoder = GelfStreamDecoder("p", max_frame=1024, max_line=256)
        for piece in reads(data, sizes):
            for record in decoder.feed(piece):
                check_record(record, "gelf")
        for record in decoder.feed(b""):
            check_record(record, "gelf")
        assert decoder.pending == 0
        assert decoder.records + sum(decoder.dropped.values()) <= data.count(b"\0") + 1
