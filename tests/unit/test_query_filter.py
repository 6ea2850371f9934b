"""The filters of netlog tail (netlog.query.filter) on parsed lines, and the ranks they compare."""

import json
import re

import pytest
from recordkit import T0, rec

from netlog.levels import level_rank
from netlog.query.filter import Filter, Selector, parse_since
from netlog.sinks.encode import encode_line


class TestLevelsAndTimes:
    """The ranks --level compares and the times --since takes."""

    @pytest.mark.parametrize(
        ("level", "rank"),
        [
            ("debug", 10),
            ("INFO", 20),
            ("warn", 30),
            ("warning", 30),
            ("error", 40),
            ("fatal", 50),
            ("critical", 50),
            ("level 25", 25),
            ("notice", 25),
            ("trace", 5),
            ("verbose", 20),
            ("", 20),
        ],
    )
    def test_rank(self, level, rank):
        assert level_rank(level) == rank

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("30s", 1000.0 - 30),
            ("10m", 1000.0 - 600),
            ("1h30m", 1000.0 - 5400),
            ("0.5h", 1000.0 - 1800),
            ("1d", 1000.0 - 86400),
            ("2023-11-14T22:13:20Z", T0),
            ("2023-11-14T23:13:20+01:00", T0),
            ("2023-11-14T22:13:20", T0),
        ],
    )
    def test_since(self, text, expected):
        assert parse_since(text, 1000.0) == expected

    @pytest.mark.parametrize("text", ["soon", "10", "10x", "-5m", ""])
    def test_bad_since(self, text):
        with pytest.raises(ValueError):
            parse_since(text, 1000.0)


class TestFilter:
    """Filter.matches on parsed lines."""

    def obj(self, **changes):
        return json.loads(encode_line(rec(1)._replace(**changes)))

    def test_logger_prefix_is_dotted(self):
        keep = Filter(loggers=("app",))
        assert keep.matches(self.obj(logger="app"))
        assert keep.matches(self.obj(logger="app.db"))
        assert not keep.matches(self.obj(logger="apple"))
        assert not keep.matches(self.obj(logger="other.app"))

    def test_field_values_compare_as_json_text(self):
        obj = self.obj(
            fields={"n": 5, "ok": True, "none": None, "user": "ada", "deep": {"a": {"b": 1}}}
        )
        assert Filter(fields=(("n", "5"),)).matches(obj)
        assert Filter(fields=(("ok", "true"),)).matches(obj)
        assert Filter(fields=(("none", "null"),)).matches(obj)
        assert Filter(fields=(("user", "ada"), ("n", "5"))).matches(obj)
        assert Filter(fields=(("deep.a.b", "1"),)).matches(obj)
        assert Filter(fields=(("format", "json"),)).matches(obj)  # a record key
        assert not Filter(fields=(("user", "bob"),)).matches(obj)
        assert not Filter(fields=(("missing", "null"),)).matches(obj)
        assert not Filter(fields=(("user", "ada"), ("n", "6"))).matches(obj)

    def test_regex(self):
        keep = Filter(regex=re.compile(r"^mess.*\d$", re.IGNORECASE))
        assert keep.matches(self.obj(message="Message 7"))
        assert not keep.matches(self.obj(message="a message 7"))


class TestSelector:
    """Selector.parse: JSON objects that pass, bad lines counted, blank lines not."""

    def test_parse_keeps_passing_objects_and_counts_bad_lines(self):
        lines = Selector(Filter(loggers=("app",)))
        kept = lines.parse(encode_line(rec(1)).rstrip(b"\n"))
        assert kept is not None
        assert kept["fields"] == {"i": 1}
        assert lines.parse(encode_line(rec(2, logger="other"))) is None
        assert lines.parse(b"") is None
        assert lines.parse(b"  \r") is None
        assert lines.bad == 0
        assert lines.parse(b"not json") is None
        assert lines.parse(b"[1, 2]") is None
        assert lines.parse(b"\xff\xfe") is None
        assert lines.bad == 3


class TestGrepSearchesWhatAWordSearches:
    """--grep finds a word where the query language's bare word does: message, traceback, values."""

    @staticmethod
    def obj(**changes):
        base = {
            "message": "all fine",
            "fields": {"user": "ada", "deep": {"k": "Needle"}},
            "level": "info",
        }
        base.update(changes)
        return base

    def test_message_traceback_and_field_values(self):
        keep = Filter(grep="needle")
        assert keep.matches(self.obj(message="a NEEDLE here"))
        assert keep.matches(self.obj(exc="Traceback...\nNeedleError"))
        assert keep.matches(self.obj())  # nested value, as its JSON
        assert not keep.matches(self.obj(fields={"needle": "a key is not a value"}))

    def test_regex_anchors_at_each_text(self):
        keep = Filter(regex=re.compile(r"^ada$"))
        assert keep.matches(self.obj())
        assert not Filter(regex=re.compile(r"^fine")).matches(self.obj())
