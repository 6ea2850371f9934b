"""The forward decoder's fast paths give exactly what its general path gives.

``ForwardDecoder`` reads a Docker line that is a JSON object without going
through ``container_line`` (``_json_line``), and builds packed entries with
one ``unpackb`` (``_unpack_stream``); both exist for speed only
(``bench/protocols.py``), so each is checked against the general path on
the same input: the same records, the same notes.
"""

from __future__ import annotations

import collections
from typing import Any

import msgpack
import pytest

from netlog.decode.forward import ForwardDecoder, _Origin, _unpack_stream
from netlog.errors import DecodeError

PEER = "10.0.0.5:40000"
NOW = 1_700_000_100.0
TS = 1_700_000_000.0

LINES = [
    '{"event":"request handled","level":"warning","logger":"app.http","user":"ada"}',
    '{"msg":"pino says","level":50,"time":1700000050123,"pid":7}',
    (
        '{"event":"boom","exception":"Traceback (most recent call last):\\n  File \\"a.py\\"",'
        '"level":"error"}'
    ),
    '{"event":"no level, no time"}',
    '{"event":"not closed"',  # broken JSON: a text line, noted json_as_text
    '{"event":"caf\udcc3\udca9 bytes that are not UTF-8"}',  # surrogateescape from msgpack
    '{"event":"nested","a":' + "[" * 300 + "]" * 300 + "}",  # deep: the depth-limited copy
    '{"event":"its own container_name","container_name":"mine","tag":"own"}',
    "{}",
]


def _body(line: str, source: str = "stderr") -> dict[str, Any]:
    return {
        "container_id": "3e8a437d25ca",
        "container_name": "/web-1",
        "source": source,
        "log": line,
    }


def _pack(obj: Any) -> bytes:
    """MessagePack with invalid UTF-8 kept as its bytes (a sender's own bytes, not ours)."""
    return msgpack.packb(obj, unicode_errors="surrogateescape")


def _general(line: str) -> tuple[list[Any], collections.Counter[str]]:
    """What the general path (``container_line`` through ``_line``) makes of the line."""
    decoder = ForwardDecoder(PEER, clock=lambda: NOW)
    body = _body(line)
    del body["log"]
    out: list[Any] = []
    raw = line.encode("utf-8", "surrogateescape")
    decoder._line(_Origin("docker.web", TS, body, body["source"]), raw, NOW, out)
    return out, decoder.notes


@pytest.mark.parametrize("line", LINES)
def test_a_json_line_is_what_the_general_path_makes(line: str) -> None:
    decoder = ForwardDecoder(PEER, clock=lambda: NOW)
    frame = _pack(["docker.web", int(TS), _body(line), {}])
    got = decoder.feed(frame)
    expected, notes = _general(line)
    assert got == expected
    assert decoder.notes == notes


def test_packed_entries_are_built_as_an_unpacker_builds_them() -> None:
    entries = [
        [msgpack.ExtType(0, b"\x65\x53\xf1\x00\x00\x00\x00\x07"), _body(line)] for line in LINES
    ]
    entries += [[1, {"k": [1, 2.5, None, True, {"x": b"\x00\xff"}]}], [2, {}]]
    data = b"".join(_pack(entry) for entry in entries)
    unpacker = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape", strict_map_key=False)
    unpacker.feed(data)
    assert _unpack_stream(data) == list(unpacker)
    assert _unpack_stream(b"") == []


@pytest.mark.parametrize(
    "data",
    [
        msgpack.packb([1, {"a": "b"}])[:-1],  # ends inside an entry
        b"\xc1",  # never used in MessagePack
        msgpack.packb([1, {"a": "b"}]) + b"\xd4\xff\x00",  # a timestamp ext of one byte
    ],
)
def test_bad_packed_entries_are_a_bad_frame(data: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        _unpack_stream(data)
    assert caught.value.reason == "bad_frame"


def test_frames_read_together_still_fail_one_at_a_time() -> None:
    """Frames unpacked in one call; one that only unpacking refuses keeps the ones before it."""
    good = [_pack(["docker.web", int(TS), _body(line), {}]) for line in LINES[:3]]
    bad = _pack(["docker.web", int(TS), {(1, 2): "a map key that is an array"}])
    decoder = ForwardDecoder(PEER, clock=lambda: NOW)

    got = decoder.feed(b"".join([*good, bad, good[0]]))

    assert [r.message for r in got] == [r.message for line in LINES[:3] for r in _general(line)[0]]
    with pytest.raises(DecodeError) as caught:
        decoder.feed(good[0])
    assert caught.value.reason == "bad_frame"


def test_a_chunk_id_that_is_not_utf8_is_acked_with_its_own_bytes() -> None:
    """Found by test_fuzz_forward: the ack was packed strictly and raised UnicodeEncodeError."""
    chunk = b"\x93\xa3id"
    frame = b"\x94\xa3app\x01\x81\xa3msg\xa1e\x81\xa5chunk" + bytes([0xA0 | len(chunk)]) + chunk
    decoder = ForwardDecoder(PEER, clock=lambda: NOW)

    (record,) = decoder.feed(frame)

    assert record.message == "e"
    assert decoder.replies() == b"\x81\xa3ack" + bytes([0xA0 | len(chunk)]) + chunk
