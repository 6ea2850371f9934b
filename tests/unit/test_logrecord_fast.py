"""The per-core fast paths of the pickle path give what the general code gives.

``from_logrecord`` splits a LogRecord dict's keys once per key set (a
bounded cache) and takes plain scalars as they are; ``FrameLoader`` checks
the keys' type with one ``join``.  These tests pin that the results, the
budget charged and the rejections are those of converting every value
with ``json_safe``.
"""

from __future__ import annotations

import datetime as dt
import logging
import logging.handlers
import pickle

import pytest

from netlog.decode import normalize
from netlog.decode.normalize import Budget, from_logrecord, json_safe
from netlog.decode.stream import StreamDecoder
from netlog.decode.unpickle import unpickle_dict
from netlog.errors import DecodeError

ODD_VALUES = {
    "nan": float("nan"),
    "inf": float("inf"),
    "minus_inf": float("-inf"),
    "wide": 2**64,
    "widest_kept": 2**64 - 1,
    "low": -(2**63) - 1,
    "lowest_kept": -(2**63),
    "yes": True,
    "no": False,
    "nothing": None,
    "float": 1.5,
    "text": "x",
    "when": dt.date(2024, 5, 6),
    "items": [1, (2, 3)],
    "raw": b"\xff",
}


def _record(**extra: object) -> dict:
    record = logging.makeLogRecord({"name": "app", "msg": "m", "levelname": "INFO"})
    record.__dict__.update(extra)
    return pickle.loads(logging.handlers.SocketHandler("127.0.0.1", 1).makePickle(record)[4:])


def test_user_values_are_what_json_safe_makes():
    data = _record(**ODD_VALUES)
    fields = from_logrecord(data, "p", 1.0, Budget(1 << 20)).fields
    expected = {key: json_safe(value, Budget(1 << 20)) for key, value in ODD_VALUES.items()}
    assert {k: v for k, v in fields.items() if k != "_src"} == expected
    assert list(fields)[1:] == list(ODD_VALUES)  # _src first, then the sender's order
    assert fields["nan"] == "nan"
    assert fields["wide"] == str(2**64)
    assert fields["widest_kept"] == 2**64 - 1


def test_same_keys_other_values_and_order_from_the_cache():
    first = from_logrecord(_record(a=1, b="x"), "p", 1.0, Budget(1 << 20)).fields
    second = from_logrecord(_record(a="y", b=[2]), "p", 1.0, Budget(1 << 20)).fields
    reordered = from_logrecord(_record(b=3, a=4), "p", 1.0, Budget(1 << 20)).fields
    assert (first["a"], first["b"]) == (1, "x")
    assert (second["a"], second["b"]) == ("y", [2])
    assert list(reordered)[-2:] == ["b", "a"]


def test_budget_charges_a_kept_scalar_one_and_a_str_its_length():
    # No LogRecord attributes at all: only the two user keys are charged,
    # "ab" + 1 for the int (as json_safe charges) and "c" + "xyz".
    data = {"ab": 5, "c": "xyz"}
    record = from_logrecord(data, "p", 1.0, Budget(7))
    assert record.fields == data
    with pytest.raises(DecodeError, match="expands past 6"):
        from_logrecord(data, "p", 1.0, Budget(6))


def test_many_key_sets_stay_correct_and_the_cache_bounded():
    for i in range(normalize._USER_KEYS_MAX + 50):
        fields = from_logrecord({f"k{i}": i, "msg": "m"}, "p", 1.0, Budget(1 << 20)).fields
        assert fields == {f"k{i}": i}
    assert len(normalize._USER_KEYS) <= normalize._USER_KEYS_MAX


def test_library_source_is_remembered_and_still_replaced():
    data = {
        "msg": "m",
        "pathname": "/venv/lib/structlog/_base.py",
        "lineno": 3,
        "funcName": "_proxy_to_logger",
    }
    # structlog's callsite keys, carried by netlog.client in netlog_fields.
    carried = {"pathname": "app.py", "lineno": 9, "func_name": "f"}
    for _ in range(2):  # the second time from the pathname cache
        record = from_logrecord({**data, "netlog_fields": carried}, "p", 1.0, Budget(1 << 20))
        assert record.fields["_src"] == {"file": "app.py", "line": 9, "func": "f"}
    plain = from_logrecord({**data, "pathname": "/srv/app.py"}, "p", 1.0, Budget(1 << 20))
    assert plain.fields["_src"] == {"file": "/srv/app.py", "line": 3, "func": "_proxy_to_logger"}


@pytest.mark.parametrize("key", [1, b"x", (1,), frozenset({"a"}), None])
def test_non_str_keys_are_still_bad_frames(key):
    with pytest.raises(DecodeError, match="non-string key") as info:
        unpickle_dict(pickle.dumps({"msg": "m", key: "x"}, 1))
    assert info.value.reason == "bad_frame"


def _frame(record_dict: dict) -> bytes:
    body = pickle.dumps(record_dict, 1)
    return len(body).to_bytes(4, "big") + body


def test_every_frame_of_a_read_gets_the_whole_budget():
    # max_frame 1 MiB: each frame may expand to 4 MiB.  Six frames of 0.9 MiB
    # text would overdraw one shared budget, so each must start with a full
    # one, whether the frame before it left objects in the budget's memory
    # (a list) or not; a list of 4 x 0.9 MiB fits, 5 x 0.9 MiB does not.
    text = "x" * 900_000
    frames = [_frame({"msg": f"plain {i}", "v": text}) for i in range(6)]
    frames[2:2] = [_frame({"msg": "list", "v": [text] * 4})]
    frames[4:4] = [_frame({"msg": "too much", "v": [text] * 5})]
    decoder = StreamDecoder("p", max_frame=1 << 20)
    records = decoder.feed(b"".join(frames))
    assert [r.message for r in records] == [
        "plain 0", "plain 1", "list", "plain 2", "plain 3", "plain 4", "plain 5"
    ]  # fmt: skip
    assert decoder.dropped["bad_frame"] == 1
