"""The one capped inflater every compressed protocol goes through."""

from __future__ import annotations

import gzip
import zlib

import pytest

from netlog.decode.inflate import MAX_RATIO, compression_of, inflate
from netlog.errors import DecodeError


def test_plain_data_is_returned_as_it_is() -> None:
    assert compression_of(b'{"a": 1}') is None
    assert inflate(b'{"a": 1}', 10) == b'{"a": 1}'


@pytest.mark.parametrize("pack", [gzip.compress, zlib.compress])
def test_gzip_and_zlib_are_detected_and_inflated(pack: object) -> None:
    body = b'{"short_message": "hello"}' * 3
    packed = pack(body)  # type: ignore[operator]
    assert compression_of(packed) in {"gzip", "zlib"}
    assert inflate(packed, len(body)) == body


def test_a_bomb_stops_at_the_cap() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(DecodeError) as caught:
        inflate(bomb, 1_000_000)
    assert caught.value.reason == "decompressed_too_large"


def test_a_truncated_or_corrupt_stream_is_a_decode_error() -> None:
    packed = gzip.compress(b"x" * 1000)
    with pytest.raises(DecodeError) as truncated:
        inflate(packed[:-12], 10_000)
    assert truncated.value.reason == "bad_compression"
    with pytest.raises(DecodeError) as corrupt:
        inflate(b"\x1f\x8b" + b"\xff" * 30, 10_000)
    assert corrupt.value.reason == "bad_compression"


PAYLOAD = b'{"short_message": "hello", "_n": 1}' * 5
STREAMS = [
    zlib.compress(PAYLOAD),
    gzip.compress(PAYLOAD),
    zlib.compress(PAYLOAD, 0),  # stored: no expansion at all
    zlib.compress(b""),
    zlib.compress(PAYLOAD) + b"what follows the stream",
    gzip.compress(PAYLOAD) + gzip.compress(b"a second member: ignored"),
    zlib.compress(PAYLOAD)[:-3],  # ends early
    zlib.compress(PAYLOAD)[:2] + b"\xff" * 40,  # corrupt
    b"\x1f\x8b" + b"\x00" * 8,  # a gzip header, no stream
    zlib.compress(b"\0" * 100_000),  # at deflate's best ratio
]


@pytest.mark.parametrize("data", STREAMS)
def test_one_call_when_the_cap_cannot_be_reached_is_the_capped_loop(data: bytes) -> None:
    """At ``limit >= len * MAX_RATIO`` one ``zlib.decompress``; below it the capped loop: alike."""
    limit = len(data) * MAX_RATIO

    def outcome(cap: int) -> bytes | str:
        try:
            return inflate(data, cap)
        except DecodeError as exc:
            return exc.reason

    fast, capped = outcome(limit), outcome(limit - 1)
    assert fast == capped
    if isinstance(fast, bytes):
        assert len(fast) <= limit - 1


def test_deflate_expands_no_more_than_max_ratio() -> None:
    """What :data:`MAX_RATIO` rests on, at zlib's own best: well under it."""
    for size in (1 << 10, 1 << 16, 1 << 22):
        packed = zlib.compress(b"\0" * size, 9)
        assert size <= len(packed) * MAX_RATIO
