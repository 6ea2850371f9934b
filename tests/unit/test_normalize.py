import datetime as dt
import logging
import logging.handlers
import math
import pickle
import sys

import orjson
import pytest
import structlog

from netlog.decode import normalize
from netlog.decode.normalize import (
    MAX_DEPTH,
    Budget,
    from_json,
    from_logrecord,
    from_text,
    json_safe,
    parse_timestamp,
)
from netlog.decode.unpickle import unpickle_dict
from netlog.errors import DecodeError

RECEIVED = 1_700_000_000.25


def _fail():
    raise ValueError("boom")


def logrecord(**extra):
    """What the sink gets from SocketHandler for a record made like logging does."""
    try:
        _fail()
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "app.db", logging.ERROR, "/srv/app/db.py", 42, "failed for %s", ("ü",), exc_info, "query"
    )
    record.__dict__.update(extra)
    handler = logging.handlers.SocketHandler("x", 0)
    handler.format(record)  # what emit() does first: fills exc_text
    return record, unpickle_dict(handler.makePickle(record)[4:])


def structlog_line(**event):
    return structlog.processors.JSONRenderer()(None, "info", event)


class TestFromLogRecord:
    """A SocketHandler dict becomes a compact record."""

    def test_standard_attributes(self):
        record, data = logrecord()
        result = from_logrecord(data, "1.2.3.4:5", RECEIVED, Budget(1 << 22))
        assert result.ts == record.created
        assert result.received == RECEIVED
        assert result.level == "error"
        assert result.logger == "app.db"
        assert result.message == "failed for ü"
        assert result.exc is not None
        assert result.exc.startswith("Traceback")
        assert "ValueError: boom" in result.exc
        assert result.peer == "1.2.3.4:5"
        assert result.format == "pickle"
        assert result.fields == {
            "_src": {
                "file": "/srv/app/db.py",
                "line": 42,
                "func": "query",
                "process": record.process,
                "thread": record.threadName,
            }
        }

    def test_extra_fields_are_kept_json_safe(self):
        _, data = logrecord(
            user_id=7,
            when=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            tags={"b", "a"},
            raw=b"\xff",
            logger_obj=logging.getLogger("app"),
            nested={"k": [1, (2, 3)]},
        )
        fields = from_logrecord(data, "p", RECEIVED, Budget(1 << 22)).fields
        assert fields["user_id"] == 7
        assert fields["when"] == "2024-01-02T03:04:05+00:00"
        assert fields["tags"] == ["a", "b"]
        assert fields["raw"] == "\\xff"
        assert fields["logger_obj"] == "<logging.getLogger('app')>"
        assert fields["nested"] == {"k": [1, [2, 3]]}
        orjson.dumps(fields)

    def test_stack_info_is_appended(self):
        _, data = logrecord(stack_info="Stack (most recent call last):\n  here")
        result = from_logrecord(data, "p", RECEIVED, Budget(1 << 22))
        assert result.exc is not None
        assert result.exc.endswith("Stack (most recent call last):\n  here")

    def test_fallbacks(self):
        result = from_logrecord({"levelno": 30, "msg": 12}, "p", RECEIVED, Budget(1 << 22))
        assert result.ts == RECEIVED
        assert result.level == "warning"
        assert result.logger == ""
        assert result.message == "12"
        assert result.exc is None
        result = from_logrecord({"created": "soon", "levelno": 25}, "p", 1.0, Budget(1 << 22))
        assert result.ts == 1.0
        assert result.level == "level 25"
        assert result.message == ""
        assert from_logrecord({"created": 10**400}, "p", 1.0, Budget(1 << 22)).level == "info"

    def test_memo_amplification_is_rejected(self):
        big = "x" * 10_000
        data = pickle.dumps({"msg": "hi", "big": [big] * 100_000}, 1)
        assert len(data) < 250_000
        with pytest.raises(DecodeError, match="expands") as info:
            from_logrecord(unpickle_dict(data), "p", RECEIVED, Budget(4 << 20))
        assert info.value.reason == "bad_frame"

    def test_non_string_message(self):
        result = from_logrecord({"msg": {"a": [1]}}, "p", RECEIVED, Budget(1 << 22))
        assert result.message == '{"a":[1]}'

    def test_lone_surrogates_are_kept(self):
        result = from_logrecord({"msg": "a\udc80b"}, "p", RECEIVED, Budget(1 << 22))
        assert result.message == "a\udc80b"


