import json
import math
import os
import random
from decimal import Decimal
from enum import IntEnum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netlog.record import ID_LENGTH, Record, id_time, new_id, rfc3339
from netlog.sinks import encode
from netlog.sinks.console import ConsoleSink
from netlog.sinks.encode import encode_line, format_time, line_id, sanitize
from netlog.sinks.pipeline import Pipeline
from netlog.stats import Stats
from netlog.store.records import record_from_json

KEYS = ["ts", "received", "level", "logger", "message", "fields", "peer", "format"]
KEYS_WITH_EXC = ["ts", "received", "level", "logger", "message", "fields", "exc", "peer", "format"]


def make(**changes):
    base = Record(
        ts=1700000000.123456,
        received=1700000000.5,
        level="info",
        logger="app.db",
        message="query took 12ms",
        fields={"user_id": 42, "path": "/api/items", "ms": 12.5, "ok": True, "tags": ["a", "b"]},
        exc=None,
        peer="127.0.0.1:53012",
        format="pickle",
    )
    return base._replace(**changes)


def check_line(line):
    """The invariants every encoded line has, whatever went in."""
    assert isinstance(line, bytes)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert b"\r" not in line
    text = line.decode("utf-8")  # strict: valid UTF-8
    assert len(text.splitlines()) == 1  # also no U+2028/U+2029/U+0085/\x1c-\x1e
    assert text.isprintable() or not any(ch in text for ch in "\x7f\x85\x9b\u2028\u2029\u202e")
    obj = json.loads(text)
    keys = list(obj)
    if "host" in keys:  # a collected record's machine: after format, before id
        assert keys.index("host") == len(keys) - 1 - ("id" in keys)
        assert isinstance(obj["host"], str)
        assert obj["host"]
        keys.remove("host")
    assert keys in (KEYS, KEYS_WITH_EXC)
    assert isinstance(obj["fields"], dict)
    for key in ("ts", "received", "level", "logger", "message", "peer", "format"):
        assert isinstance(obj[key], str)
    return obj


class Hostile:
    def __str__(self):
        raise RuntimeError("no str")

    def __repr__(self):
        raise RuntimeError("no repr")


class WeirdStr(str):
    __slots__ = ()

    def __str__(self):
        raise RuntimeError("no")


class Level(IntEnum):
    HIGH = 50


def deep(n):
    value = 1
    for _ in range(n):
        value = [value]
    return value


def cyclic():
    value: list = [1]
    value.append(value)
    return {"a": value}


NASTY_RECORDS = {
    "surrogate message": make(message="bad \ud800 end"),
    "surrogate pair halves": make(message="\udc80\ud83d"),
    "surrogate field key": make(fields={"k\udcff": 1}),
    "surrogate field value": make(fields={"k": ["\ud800", {"x": "\udfff"}]}),
    "surrogate level logger peer format": make(
        level="\ud800", logger="\ud800", peer="\ud800", format="\ud800"
    ),
    "surrogate exc": make(exc="Traceback\n\ud800"),
    "int key": make(fields={1: "a", 2.5: "b", None: "c", False: "d"}),
    "tuple and frozenset key": make(fields={(1, 2): "a", frozenset({1}): "b"}),
    "key collision": make(fields={1: "int", "1": "str"}),
    "nan and inf": make(fields={"a": math.nan, "b": math.inf, "c": -math.inf}),
    "big ints": make(fields={"a": 2**64, "b": -(2**63) - 1, "c": 10**100, "d": 2**64 - 1}),
    "int enum": make(fields={"a": Level.HIGH, "big": [2**70]}),
    "deep 300": make(fields={"a": deep(300)}),
    "deep 5000": make(fields={"a": deep(5000)}),
    "cycle": make(fields=cyclic()),
    "object": make(fields={"a": object()}),
    "hostile str and repr": make(fields={"a": Hostile(), Hostile(): 1}),
    "hostile str subclass": make(message=WeirdStr("m\ud800"), fields={WeirdStr("k"): 1}),
    "bytes and friends": make(
        fields={"a": b"\xff\x00ok", "b": bytearray(b"x"), "c": memoryview(b"y")}
    ),
    "set and complex and decimal": make(
        fields={"a": {1, 2}, "b": 1 + 2j, "c": Decimal("1.5"), "d": range(3)}
    ),
    "non-str top level": make(level=50, logger=None, message=None, peer=("1.2.3.4", 5)),
    "bad timestamps": make(ts=None, received="yesterday"),
    "nan timestamps": make(ts=math.nan, received=-math.inf),
    "huge timestamps": make(ts=1e300, received=-1e300),
    "fields not a dict": make(fields=["a", "b"]),
    "fields None": make(fields=None),
    "control characters": make(
        message="a\nb\r\x1b]0;pwned\x07\x00\x1c\x1d\x1e\x0b\x0c",
        fields={"k\n": "v\r\n", "esc": "\x1b[31m"},
        exc="line1\nline2\r\n",
    ),
    "unicode line breaks": make(message="x\u2028y\u2029z\x85w", fields={"\u2028": "\u2029"}),
    "del c1 bidi": make(message="\x7f\x9b31m\x80\x9f\u202e\u2066\u2069"),
}


