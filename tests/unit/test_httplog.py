import collections
import logging
import logging.handlers
import sys
import urllib.parse

import pytest

from netlog.decode.http import (
    FORM,
    decode_body,
    decode_form,
    format_logrecord_message,
    media_type,
)
from netlog.errors import DecodeError

PEER = "127.0.0.1:4000"
NOW = 1_800_000_000.0


def handler_body(msg, *args, level=logging.INFO, name="app.web", exc_info=None, **extra):
    """Exactly what logging.handlers.HTTPHandler sends for one record."""
    record = logging.LogRecord(name, level, "/srv/app.py", 42, msg, args, exc_info, func="view")
    record.__dict__.update(extra)
    handler = logging.handlers.HTTPHandler("127.0.0.1:1", "/log")
    return urllib.parse.urlencode(handler.mapLogRecord(record)).encode()


class TestHTTPHandlerForms:
    """The form HTTPHandler posts becomes the same record a SocketHandler gives."""

    def test_plain_record(self):
        record = decode_form(handler_body("hello %s, %d", "ada", 3), PEER, NOW)
        assert record.message == "hello ada, 3"
        assert record.level == "info"
        assert record.logger == "app.web"
        assert record.format == "http"
        assert record.peer == PEER
        assert abs(record.ts - NOW) > 1  # the sender's created, not the receive time
        assert record.received == NOW
        assert record.fields["_src"] == {
            "file": "/srv/app.py",
            "line": 42,
            "func": "view",
            "process": record.fields["_src"]["process"],
            "thread": "MainThread",
        }
        assert "args" not in record.fields
        assert record.exc is None

    def test_extras_become_fields(self):
        record = decode_form(handler_body("x", user="ada", n=5), PEER, NOW)
        assert record.fields["user"] == "ada"
        assert record.fields["n"] == "5"  # a form carries only text

    def test_dict_argument(self):
        record = decode_form(
            handler_body("%(user)s did %(what)s", {"user": "ada", "what": "x"}), PEER, NOW
        )
        assert record.message == "ada did x"

    def test_unparseable_args_are_kept(self):
        record = decode_form(handler_body("obj %s", object()), PEER, NOW)
        assert record.message == "obj %s"
        assert record.fields["args"].startswith("(<object object at")

    def test_no_placeholder_keeps_args(self):
        record = decode_form(handler_body("no placeholder", 1, 2), PEER, NOW)
        assert record.message == "no placeholder"
        assert record.fields["args"] == "(1, 2)"

    def test_levels(self):
        assert decode_form(handler_body("w", level=logging.WARNING), PEER, NOW).level == "warning"
        assert decode_form(handler_body("c", level=logging.CRITICAL), PEER, NOW).level == "critical"

    def test_exception_without_formatter(self):
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            exc_info = sys.exc_info()
        record = decode_form(
            handler_body("boom", level=logging.ERROR, exc_info=exc_info), PEER, NOW
        )
        assert record.exc == "ZeroDivisionError('division by zero')"
        assert "exc_info" not in record.fields

    def test_formatted_record_keeps_message_and_traceback(self):
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            exc_info = sys.exc_info()
        record = logging.LogRecord("app", logging.ERROR, "a.py", 1, "n=%d", (7,), exc_info)
        logging.Formatter().format(record)  # another handler formatted it first
        body = urllib.parse.urlencode(record.__dict__).encode()
        decoded = decode_form(body, PEER, NOW)
        assert decoded.message == "n=7"
        assert decoded.exc.startswith("Traceback (most recent call last):")
        assert "ZeroDivisionError: division by zero" in decoded.exc

    def test_plain_form_is_read_like_json(self):
        record = decode_form(b"msg=hi+there&level=WARNING&logger=cron&job=backup", PEER, NOW)
        assert (record.message, record.level, record.logger) == ("hi there", "warning", "cron")
        assert record.fields == {"job": "backup"}
        assert record.format == "http"

    def test_non_ascii_and_controls_survive(self):
        record = decode_form(handler_body("ünï %s", "✓\x1b[31m"), PEER, NOW)
        assert record.message == "ünï ✓\x1b[31m"  # escaping is the sinks' job

    @pytest.mark.parametrize("body", [b"", b"&&&", b"   "])
    def test_empty_form(self, body):
        with pytest.raises(DecodeError):
            decode_form(body, PEER, NOW)

    def test_too_many_fields(self):
        body = "&".join(f"k{i}=v" for i in range(20_000)).encode()
        with pytest.raises(DecodeError) as info:
            decode_form(body, PEER, NOW)
        assert info.value.reason == "bad_form"


class TestFormatMessage:
    """msg % literal_eval(args), only when it is safe."""

    @pytest.mark.parametrize(
        ("msg", "args", "expected"),
        [
            ("a %s b %d", "('x', 5)", ("a x b 5", True)),
            ("a %s", "('x',)", ("a x", True)),
            ("%(k)s", "{'k': 1}", ("1", True)),
            ("plain", "()", ("plain", True)),
            ("plain", None, ("plain", True)),
            ("100%", "(1,)", ("100%", False)),
            ("%s %s", "('one',)", ("%s %s", False)),
            ("%s", "(__import__('os').system('true'),)", ("%s", False)),
            ("%999999999d", "(1,)", ("%999999999d", False)),
            ("%*d", "(999999999, 1)", ("%*d", False)),
            ("%.99999999f", "(1.0,)", ("%.99999999f", False)),
            ("%s", "(" * 5000 + ")" * 5000, ("%s", False)),
            ("%s", "x" * 100_000, ("%s", False)),
        ],
    )
    def test_cases(self, msg, args, expected):
        assert format_logrecord_message(msg, args) == expected


