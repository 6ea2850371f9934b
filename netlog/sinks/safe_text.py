r"""Which characters are unsafe in netlog's output, stated once, and the escapes.

Every string in a record came from the network.  Printed or stored raw, some
characters do more than show themselves: a terminal obeys C0 and C1 controls
(ESC, CSI U+009B), ``str.splitlines`` and JavaScript split lines at U+0085,
U+2028 and U+2029 (so one record would read as two), and the bidirectional
embeddings, overrides and isolates reorder what a line appears to say
("Trojan Source").  A lone surrogate cannot be written as UTF-8 at all.

:data:`UNSAFE` is that set.  The three forms netlog needs are derived from
it, so a character added here is escaped everywhere:

* console text (:func:`escape_text`): every unsafe character becomes a
  visible escape, because a person reads the result;
* JSON bytes (:data:`UNSAFE_JSON_BYTES`, :func:`json_escape_match`): what a
  JSON encoder leaves raw in its UTF-8 output becomes ``\uXXXX``, which
  inside a JSON string is the same text, so the record is unchanged;
* JSON text (:func:`escape_json_text`): the same for a line already decoded,
  such as a JSONL file that another program wrote.

The JSON forms leave out C0 (JSON itself requires it escaped: orjson does
so, and a raw one makes the line invalid JSON anyway) and surrogates (they
cannot occur in UTF-8).
"""

from __future__ import annotations

import re
from itertools import groupby
from typing import Final

__all__ = [
    "UNSAFE",
    "UNSAFE_JSON_BYTES",
    "UNSAFE_JSON_TEXT",
    "escape_json_text",
    "escape_text",
    "json_escape_match",
]

#: The unsafe characters, as inclusive code point ranges.
UNSAFE: Final[tuple[tuple[int, int], ...]] = (
    (0x00, 0x1F),  # C0 controls: NUL, BEL, ESC, CR, LF, TAB...
    (0x7F, 0x9F),  # DEL and the C1 controls (NEL U+0085, CSI U+009B)
    (0x2028, 0x2029),  # line and paragraph separators
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2066, 0x2069),  # bidi isolates
    (0xD800, 0xDFFF),  # surrogates, which only occur alone in a str
)

_C0: Final = (0x00, 0x1F)
_SURROGATES: Final = (0xD800, 0xDFFF)
_NEWLINE: Final = ord("\n")


def _without(ranges: tuple[tuple[int, int], ...], code: int) -> list[tuple[int, int]]:
    """``ranges`` with one code point taken out."""
    out: list[tuple[int, int]] = []
    for low, high in ranges:
        if low <= code <= high:
            out += [(lo, hi) for lo, hi in ((low, code - 1), (code + 1, high)) if lo <= hi]
        else:
            out.append((low, high))
    return out


def _text_class(ranges: list[tuple[int, int]]) -> re.Pattern[str]:
    """One character class matching every code point in ``ranges``."""
    parts = (
        f"\\u{low:04x}" if low == high else f"\\u{low:04x}-\\u{high:04x}" for low, high in ranges
    )
    return re.compile(f"[{''.join(parts)}]")


def _utf8_alternation(ranges: list[tuple[int, int]]) -> re.Pattern[bytes]:
    r"""A bytes pattern matching the UTF-8 encoding of every code point in ``ranges``.

    Characters sharing all but their last byte become one alternative with a
    class for that byte (``\xc2[\x80-\x9f]``): a lead byte never occurs
    inside another character, so the pattern cannot match across two.
    """
    encoded = [chr(code).encode() for low, high in ranges for code in range(low, high + 1)]
    alternatives: list[bytes] = []
    for prefix, group in groupby(encoded, key=lambda seq: seq[:-1]):
        lasts = [seq[-1] for seq in group]
        head = b"".join(b"\\x%02x" % byte for byte in prefix)
        # Split the last bytes into runs of consecutive values.
        for _, run in groupby(enumerate(lasts), key=lambda pair: pair[1] - pair[0]):
            values = [byte for _, byte in run]
            low, high = values[0], values[-1]
            tail = b"\\x%02x" % low if low == high else b"[\\x%02x-\\x%02x]" % (low, high)
            alternatives.append(head + tail)
    return re.compile(b"|".join(alternatives))


_JSON_RAW: Final = [span for span in UNSAFE if span not in {_C0, _SURROGATES}]

#: What orjson (or any JSON encoder) leaves raw, in its UTF-8 output.
UNSAFE_JSON_BYTES: Final = _utf8_alternation(_JSON_RAW)
#: The same characters in decoded text.
UNSAFE_JSON_TEXT: Final = _text_class(_JSON_RAW)

_CONSOLE_ALL: Final = _text_class(list(UNSAFE))
_CONSOLE_BUT_NEWLINE: Final = _text_class(_without(UNSAFE, _NEWLINE))
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def json_escape_match(match: re.Match[bytes]) -> bytes:
    r"""The ``\uXXXX`` escape of one :data:`UNSAFE_JSON_BYTES` match.

    Callers run ``UNSAFE_JSON_BYTES.sub(json_escape_match, line)`` themselves,
    after their own fast check, so the hot path pays no extra call.
    """
    return b"\\u%04x" % ord(match.group().decode("utf-8"))


def _json_escape_text(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape_json_text(text: str) -> str:
    r"""Escape, as ``\uXXXX``, what a line reader or a terminal would obey in JSON text.

    For text that is one JSON document: the result is the same JSON value.
    DEL is the one unsafe character in ASCII, so ASCII text without it (the
    common case) is returned as it is after two C-level scans.
    """
    if text.isascii() and "\x7f" not in text:
        return text
    return UNSAFE_JSON_TEXT.sub(_json_escape_text, text)


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_text(s: str, keep_newlines: bool = False) -> str:
    r"""Make ``s`` safe to print: every unsafe character becomes a visible escape.

    ``"a\nb"`` becomes ``a\nb`` with a literal backslash, so one record is
    always one line and no escape sequence reaches the terminal.
    Backslashes themselves are left alone (Windows paths stay readable); the
    aim is safety, not a reversible encoding.  ``keep_newlines`` is for
    tracebacks, whose line structure is the point.
    """
    # Every character escaped here is non-printable, so printable text (the
    # common case) costs one C-level scan.
    if s.isprintable():
        return s
    pattern = _CONSOLE_BUT_NEWLINE if keep_newlines else _CONSOLE_ALL
    return pattern.sub(_escape_char, s)