class TestEncodeLine:
    """A typical record encodes to exactly ARCHITECTURE.md's keys and values."""

    def test_exact_values(self):
        line = encode_line(make())
        assert line == (
            b'{"ts":"2023-11-14T22:13:20.123456Z","received":"2023-11-14T22:13:20.500000Z",'
            b'"level":"info","logger":"app.db","message":"query took 12ms",'
            b'"fields":{"user_id":42,"path":"/api/items","ms":12.5,"ok":true,"tags":["a","b"]},'
            b'"peer":"127.0.0.1:53012","format":"pickle"}\n'
        )

    def test_key_order_without_exc(self):
        assert list(check_line(encode_line(make()))) == KEYS

    def test_exc_between_fields_and_peer(self):
        obj = check_line(encode_line(make(exc="Traceback (most recent call last):\n  boom\n")))
        assert list(obj) == KEYS_WITH_EXC
        assert obj["exc"] == "Traceback (most recent call last):\n  boom\n"

    def test_empty_exc_is_kept(self):
        assert json.loads(encode_line(make(exc="")))["exc"] == ""

    def test_times_match_rfc3339(self):
        obj = json.loads(encode_line(make(ts=0.5, received=1.0000005)))
        assert obj["ts"] == rfc3339(0.5) == "1970-01-01T00:00:00.500000Z"
        assert obj["received"] == rfc3339(1.0000005)

    def test_each_record_gets_its_own_receive_time(self):
        # The encoder reuses the last receive time's text; a change must show.
        times = [1.25, 1.25, 2.5, 1.25, 0.0, 0.0, 3.0]
        got = [json.loads(encode_line(make(received=t)))["received"] for t in times]
        assert got == [rfc3339(t) for t in times]

    def test_non_ascii_text_is_kept_as_utf8(self):
        line = encode_line(make(message="héllo 日本 🎉"))
        assert "héllo 日本 🎉".encode() in line
        assert json.loads(line)["message"] == "héllo 日本 🎉"

    def test_fields_keep_sender_order(self):
        obj = json.loads(encode_line(make(fields={"z": 1, "a": 2, "m": 3})))
        assert list(obj["fields"]) == ["z", "a", "m"]


