"""netlog.decode.formats: one frame becomes one record, the same for every transport."""

import collections
import pickle

import pytest

from netlog.decode.formats import (
    DEEP_JSON,
    decode_text,
    is_deep,
    json_or_text,
    json_record,
    pickle_record,
    syslog_record,
)
from netlog.decode.unpickle import unpickle_dict
from netlog.errors import DecodeError

PEER = "127.0.0.1:1"
NOW = 1_700_000_000.0


def decide(line, fmt=None):
    notes = collections.Counter()
    return json_or_text(line, PEER, NOW, notes, fmt), dict(notes)


class TestJsonOrText:
    """The one decision between a JSON object and a text line."""

    def test_json_object(self):
        record, notes = decide(b'  {"event": "hi", "user": "ada"}')
        assert (record.format, record.message, record.fields) == ("json", "hi", {"user": "ada"})
        assert notes == {}

    def test_text(self):
        record, notes = decide(b"hello [1]")
        assert (record.format, record.message) == ("text", "hello [1]")
        assert notes == {}

    def test_json_that_does_not_parse_is_noted_text(self):
        record, notes = decide(b"{nope")
        assert (record.format, record.message) == ("text", "{nope")
        assert notes == {"json_as_text": 1}

    def test_a_json_array_is_text(self):
        record, notes = decide(b"[1, 2]")
        assert (record.format, record.message) == ("text", "[1, 2]")
        assert notes == {}

    def test_invalid_utf8_is_noted(self):
        record, notes = decide(b"caf\xe9")
        assert record.message == "caf\\xe9"
        assert notes == {"invalid_utf8": 1}

    def test_invalid_utf8_json_is_both_notes(self):
        record, notes = decide(b'{"event": "caf\xe9"}')
        assert record.message == '{"event": "caf\\xe9"}'
        assert notes == {"json_as_text": 1, "invalid_utf8": 1}

    @pytest.mark.parametrize("line", [b"", b" ", b"\t \x0b"])
    def test_blank_is_no_record(self, line):
        assert decide(line) == (None, {})

    def test_the_label_is_the_callers(self):
        assert decide(b'{"event": "x"}', "http")[0].format == "http"
        assert decide(b"x", "http")[0].format == "http"

    def test_deep_json_is_made_writable(self):
        line = b'{"event": "d", "x": ' + b"[" * 300 + b"]" * 300 + b"}"
        assert is_deep(line)
        record, _ = decide(line)
        depth, value = 0, record.fields["x"]
        while type(value) is list:
            depth, value = depth + 1, value[0]
        assert (depth, value) == (63, "<nested too deep>")

    def test_shallow_json_is_left_as_parsed(self):
        line = b'{"event": "d", "x": ' + b"[" * 10 + b"]" * 10 + b"}"
        assert not is_deep(line)
        assert not is_deep(b"[" * DEEP_JSON)  # as many brackets as bytes: at most DEEP_JSON
        assert decide(line)[0].fields["x"] == [[[[[[[[[[]]]]]]]]]]


class TestOtherFormats:
    """Text, JSON objects, pickles and syslog, each with the caller's label."""

    def test_decode_text(self):
        notes = collections.Counter()
        assert decode_text(b"ok", notes) == "ok"
        assert decode_text(b"\xff", notes) == "\\xff"
        assert notes == {"invalid_utf8": 1}

    def test_json_record(self):
        record = json_record({"event": "e"}, b'{"event":"e"}', PEER, NOW, "http")
        assert (record.message, record.format) == ("e", "http")

    def test_pickle_record(self):
        frame = pickle.dumps({"msg": "m", "levelname": "INFO", "name": "app"})
        record = pickle_record(unpickle_dict, frame, PEER, NOW, 1 << 20)
        assert (record.message, record.logger, record.format) == ("m", "app", "pickle")
        record = pickle_record(unpickle_dict, frame, PEER, NOW, 1 << 20, fmt="http")
        assert record.format == "http"

    def test_pickle_record_over_its_budget(self):
        frame = pickle.dumps({"msg": "m", "x": ["y" * 100] * 100})
        with pytest.raises(DecodeError) as info:
            pickle_record(unpickle_dict, frame, PEER, NOW, 1000)
        assert info.value.reason == "bad_frame"

    def test_syslog_record(self):
        record = syslog_record(b"<11>1 - host app - - - boom", PEER, NOW)
        assert record is not None
        assert (record.format, record.level, record.logger, record.message) == (
            "syslog",
            "error",
            "app",
            "boom",
        )
        assert syslog_record(b"<html>", PEER, NOW) is None
