"""The one capped inflater every compressed protocol goes through."""

from __future__ import annotations

import gzip
import zlib

import pytest

from netlog.decode.inflate import compression_of, inflate
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