class TestNastyValues:
    """No record makes encode_line raise, and the result is always one valid line."""

    @pytest.mark.parametrize("name", list(NASTY_RECORDS))
    def test_one_valid_line(self, name):
        check_line(encode_line(NASTY_RECORDS[name]))

    def test_surrogates_become_backslash_escapes(self):
        obj = check_line(encode_line(make(message="a\ud800b", fields={"k\udcff": "\udfff"})))
        assert obj["message"] == "a\\ud800b"
        assert obj["fields"] == {"k\\udcff": "\\udfff"}

    def test_rest_of_record_survives_a_bad_field(self):
        obj = check_line(encode_line(make(fields={"good": 1, "bad": 2**65, "s": "\ud800"})))
        assert obj["message"] == "query took 12ms"
        assert obj["fields"] == {"good": 1, "bad": str(2**65), "s": "\\ud800"}

    def test_int_bounds(self):
        obj = check_line(encode_line(NASTY_RECORDS["big ints"]))
        assert obj["fields"] == {
            "a": str(2**64),
            "b": str(-(2**63) - 1),
            "c": str(10**100),
            "d": 2**64 - 1,
        }

    def test_nan_becomes_null(self):
        obj = check_line(encode_line(NASTY_RECORDS["nan and inf"]))
        assert obj["fields"] == {"a": None, "b": None, "c": None}

    def test_non_str_keys_like_json_module(self):
        obj = check_line(encode_line(NASTY_RECORDS["int key"]))
        assert obj["fields"] == {"1": "a", "2.5": "b", "null": "c", "false": "d"}

    def test_too_deep_becomes_placeholder(self):
        text = json.dumps(check_line(encode_line(NASTY_RECORDS["deep 5000"])))
        assert "<too deep>" in text

    def test_cycle_is_bounded(self):
        text = json.dumps(check_line(encode_line(NASTY_RECORDS["cycle"])))
        assert "<too deep>" in text or "<truncated>" in text

    def test_hostile_object_gets_placeholder(self):
        obj = check_line(encode_line(NASTY_RECORDS["hostile str and repr"]))
        assert obj["fields"]["a"].startswith("<")
        assert "Hostile object at" in obj["fields"]["a"]

    def test_control_characters_stay_escaped(self):
        line = encode_line(NASTY_RECORDS["control characters"])
        for raw in (b"\r", b"\x1b", b"\x07", b"\x00", b"\x0b", b"\x0c", b"\x1c"):
            assert raw not in line
        assert b"\\n" in line
        assert b"\\r" in line
        assert b"\\u001b" in line
        obj = check_line(line)
        assert obj["message"] == "a\nb\r\x1b]0;pwned\x07\x00\x1c\x1d\x1e\x0b\x0c"

    def test_unicode_line_breaks_stay_escaped(self):
        line = encode_line(NASTY_RECORDS["unicode line breaks"])
        assert b"\\u2028" in line
        assert b"\\u2029" in line
        assert b"\\u0085" in line
        assert "\u2028".encode() not in line
        assert json.loads(line)["message"] == "x\u2028y\u2029z\x85w"

    def test_del_c1_and_bidi_are_escaped(self):
        line = encode_line(NASTY_RECORDS["del c1 bidi"])
        assert line.isascii()
        assert b"\x7f" not in line
        assert json.loads(line)["message"] == "\x7f\x9b31m\x80\x9f\u202e\u2066\u2069"

    def test_bad_timestamps_become_epoch(self):
        obj = check_line(encode_line(NASTY_RECORDS["bad timestamps"]))
        assert obj["ts"] == obj["received"] == "1970-01-01T00:00:00.000000Z"


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec=None, exclude_categories=()))
    | st.binary(max_size=8)
)
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(any_text | st.integers(), children, max_size=4)
        | st.tuples(children, children)
    ),
    max_leaves=20,
)
records = st.builds(
    Record,
    ts=st.floats(allow_nan=True),
    received=st.floats(allow_nan=True),
    level=any_text,
    logger=any_text,
    message=any_text,
    fields=st.dictionaries(any_text, values, max_size=5),
    exc=st.none() | any_text,
    peer=any_text,
    format=st.sampled_from(["pickle", "json", "text", "syslog", "http"]),
)


class TestProperty:
    """Any generated record gives exactly one valid JSON line."""

    @settings(max_examples=400, deadline=None)
    @given(records)
    def test_any_record(self, record):
        check_line(encode_line(record))


class TestFormatTime:
    """The cached formatter is exactly rfc3339, only faster."""

    def test_matches_rfc3339(self):
        rng = random.Random(1234)
        samples = [0.0, 0.5, 0.9999995, 0.0000005, 1.0000005, 1700000000.9999996, 2**31 + 0.5]
        samples += [rng.uniform(0, 4e9) for _ in range(5000)]
        samples += [rng.randrange(2**32) + rng.randrange(10**6) / 1e6 for _ in range(5000)]
        samples += [rng.randrange(2**32) + 0.5e-6 * rng.choice([1, 3, 5]) for _ in range(2000)]
        for ts in samples:
            assert format_time(ts) == rfc3339(ts), ts

    def test_out_of_range_matches_rfc3339(self):
        for ts in (-1.5, -1e20, 1e20, math.inf, -math.inf, 253402300799.0, 1e12):
            assert format_time(ts) == rfc3339(ts)

    def test_int_and_nonsense(self):
        assert format_time(3) == rfc3339(3)
        assert format_time(None) == "1970-01-01T00:00:00.000000Z"
        assert format_time("x") == "1970-01-01T00:00:00.000000Z"

    def test_cache_is_bounded(self):
        for second in range(10_000):
            format_time(float(second))
        assert len(encode._SECOND_CACHE) <= encode._SECOND_CACHE_MAX


class TestSanitize:
    """The slow path only produces what orjson accepts."""

    def test_containers(self):
        assert sanitize({"a": (1, [2, {3}])}) == {"a": [1, [2, [3]]]}

    def test_budget_bounds_shared_references(self):
        shared = [1]
        for _ in range(40):
            shared = [shared, shared]  # 2**40 leaves if expanded
        text = json.dumps(sanitize(shared))
        assert "<truncated>" in text
        assert len(text) < 10**7


