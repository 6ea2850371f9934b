"""The one table of unsafe characters and the three escapes derived from it."""

import json
import re

import pytest

from netlog.sinks.safe_text import (
    UNSAFE,
    UNSAFE_JSON_BYTES,
    UNSAFE_JSON_TEXT,
    escape_json_text,
    escape_text,
    json_escape_match,
)

HOSTILE = "a\nb\r\x1b]0;pwned\x07"


def assert_inert(text):
    """No raw character that could forge a line or drive the terminal."""
    for char in "\r\x1b\x07\x00\x7f\x85\x9b\u2028\u2029\u202e":
        assert char not in text, repr(char)


def unsafe(code):
    return any(low <= code <= high for low, high in UNSAFE)


def raw_in_json(code):
    """Unsafe, but left raw by a JSON encoder: not C0 (escaped), not a surrogate."""
    return unsafe(code) and code >= 0x20 and not 0xD800 <= code <= 0xDFFF


class TestEscapeText:
    """escape_text makes every control character visible and leaves the rest alone."""

    def test_plain_text_is_returned_unchanged(self):
        text = "hello wörld 日本 🎉 \\ path\\to"
        assert escape_text(text) is text

    @pytest.mark.parametrize(
        ("raw", "shown"),
        [
            ("\n", "\\n"),
            ("\r", "\\r"),
            ("\t", "\\t"),
            ("\x00", "\\x00"),
            ("\x07", "\\x07"),
            ("\x1b", "\\x1b"),
            ("\x7f", "\\x7f"),
            ("\x85", "\\x85"),
            ("\x9b", "\\x9b"),
            ("\u2028", "\\u2028"),
            ("\u2029", "\\u2029"),
            ("\u202e", "\\u202e"),
            ("\u2066", "\\u2066"),
            ("\ud800", "\\ud800"),
            ("\udfff", "\\udfff"),
        ],
    )
    def test_each_unsafe_character(self, raw, shown):
        assert escape_text(f"x{raw}y") == f"x{shown}y"

    def test_hostile_message_becomes_one_inert_line(self):
        shown = escape_text(HOSTILE)
        assert shown == "a\\nb\\r\\x1b]0;pwned\\x07"
        assert_inert(shown)
        assert "\n" not in shown

    def test_keep_newlines(self):
        assert escape_text("a\nb\r\n\x1b[2J\t", keep_newlines=True) == "a\nb\\r\n\\x1b[2J\\t"

    def test_result_is_encodable(self):
        shown = escape_text("\ud800\udc00 lone halves")
        assert shown == "\\ud800\\udc00 lone halves"
        assert shown.encode("utf-8") == b"\\ud800\\udc00 lone halves"
        assert shown.isprintable()


class TestDerivedForms:
    """Every form matches exactly the characters the table names."""

    def test_json_bytes_pattern_matches_each_raw_character(self):
        for code in range(0x110000):
            if 0xD800 <= code <= 0xDFFF:
                continue
            data = chr(code).encode()
            assert bool(UNSAFE_JSON_BYTES.fullmatch(data)) == raw_in_json(code), hex(code)

    def test_json_bytes_pattern_is_the_hand_written_one(self):
        """The derived pattern is the one encode.py used to spell out (same speed)."""
        assert UNSAFE_JSON_BYTES.pattern == (
            rb"\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xa8-\xae]|\xe2\x81[\xa6-\xa9]"
        )

    def test_json_text_pattern_matches_each_raw_character(self):
        for code in range(0x3000):
            assert bool(UNSAFE_JSON_TEXT.fullmatch(chr(code))) == raw_in_json(code), hex(code)

    def test_console_escapes_each_unsafe_character(self):
        for code in range(0x10000):
            char = chr(code)
            changed = escape_text(char) != char
            assert changed == unsafe(code), hex(code)
            if code != 0x0A:
                assert (escape_text(char, keep_newlines=True) != char) == unsafe(code)
        assert escape_text("\n", keep_newlines=True) == "\n"

    def test_json_escape_match(self):
        line = "x\u2028\x85\x7f\u2066y".encode()
        escaped = UNSAFE_JSON_BYTES.sub(json_escape_match, line)
        assert escaped == b"x\\u2028\\u0085\\u007f\\u2066y"


class TestEscapeJsonText:
    """escape_json_text keeps the JSON value and makes the line inert."""

    def test_ascii_is_returned_unchanged(self):
        text = '{"message":"plain"}'
        assert escape_json_text(text) is text

    def test_same_value_inert_line(self):
        text = json.dumps({"message": "a\u2028b\x85c\u202ed\x9b[2J"}, ensure_ascii=False)
        shown = escape_json_text(text)
        assert json.loads(shown) == json.loads(text)
        assert_inert(shown)
        assert len(shown.splitlines()) == 1
        assert not re.search("[\x7f-\x9f]", shown)

    @pytest.mark.parametrize("char", ["\x7f", "\x85", "\u2029", "\u2069"])
    def test_each_is_a_json_escape(self, char):
        assert escape_json_text(f'["{char}"]') == f'["\\u{ord(char):04x}"]'