class TestJsonSafe:
    """Untrusted structures become bounded JSON values."""

    def test_depth_is_capped(self):
        value: list = []
        for _ in range(100_000):
            value = [value]
        result = json_safe(value, Budget(1 << 30))
        for _ in range(MAX_DEPTH):
            result = result[0]
        assert result == "<nested too deep>"

    def test_cycles_terminate(self):
        value: list = []
        value.append(value)
        result = json_safe(value, Budget(1 << 30))
        # The list is converted once; where it recurs inside itself, a marker.
        assert result == ["<cycle>"]

    def test_scalars(self):
        budget = Budget(1 << 20)
        assert json_safe(10**30, budget) == str(10**30)
        assert json_safe(10**5000, budget) == "<int of 16610 bits>"
        assert json_safe(math.nan, budget) == "nan"
        assert json_safe(-math.inf, budget) == "-inf"
        assert json_safe(dt.timedelta(seconds=90), budget) == "0:01:30"
        assert json_safe(dt.UTC, budget) == "UTC"
        assert json_safe({1: "a", None: "b", (1, 2): "c", dt.date(2024, 1, 2): "d"}, budget) == {
            "1": "a",
            "null": "b",
            "(1, 2)": "c",
            "2024-01-02": "d",
        }
        assert json_safe({"b", 1}, budget) in ([1, "b"], ["b", 1])

    def test_budget_counts_characters(self):
        with pytest.raises(DecodeError, match="expands past 100"):
            json_safe(["x" * 60, "y" * 60], Budget(100))


