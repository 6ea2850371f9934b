"""The forward decoder's fast paths give exactly what its general path gives.

``ForwardDecoder`` reads a Docker line that is a JSON object without going
through ``container_line`` (``_entry``, and ``_json_line`` behind
``_record``), and builds packed entries with one ``unpackb``, their
EventTimes read as bytes (``_unpack_entries``); all exist for speed only
(``bench/protocols.py``), so each is checked against the general path on
the same input: the same records, the same notes.
"""

from __future__ import annotations

import collections
import struct
from typing import Any

import msgpack
import pytest

from netlog.decode.forward import ForwardDecoder, _Origin, _unpack_entries, event_time
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


def _unpacked(data: bytes) -> list[Any]:
    unpacker = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape", strict_map_key=False)
    unpacker.feed(data)
    return list(unpacker)


def _event(seconds: int, nanoseconds: int) -> msgpack.ExtType:
    return msgpack.ExtType(0, struct.pack(">II", seconds, nanoseconds))


def test_packed_entries_are_built_as_an_unpacker_builds_them() -> None:
    entries = [[_event(1_700_000_000, 7), _body(line)] for line in LINES]
    entries += [[1, {"k": [1, 2.5, None, True, {"x": b"\x00\xff"}]}], [2, {}]]
    data = b"".join(_pack(entry) for entry in entries)
    assert _unpack_entries(data) == (_unpacked(data), False)
    assert _unpack_entries(b"") == ([], False)


def test_event_times_are_read_as_their_bytes_and_nothing_else_changes() -> None:
    """Every entry ``[EventTime, ...]``: each time is its 8 bytes, every other byte as sent.

    The three bytes rewritten at each entry's start also occur inside the
    records (a line, a key, a nested ``[EventTime, x]``), which stay as sent.
    """
    marker = "\x92\udcd7\x00"  # the bytes 92 d7 00 inside a str (surrogateescape)
    bodies = [
        _body(LINES[0]),
        {"log": f"text {marker} text", marker: "key"},
        {"nested": [_event(5, 6), "x"], "bytes": b"\x92\xd7\x00"},
        {},
    ]
    entries = [[_event(1_700_000_000 + k, 999_999_999 * (k % 2)), b] for k, b in enumerate(bodies)]
    data = b"".join(_pack(entry) for entry in entries)
    expected = _unpacked(data)
    for entry in expected:
        entry[0] = entry[0].data  # what the rewrite gives instead of the ExtType

    assert _unpack_entries(data) == (expected, True)


@pytest.mark.parametrize(
    "times",
    [
        [_event(1, 2), b"\x00" * 8],  # a bin time: not an EventTime, a bad frame as before
        [b"\x00" * 8, _event(1, 2)],
    ],
)
def test_a_time_that_is_bytes_is_no_time_even_beside_event_times(times: list[Any]) -> None:
    # The second record holds the bytes that start an EventTime entry.
    data = _pack(["app", b"".join(_pack([t, {"msg": "\x92\udcd7\x00"}]) for t in times)])
    decoder = ForwardDecoder(PEER, clock=lambda: NOW)
    with pytest.raises(DecodeError) as caught:
        decoder.feed(data)
    assert caught.value.reason == "bad_frame"


BODIES: list[dict[str, Any]] = [
    *(_body(line) for line in LINES),
    _body(LINES[0], source="stdout"),
    {"log": LINES[0]},  # no container name: the tag is the logger
    {"log": '{"event":"e"}', "container_name": "/"},  # an empty name: the tag
    {"log": '{"event":"e"}', "container_name": "/c", "tag": "own tag"},
    {"log": '{"event":"e"}', "container_name": "/c", "n": 5},  # not all str: json_safe first
    {"log": '{"event":"e"}', "partial_message": "false"},
    {"log": '{"event":"e"}', "partial_message": "true", "partial_id": "p", "partial_last": "true"},
    {"log": '{"event":"e"}', 7: "an int key"},
    {"log": "plain text line", "source": "stderr"},
    {"log": '["a JSON array"]'},
    {"log": '{"event":"x"}' + " " * 300, "container_name": "/c"},
    {"log": '{"event":"' + "y" * 100_000 + '"}'},  # past max_line: cut as the general path cuts
    {"message": "no log key", "level": "warning"},
    {"log": b"bytes, not str"},
]


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("mode", ["message", "packed"])
def test_an_entry_is_what_the_general_path_makes(body: dict[str, Any], mode: str) -> None:
    """``_entry`` (with EventTimes made bytes when packed) against ``_record`` of the same entry."""
    when = _event(1_700_000_000, 123_456_789) if mode == "packed" else 1_700_000_000
    if mode == "packed":
        frame = _pack(["docker.web", _pack([when, body]), {}])
    else:
        frame = _pack(["docker.web", when, body, {}])
    decoder = ForwardDecoder(PEER, max_line=65536, clock=lambda: NOW)

    got = decoder.feed(frame)

    general = ForwardDecoder(PEER, max_line=65536, clock=lambda: NOW)
    expected: list[Any] = []
    ts = event_time(msgpack.unpackb(_pack(when)))
    assert ts is not None
    general._record(
        "docker.web", ts, msgpack.unpackb(_pack(body), strict_map_key=False), NOW, expected
    )
    assert got == expected
    assert decoder.notes == general.notes


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