class TestRecordId:
    """Every record's id: made once by the pipeline, time-ordered, kept when forwarded."""

    def test_ids_are_26_characters_and_sort_by_receive_time(self):
        times = [1700000000.0, 1700000000.0, 1700000000.001, 1700000005.5, 1800000000.0]
        ids = [new_id(t) for t in times]
        assert all(len(i) == ID_LENGTH == 26 for i in ids)
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)
        assert [id_time(i) for i in ids] == [
            1700000000.0,
            1700000000.0,
            1700000000.001,
            1700000005.5,
            1800000000.0,
        ]

    def test_many_ids_in_one_millisecond_stay_ordered_and_distinct(self):
        ids = [new_id(1700000000.0) for _ in range(5000)]  # crosses the cached high digits
        assert ids == sorted(ids)
        assert len(set(ids)) == 5000

    def test_a_forked_child_draws_its_own_sequence(self):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.write(write, new_id(1700000000.0).encode())
            os._exit(0)
        os.close(write)
        child = os.read(read, 64).decode()
        os.close(read)
        os.waitpid(pid, 0)
        mine = new_id(1700000000.0)
        assert len(child) == 26
        assert child[10:16] != mine[10:16]  # another node, so never the same id

    def test_bad_receive_times_still_give_an_id(self):
        for when in (math.nan, math.inf, -5.0, 1e300):
            assert len(new_id(when)) == 26

    def test_id_time_refuses_foreign_text(self):
        assert id_time("short") is None
        assert id_time("U" * 26) is None

    def test_encode_line_writes_the_given_id_last(self):
        line = encode_line(make(), "01HF7YAVEW0NTH54D9GGNPF71N")
        obj = json.loads(line)
        assert list(obj)[-1] == "id"
        assert obj["id"] == "01HF7YAVEW0NTH54D9GGNPF71N"
        assert line_id(line) == "01HF7YAVEW0NTH54D9GGNPF71N"

    def test_a_forwarded_record_keeps_its_own_id(self):
        line = encode_line(make(id="01HF7YAVEW0NTH54D9GGNPF71N"), "01HF7YAVEW0NTH54D9GGNPF7ZZ")
        assert json.loads(line)["id"] == "01HF7YAVEW0NTH54D9GGNPF71N"

    def test_an_id_that_is_not_ours_is_replaced(self):
        line = encode_line(make(id='x"}\n'), "01HF7YAVEW0NTH54D9GGNPF7ZZ")
        assert json.loads(line)["id"] == "01HF7YAVEW0NTH54D9GGNPF7ZZ"

    def test_without_an_id_the_line_has_none_and_encoding_stays_pure(self):
        assert "id" not in json.loads(encode_line(make()))
        assert encode_line(make()) == encode_line(make())
        assert line_id(encode_line(make())) == ""

    def test_the_slow_path_keeps_the_id(self):
        line = encode_line(make(message=None), "01HF7YAVEW0NTH54D9GGNPF71N")
        assert json.loads(line)["id"] == "01HF7YAVEW0NTH54D9GGNPF71N"

    def test_the_pipeline_gives_every_line_a_distinct_id(self):
        lines: list[bytes] = []

        class Files:
            def write_lines(self, batch):
                lines.extend(batch)

            def flush(self):
                pass

        pipeline = Pipeline(Files(), ConsoleSink("off"), Stats())
        pipeline.submit([make(), make(), make(received=1700000009.0)])
        ids = [json.loads(line)["id"] for line in lines]
        assert len(set(ids)) == 3
        assert ids == sorted(ids)


class TestHost:
    """A collected record's ``host``: before ``id`` when set, absent (line unchanged) when not."""

    def test_no_host_leaves_the_line_as_it_was(self):
        plain = encode_line(make(), "01HF7YAVEW0NTH54D9GGNPF71N")
        assert b'"host"' not in plain
        assert plain == encode_line(make(host=""), "01HF7YAVEW0NTH54D9GGNPF71N")

    def test_host_comes_just_before_the_id(self):
        check_line(encode_line(make(host="web-1")))
        line = encode_line(make(host="web-1"), "01HF7YAVEW0NTH54D9GGNPF71N")
        obj = json.loads(line)
        assert list(obj)[-2:] == ["host", "id"]
        assert obj["host"] == "web-1"
        assert line_id(line) == "01HF7YAVEW0NTH54D9GGNPF71N"  # still found at the end

    def test_a_host_line_is_the_plain_line_with_the_key_added(self):
        plain = encode_line(make(), "01HF7YAVEW0NTH54D9GGNPF71N")
        hosted = encode_line(make(host="db"), "01HF7YAVEW0NTH54D9GGNPF71N")
        assert hosted == plain.replace(b',"id":', b',"host":"db","id":')

    def test_a_host_that_is_not_text_goes_the_safe_way(self):
        obj = check_line(encode_line(make(host=42)))
        assert obj["host"] == "42"

    def test_stored_line_reads_back_with_its_host(self):
        line = encode_line(make(host="web-1"), "01HF7YAVEW0NTH54D9GGNPF71N")
        record = record_from_json(json.loads(line))
        assert record.host == "web-1"
        assert encode_line(record) == line