class TestParseTimestamp:
    """ISO 8601 strings and epoch numbers are accepted."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("2024-01-01T00:00:00Z", 1704067200.0),
            ("2024-01-01T00:00:00.5+00:00", 1704067200.5),
            ("2024-01-01T02:00:00+02:00", 1704067200.0),
            ("2024-01-01T00:00:00", 1704067200.0),
            ("2024-01-01 00:00:00,250", 1704067200.25),
            (1704067200, 1704067200.0),
            (1704067200.5, 1704067200.5),
            (1704067200500, 1704067200.5),
            ("1704067200", 1704067200.0),
        ],
    )
    def test_accepted(self, value, expected):
        assert parse_timestamp(value) == pytest.approx(expected)

    @pytest.mark.parametrize("value", ["yesterday", "", None, True, [1], math.inf, "nan"])
    def test_rejected(self, value):
        assert parse_timestamp(value) is None


class TestFromJson:
    """JSON objects from structlog and friends."""

    def test_structlog_json_renderer(self):
        line = structlog_line(
            event="user logged in",
            timestamp="2024-01-01T00:00:00.123456Z",
            level="warning",
            logger="auth",
            user="ü",
            exception="Traceback ...",
        )
        result = from_json(orjson.loads(line), "p", RECEIVED)
        assert result.message == "user logged in"
        assert result.ts == pytest.approx(1704067200.123456)
        assert result.level == "warning"
        assert result.logger == "auth"
        assert result.exc == "Traceback ..."
        assert result.fields == {"user": "ü"}
        assert result.format == "json"

    def test_other_spellings(self):
        obj = {"message": "m", "@timestamp": 1704067200, "severity": "ERROR", "name": "n"}
        result = from_json(obj, "p", RECEIVED)
        assert (result.message, result.ts, result.level, result.logger) == (
            "m",
            1704067200.0,
            "error",
            "n",
        )
        assert result.fields == {}

    def test_first_key_wins_others_stay(self):
        result = from_json({"event": "e", "message": "m", "msg": "x"}, "p", RECEIVED)
        assert result.message == "e"
        assert result.fields == {"message": "m", "msg": "x"}

    @pytest.mark.parametrize(
        ("keys", "attr"),
        [
            (("event", "message", "msg"), "message"),
            (("level", "levelname", "severity"), "level"),
            (("logger", "name", "logger_name"), "logger"),
        ],
    )
    def test_each_spelling_in_order_of_precedence(self, keys, attr):
        for start in range(len(keys)):
            obj = {key: f"{key}-value" for key in keys[start:]}
            result = from_json(obj, "p", RECEIVED)
            assert getattr(result, attr) == f"{keys[start]}-value".lower()
            assert result.fields == {key: f"{key}-value" for key in keys[start + 1 :]}

    def test_unparsable_timestamp_is_kept(self):
        result = from_json({"event": "e", "timestamp": "tea time"}, "p", RECEIVED)
        assert result.ts == RECEIVED
        assert result.fields == {"timestamp": "tea time"}

    def test_unparsable_timestamp_keeps_its_place(self):
        obj = {"a": 1, "time": "tea time", "event": "e", "b": 2, "level": "warn", "c": 3}
        result = from_json(obj, "p", RECEIVED)
        assert list(result.fields.items()) == [("a", 1), ("time", "tea time"), ("b", 2), ("c", 3)]
        assert (result.message, result.level) == ("e", "warn")

    def test_defaults_and_non_strings(self):
        result = from_json({"event": {"a": 1}, "level": 40, "logger": None}, "p", RECEIVED)
        assert result.message == '{"a":1}'
        assert result.level == "error"
        assert result.logger == ""
        empty = from_json({}, "p", RECEIVED)
        assert (empty.message, empty.level, empty.logger, empty.exc) == ("", "info", "", None)

    def test_non_string_exception_stays_in_fields(self):
        result = from_json({"event": "e", "exception": [{"frames": []}]}, "p", RECEIVED)
        assert result.exc is None
        assert result.fields == {"exception": [{"frames": []}]}

    def test_deep_nesting_is_capped(self):
        obj = orjson.loads("[" * 500 + "]" * 500)
        result = from_json({"event": "e", "deep": obj}, "p", RECEIVED, deep=True)
        assert result.message == "e"
        assert list(result.fields) == ["deep"]
        # The fields object is json_safe's level 0, so "deep" keeps
        # MAX_DEPTH - 1 of its 500 lists and the marker stands for the rest.
        value = result.fields["deep"]
        for _ in range(MAX_DEPTH - 1):
            assert type(value) is list
            assert len(value) == 1
            value = value[0]
        assert value == "<nested too deep>"
        # ... which a JSON encoder writes (orjson refuses more than 254 levels).
        assert orjson.loads(orjson.dumps(result.fields)) == result.fields


class TestFromText:
    """A plain line is the message."""

    def test_text(self):
        assert from_text("hello", "p", RECEIVED) == (
            RECEIVED,
            RECEIVED,
            "info",
            "",
            "hello",
            {},
            None,
            "p",
            "text",
            "",  # the id: the pipeline gives it
            "",  # the host: only collected records name one
        )


def _dag(levels: int) -> list:
    node: list = ["leaf"]
    for _ in range(levels):
        node = [node, node]
    return node


class TestSharedObjects:
    """Issue 15 item 2: an object referenced many times is converted once per frame."""

    def count_walk(self, monkeypatch, value, budget):
        """json_safe(value) and the number of calls it made (nodes visited)."""
        calls = 0
        real = normalize.json_safe

        def counting(*args, **kwargs):
            nonlocal calls
            calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(normalize, "json_safe", counting)
        try:
            return counting(value, budget), calls
        except DecodeError as exc:
            return exc, calls

    def test_self_twice_is_one_walk(self, monkeypatch):
        twice: list = []
        twice.extend([twice, twice])
        result, calls = self.count_walk(monkeypatch, twice, Budget(1 << 22))
        assert result == ["<cycle>", "<cycle>"]
        # The bound: one call per object plus one per reference, here 1 + 2.
        # Before, the walk went 64 levels deep in both branches (2**64 nodes)
        # until the 4 Mi budget ran out: ~2 s of CPU for a 42-byte frame.
        assert calls == 3

    def test_a_dag_is_refused_after_one_walk(self, monkeypatch):
        result, calls = self.count_walk(monkeypatch, _dag(64), Budget(1 << 22))
        assert isinstance(result, DecodeError)
        assert result.reason == "bad_frame"
        assert calls <= 2 * 64 + 2

    def test_a_small_dag_is_kept_whole(self):
        result = json_safe(_dag(4), Budget(1 << 20))
        assert orjson.loads(orjson.dumps(result)) == _dag(4)

    def test_a_shared_object_is_charged_each_time(self):
        shared = ["x" * 100]
        with pytest.raises(DecodeError, match="expands past"):
            json_safe([shared] * 100, Budget(5000))
        assert len(json_safe([shared] * 10, Budget(5000))) == 10

    def test_reuse_deeper_than_max_depth_is_marked(self):
        # A shared list first met near the top, then again near the bottom:
        # its result would nest past what JSON encoders write.
        shared = _chain(MAX_DEPTH - 4)
        value = {"top": shared, "bottom": _chain(MAX_DEPTH - 8, shared)}
        result = json_safe(value, Budget(1 << 20))
        assert orjson.loads(orjson.dumps(result)) == result
        assert "<nested too deep>" in orjson.dumps(result["bottom"]).decode()

    def test_big_ints_shared_many_times(self, monkeypatch):
        big = 10**4000
        result, calls = self.count_walk(monkeypatch, [big] * 400_000, Budget(1 << 22))
        assert isinstance(result, DecodeError)
        assert calls < 400_000
        assert json_safe(2**998, Budget(1 << 20)) == str(2**998)
        assert json_safe(2**1000, Budget(1 << 20)) == "<int of 1001 bits>"

    def test_sets_of_structures_are_not_sorted(self):
        # Comparing shared structures walks them (exponentially for a DAG).
        result = json_safe({(1, 2), (0, 1)}, Budget(1 << 20))
        assert sorted(result) == [[0, 1], [1, 2]]
        assert json_safe({"b", "a"}, Budget(1 << 20)) == ["a", "b"]


def _chain(levels: int, end=None) -> list:
    node: list = [end]
    for _ in range(levels):
        node = [node]
    return node
