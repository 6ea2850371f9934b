import io
import json

import pytest

from netlog.record import Record
from netlog.sinks.console import ConsoleSink
from netlog.sinks.encode import encode_line

HOSTILE = "a\nb\r\x1b]0;pwned\x07"


def rec(**changes):
    base = Record(
        ts=1700000000.123456,
        received=1700000000.5,
        level="warning",
        logger="app.db",
        message="slow query",
        fields={"user_id": 42, "table": "items"},
        exc=None,
        peer="127.0.0.1:53012",
        format="pickle",
    )
    return base._replace(**changes)


def render(records, mode="pretty", **kwargs):
    stream = io.StringIO()
    sink = ConsoleSink(mode, stream, **kwargs)
    sink.write(records)
    sink.flush()
    return stream.getvalue()


def assert_inert(text):
    """No raw character that could forge a line or drive the terminal."""
    for char in "\r\x1b\x07\x00\x7f\x85\x9b\u2028\u2029\u202e":
        assert char not in text, repr(char)


class TestPretty:
    """Pretty mode shows the record on one line, with sender text made inert."""

    def test_contains_everything(self):
        text = render([rec()], colors=False)
        assert text.count("\n") == 1
        for part in (
            "2023-11-14T22:13:20.123456Z",
            "warning",
            "slow query",
            "[app.db]",
            "user_id=42",
            "table=items",
            "127.0.0.1:53012/pickle",
        ):
            assert part in text

    def test_hostile_message_is_one_line(self):
        text = render([rec(message=HOSTILE)], colors=False)
        assert text.count("\n") == 1
        assert text.endswith("\n")
        assert_inert(text)
        assert "a\\nb\\r\\x1b]0;pwned\\x07" in text

    def test_hostile_everywhere(self):
        text = render(
            [
                rec(
                    level=HOSTILE,
                    logger=HOSTILE,
                    message="\u2028\x85\ud800",
                    fields={HOSTILE: HOSTILE, "n": [HOSTILE], 1: b"\x1b"},
                    peer=HOSTILE,
                    format=HOSTILE,
                )
            ],
            colors=False,
        )
        assert text.count("\n") == 1
        assert_inert(text)
        text.encode("utf-8")

    def test_exc_lines_are_indented_and_escaped(self):
        exc = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: \x1b[2J\r\n'
        text = render([rec(exc=exc)], colors=False)
        first, *rest = text.rstrip("\n").split("\n")
        assert "slow query" in first
        assert rest == [
            "    Traceback (most recent call last):",
            '      File "x.py", line 1',
            "    ValueError: \\x1b[2J\\r",
        ]
        assert_inert(text)

    def test_forged_record_in_exc_stays_indented(self):
        forged = "boom\n2023-11-14T22:13:20.000000Z [info     ] forged"
        text = render([rec(exc=forged)], colors=False)
        assert all(line.startswith("    ") for line in text.splitlines()[1:])

    def test_no_colours_unless_asked(self):
        assert "\x1b" not in render([rec()], colors=False)
        assert "\x1b" not in render([rec()])  # a StringIO is not a terminal

    def test_colours_when_asked(self):
        text = render([rec(message=HOSTILE)], colors=True)
        assert "\x1b[" in text
        assert "\x1b]" not in text  # the sender's OSC is escaped, only SGR codes remain
        assert "\x07" not in text
        assert text.count("\n") == 1

    def test_reserved_field_names_are_prefixed(self):
        text = render(
            [rec(fields={"event": "x", "timestamp": "y", "exc_info": True})], colors=False
        )
        assert "fields.event=x" in text
        assert "fields.timestamp=y" in text
        assert "fields.exc_info=true" in text
        assert "slow query" in text

    def test_unusual_values(self):
        class Hostile:
            def __repr__(self):
                raise RuntimeError

        text = render([rec(fields={"a": Hostile(), "b": None, "c": 1.5})], colors=False)
        assert "Hostile object at" in text
        assert "b=null" in text
        assert "c=1.5" in text

    def test_many_records_one_line_each(self):
        text = render([rec(fields={"i": i}) for i in range(50)], colors=False)
        assert len(text.splitlines()) == 50


SRC = {
    "file": "/tmp/app/billing.py",
    "line": 54,
    "func": "worker",
    "process": 27930,
    "thread": "worker-0",
}


def pretty(src="short", colors=False, **changes):
    return render([rec(**changes)], colors=colors, src=src)


class TestSource:
    """A LogRecord's origin is shown as the viewer shows it, after the user's fields."""

    def test_short_after_the_fields(self):
        text = pretty(fields={"_src": SRC, "amount": 12.5, "user": "ada"})
        assert "_src" not in text
        assert "{'" not in text
        assert "/tmp/app" not in text
        assert "amount=12.5 user=ada billing.py:54 in worker peer=127.0.0.1:53012/pickle" in text

    def test_full(self):
        text = pretty("full", fields={"_src": SRC, "amount": 12.5})
        assert (
            "amount=12.5 /tmp/app/billing.py:54 in worker, thread worker-0, pid 27930 peer=" in text
        )

    def test_off(self):
        text = pretty("off", fields={"_src": SRC, "amount": 12.5})
        assert "billing" not in text
        assert "_src" not in text
        assert "amount=12.5 peer=127.0.0.1:53012/pickle" in text

    def test_windows_path_and_task(self):
        src = {"file": "C:\\app\\billing.py", "line": 3, "task": "Task-1"}
        assert "billing.py:3 peer=" in pretty(fields={"_src": src})
        assert "C:\\app\\billing.py:3, task Task-1 peer=" in pretty("full", fields={"_src": src})

    def test_partial_and_odd_sources(self):
        assert " ?:7 peer=" in pretty(fields={"_src": {"line": 7}})
        assert ' ["a"]:x in null peer=' in pretty(
            fields={"_src": {"file": ["a"], "line": "x", "func": None}}
        )

    def test_hostile_source_is_inert(self):
        text = pretty(
            "full", fields={"_src": {"file": HOSTILE, "func": HOSTILE, "thread": HOSTILE}}
        )
        assert text.count("\n") == 1
        assert_inert(text)

    def test_a_source_that_is_not_an_object_is_a_field(self):
        assert '_src="not a dict" peer=' in pretty(fields={"_src": "not a dict"})

    def test_dimmed_in_colour(self):
        text = pretty(colors=True, fields={"_src": SRC})
        assert "\x1b[2mbilling.py:54 in worker peer=127.0.0.1:53012/pickle\x1b[0m" in text

    def test_bad_mode(self):
        with pytest.raises(ValueError, match="short, full or off"):
            ConsoleSink("pretty", src="long")  # type: ignore[arg-type]


class TestValues:
    """Every value the console may print reads as one word or as compact JSON, never a repr."""

    @pytest.mark.parametrize(
        ("value", "shown"),
        [
            ("ada", "ada"),
            ("two words", '"two words"'),
            ("", '""'),
            ("a=b", '"a=b"'),
            ('say "hi"', '"say \\"hi\\""'),
            ("it's", "it's"),
            ("C:\\dir", "C:\\dir"),
            ("tab\there", '"tab\\there"'),
            ("esc\x1b[2J", '"esc\\u001b[2J"'),
            ("nel\x85 sep\u2028", '"nel\\u0085 sep\\u2028"'),
            ("lone \ud800", '"lone \\\\ud800"'),
            ("日本", "日本"),
            (42, "42"),
            (-1.5, "-1.5"),
            (float("nan"), "null"),
            (True, "true"),
            (False, "false"),
            (None, "null"),
            (2**70, '"1180591620717411303424"'),
            ([1, "a b", None], '[1,"a b",null]'),
            ((1, 2), "[1,2]"),
            ({"nested": {"k": [True]}}, '{"nested":{"k":[true]}}'),
            ({1: "int key"}, '{"1":"int key"}'),
            (b"bytes\xff", '"bytes\\\\xff"'),
            ({"x": b"\x1b"}, '{"x":"\\u001b"}'),
        ],
    )
    def test_shown(self, value, shown):
        text = pretty(fields={"v": value})
        assert f" v={shown} peer=" in text
        assert_inert(text)

    def test_no_python_repr_anywhere(self):
        fields = {
            "d": {"a": 1, "b": None},
            "l": ["x", True],
            "t": ("y",),
            "n": None,
            "b": b"z",
            "s": "two words",
            1: 2,
        }
        text = pretty(fields=fields)
        for python in ("{'", "['", "('", "None", "True", "b'", "'two words'"):
            assert python not in text
        assert " 1=2 peer=" in text

    def test_self_referencing_list(self):
        loop = []
        loop.append(loop)
        text = pretty(fields={"loop": loop})
        assert "loop=[" in text
        assert text.count("\n") == 1

    def test_quoted_keys(self):
        text = pretty(fields={"two words": 1, "a=b": 2})
        assert '"two words"=1 "a=b"=2 peer=' in text


class TestJson:
    """JSON mode writes exactly what goes into the file."""

    def test_lines_parse(self):
        records = [rec(), rec(message=HOSTILE, exc="tb\n"), rec(fields={"k": "\ud800"})]
        text = render(records, mode="json")
        lines = text.splitlines()
        assert len(lines) == 3
        assert [json.loads(line)["message"] for line in lines] == [
            "slow query",
            HOSTILE,
            "slow query",
        ]
        assert text == b"".join(encode_line(r) for r in records).decode()
        assert_inert(text)

    def test_batch_writes_the_pipelines_lines(self):
        """Given a batch encoded once, JSON mode writes those lines and encodes nothing."""
        stream = io.StringIO()
        sink = ConsoleSink("json", stream)
        sink.write_batch([rec()], [b'{"already":"encoded"}\n'])
        assert stream.getvalue() == '{"already":"encoded"}\n'

    def test_pretty_batch_renders_the_records(self):
        stream = io.StringIO()
        sink = ConsoleSink("pretty", stream, colors=False)
        sink.write_batch([rec()], [b"not used\n"])
        assert "slow query" in stream.getvalue()
        assert "not used" not in stream.getvalue()


class TestOff:
    """Off mode writes nothing at all."""

    def test_nothing(self):
        assert render([rec()], mode="off") == ""

    def test_bad_mode(self):
        with pytest.raises(ValueError, match="pretty, json or off"):
            ConsoleSink("loud")  # type: ignore[arg-type]


class BrokenPipeStream(io.StringIO):
    def write(self, _text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


class TestBrokenStream:
    """A stream that went away turns the console off instead of raising."""

    @pytest.mark.parametrize("mode", ["pretty", "json"])
    def test_closed_stream(self, mode):
        stream = io.StringIO()
        sink = ConsoleSink(mode, stream)
        stream.close()
        sink.write([rec()])
        sink.flush()
        assert sink.broken

    @pytest.mark.parametrize("mode", ["pretty", "json"])
    def test_broken_pipe(self, mode):
        sink = ConsoleSink(mode, BrokenPipeStream())
        sink.write([rec()])
        sink.write([rec()])
        sink.flush()
        assert sink.broken

    def test_ascii_stream_gets_escapes(self):
        raw = io.BytesIO()
        stream = io.TextIOWrapper(raw, encoding="ascii")
        sink = ConsoleSink("pretty", stream, colors=False)
        sink.write([rec(message="héllo 日本")])
        sink.flush()
        text = raw.getvalue().decode("ascii")
        assert "h\\xe9llo \\u65e5\\u672c" in text
        assert not sink.broken


class TtyStream(io.StringIO):
    def isatty(self):
        return True


class TestColourDefault:
    """Without an explicit choice, colours follow the terminal and NO_COLOR."""

    def test_terminal_gets_colours(self, monkeypatch):
        monkeypatch.delenv("NO_COLOR", raising=False)
        assert ConsoleSink("pretty", TtyStream()).colors

    def test_no_color_wins(self, monkeypatch):
        monkeypatch.setenv("NO_COLOR", "1")
        assert not ConsoleSink("pretty", TtyStream()).colors

    def test_pipe_gets_none(self):
        assert not ConsoleSink("pretty", io.StringIO()).colors

    def test_default_stream_is_current_stdout(self, capsys):
        sink = ConsoleSink("json")
        sink.write([rec()])
        sink.flush()
        assert json.loads(capsys.readouterr().out)["message"] == "slow query"
