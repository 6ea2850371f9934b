"""What the decoders' fuzz tests share: mutated seeds, reads, and what a decoded record must be."""

import json

from hypothesis import strategies as st

from netlog.record import Record


@st.composite
def mutated(draw, seeds):
    """One of ``seeds`` with up to 8 bytes flipped, inserted, deleted, or the rest cut."""
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


def reads(data, sizes):
    """``data`` cut into pieces of ``sizes``, then the rest, as a server's reads may cut it.

    Empty pieces are left out: feeding ``b""`` means EOF, which each test
    sends itself, once.
    """
    position = 0
    for size in [*sizes, len(data)]:
        piece = data[position : position + size]
        position += len(piece)
        if piece:
            yield piece


def check_record(record, fmt=None):
    """A well-formed record (of format ``fmt`` when given) whose fields encode as strict JSON."""
    assert isinstance(record, Record)
    if fmt is not None:
        assert record.format == fmt
    assert isinstance(record.message, str)
    assert isinstance(record.logger, str)
    assert isinstance(record.level, str)
    assert isinstance(record.ts, float)
    assert record.exc is None or isinstance(record.exc, str)
    json.dumps(record.fields, allow_nan=False)