class TestBodies:
    """JSON, JSON lines and text bodies."""

    def test_json_object(self):
        records = decode_body(
            b'{"event": "hi", "level": "error", "user": "ada"}', "application/json", PEER, NOW
        )
        assert len(records) == 1
        assert records[0].message == "hi"
        assert records[0].level == "error"
        assert records[0].fields == {"user": "ada"}
        assert records[0].format == "http"

    def test_json_array(self):
        records = decode_body(
            b'[{"event": "a"}, {"event": "b"}]', "application/json; charset=utf-8", PEER, NOW
        )
        assert [r.message for r in records] == ["a", "b"]

    def test_json_lines(self):
        body = b'{"event": "a"}\n\n{"event": "b", "timestamp": "2024-01-01T00:00:00Z"}\n'
        records = decode_body(body, "application/x-ndjson", PEER, NOW)
        assert [r.message for r in records] == ["a", "b"]
        assert records[1].ts == 1704067200.0
        assert {r.format for r in records} == {"http"}

    def test_json_lines_sent_as_json(self):
        records = decode_body(b'{"event": "a"}\n{"event": "b"}\n', "application/json", PEER, NOW)
        assert [r.message for r in records] == ["a", "b"]

    def test_text(self):
        records = decode_body(b"one\r\n\ntwo\n", "text/plain", PEER, NOW)
        assert [r.message for r in records] == ["one", "two"]
        assert records[0].format == "http"

    def test_text_is_text_even_when_it_looks_like_json(self):
        records = decode_body(b'{"event": "x"}\n', "text/plain", PEER, NOW)
        assert [(r.message, r.fields) for r in records] == [('{"event": "x"}', {})]

    def test_text_counts_invalid_utf8(self):
        notes = collections.Counter()
        # An em space is blank text: its line is no record, as before.
        body = b"caf\xe9\r\n" + "\u2003".encode() + b"\nok\n\xff\xfe\n"
        records = decode_body(body, "text/plain", PEER, NOW, notes=notes)
        assert [r.message for r in records] == ["caf\\xe9", "ok", "\\xff\\xfe"]
        assert {r.format for r in records} == {"http"}
        assert notes == {"invalid_utf8": 2}

    @pytest.mark.parametrize(
        ("body", "content_type", "reason", "words"),
        [
            (b"", "application/json", "empty", "empty"),
            (b'{"event":', "application/json", "bad_json", "not JSON"),
            (b"[1, 2]", "application/json", "bad_json", "item 0"),
            (b"[]", "application/json", "empty", "empty"),
            (b"42", "application/json", "bad_json", "expected a JSON object"),
            (b'{"a": 1}\nnope\n', "application/x-ndjson", "bad_json", "line 2"),
            (b'{"a": 1}\n[1]\n', "application/x-ndjson", "bad_json", "line 2"),
            (b"<xml/>", "application/xml", "unsupported_media_type", "application/xml"),
        ],
    )
    def test_bad_bodies(self, body, content_type, reason, words):
        with pytest.raises(DecodeError) as info:
            decode_body(body, content_type, PEER, NOW)
        assert info.value.reason == reason
        assert words in str(info.value)
        assert "\n" not in str(info.value)

    @pytest.mark.parametrize(
        ("content_type", "body", "expected"),
        [
            (None, b' {"a": 1}', "application/json"),
            ("", b"[1]", "application/json"),
            ("application/octet-stream", b"msg=x", FORM),
            (None, b"msg=x", FORM),
            ("Application/JSON; charset=UTF-8", b"", "application/json"),
        ],
    )
    def test_media_type(self, content_type, body, expected):
        assert media_type(content_type, body) == expected


class TestFormatAmplification:
    """Issue 15 item 3: each conversion's width is bounded, and so is their sum."""

    def test_many_wide_conversions_are_not_formatted(self):
        msg = "%(a)1000s" * 115_000
        message, used = format_logrecord_message(msg, "{'a': 1}")
        assert (message, used) == (msg, False)

    def test_the_bound_is_the_max_line(self):
        msg = "%(a)1000s" * 10
        assert format_logrecord_message(msg, "{'a': 1}", 100_000)[1] is True
        assert format_logrecord_message(msg, "{'a': 1}", 10_000)[1] is False

    def test_a_width_of_5000_digits_is_refused_not_raised(self):
        # int() of the width raised ValueError (the 4,300-digit limit).
        msg = "%" + "9" * 5000 + "s"
        assert format_logrecord_message(msg, "(1,)") == (msg, False)

    def test_handler_form_line_stays_under_max_line(self):
        body = handler_body("%(a)1000s" * 115_000, {"a": 1})
        notes = collections.Counter()
        [record] = decode_body(body, FORM, PEER, NOW, max_line=100_000, notes=notes)
        assert len(record.message) <= 100_000
        assert record.message.endswith("<message truncated: 1035000 characters>")
        assert record.fields["args"] == "{'a': 1}"
        assert notes["message_truncated"] == 1

    def test_json_body_message_is_capped_too(self):
        body = b'{"event": "' + b"x" * 5000 + b'"}'
        [record] = decode_body(body, "application/json", PEER, NOW, max_line=1000)
        assert len(record.message) <= 1000
        assert "message truncated" in record.message

    def test_short_messages_are_untouched(self):
        [record] = decode_body(handler_body("hi %s", "x"), FORM, PEER, NOW, max_line=1000)
        assert record.message == "hi x"
