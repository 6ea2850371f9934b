r"""The console sink: records for a person watching ``docker compose up``.

Every string in a record came from the network, and a terminal obeys what
it is sent: a message holding ``\x1b]0;...`` retitles the window, one holding
``\r`` or ``\n`` forges a record line (CVE-2021-25743 is that bug in
Kubernetes).  So every text goes through :func:`escape_text` before it reaches
the stream, and only the renderer's own colour codes are raw.

A line is for a person: the user's fields come first after the message, as
``key=value`` with every value that is not a plain word in compact JSON
(``tags=["a","b"]``, ``note="two words"``, ``ok=true``), never a Python
repr; then where a LogRecord was made (``fields._src``) as the viewer shows
it, ``billing.py:54 in worker`` (:data:`~netlog.settings.SourceMode`); then
the sender.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any, Final, TextIO

import orjson
import structlog.dev

from netlog.settings import CONSOLE_MODES, DEFAULT_CONSOLE_SRC, SOURCE_MODES
from netlog.sinks.encode import encode_line, format_time, sanitize
from netlog.sinks.safe_text import escape_json_text, escape_text

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from netlog.record import Record
    from netlog.settings import ConsoleMode, SourceMode

__all__ = ["ConsoleSink", "show_source", "show_value"]

# structlog treats these keys specially (columns, or an exception to format);
# a sender's field with such a name is shown under a prefix instead, and so
# is one named like the line's own "peer".
_RESERVED: Final = frozenset(
    {
        "timestamp",
        "level",
        "event",
        "logger",
        "logger_name",
        "exception",
        "exc_info",
        "stack",
        "peer",
    }
)
_INDENT: Final = "    "
#: The field a LogRecord's origin is kept in (netlog.decode.normalize).
SOURCE_FIELD: Final = "_src"
# A text is shown bare only when it reads as one word: no space, no "=" that
# would make it look like two pairs, no quote that would look like JSON's.
_BARE: Final = re.compile(r'[^\s="]+')
_PATH_SEP: Final = re.compile(r"[/\\]")
# Dims what describes the record rather than saying it (source and sender).
_DIM: Final = "\x1b[2m"
_RESET: Final = "\x1b[0m"


def show_value(value: object) -> str:
    r"""A field value as a person reads it on one line; never a Python repr.

    A string that is one printable word is shown as it is; every other value
    (strings with spaces, quotes or controls, numbers, ``true``, ``null``,
    lists, nested objects) is its compact JSON, which is how the file and
    ``--field KEY=VALUE`` write it.  What JSON leaves raw but a terminal
    would obey (C1, line separators, bidi controls) is ``\uXXXX``-escaped.
    """
    if isinstance(value, str) and value.isprintable() and _BARE.fullmatch(value):
        return value
    try:
        text = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):  # bytes, big ints, surrogates, cycles...
        text = orjson.dumps(sanitize(value))
    return escape_json_text(text.decode("utf-8"))


def _part(value: object) -> str:
    """One piece of a source location: a string as it is (escaped), the rest as JSON."""
    return escape_text(value) if isinstance(value, str) else show_value(value)


def show_source(src: Mapping[str, object], mode: SourceMode) -> str:
    """A LogRecord's origin as the viewer shows it: ``billing.py:54 in worker``.

    ``short`` keeps the file's last path component, for a line that stays
    readable; ``full`` keeps the whole path and adds the thread, the task and
    the process id.  ``off`` is the caller's to honour (nothing is shown).
    """
    file = src.get("file")
    text = "?" if file is None else _part(file)
    if mode == "short" and isinstance(file, str):
        text = escape_text(_PATH_SEP.split(file)[-1] or file)
    if "line" in src:
        text += ":" + _part(src["line"])
    if "func" in src:
        text += " in " + _part(src["func"])
    if mode == "full":
        for key, label in (("thread", "thread"), ("task", "task"), ("process", "pid")):
            if key in src:
                text += f", {label} {_part(src[key])}"
    return text


def _key(key: object) -> str:
    """A field's name, shown like a value (quoted when it would read as two words)."""
    name = show_value(key if isinstance(key, str) else _fallback_key(key))
    return "fields." + name if name in _RESERVED else name


def _fallback_key(key: object) -> str:
    """A non-string key (a pickle may hold one) as the file shows it."""
    clean = sanitize({key: None})
    return next(iter(clean)) if isinstance(clean, dict) and clean else "?"


class _Shown:
    """Text the renderer prints as it is: its ``repr`` is the text.

    structlog's renderer quotes a string value holding a space with Python's
    ``repr``; values given as this are already what the line should say.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class ConsoleSink:
    """Writes records to a text stream as pretty lines, JSON lines, or not at all.

    ``stream=None`` means whatever ``sys.stdout`` is at each write, so a
    replaced stdout (pytest, a daemon) is honoured.  ``colors=None`` colours
    only a terminal, and never when ``NO_COLOR`` is set (no-color.org).
    Writing never raises: a closed stream or a reader that went away
    (``netlog serve | head``) turns the console off, because the records are
    safe in the file anyway.
    """

    def __init__(
        self,
        mode: ConsoleMode,
        stream: TextIO | None = None,
        *,
        colors: bool | None = None,
        src: SourceMode = DEFAULT_CONSOLE_SRC,
    ) -> None:
        if mode not in CONSOLE_MODES:
            raise ValueError(f"console mode must be pretty, json or off, not {mode!r}")
        if src not in SOURCE_MODES:
            raise ValueError(f"console source must be short, full or off, not {src!r}")
        self.mode: ConsoleMode = mode
        self.src: SourceMode = src
        """How a LogRecord's origin is shown in pretty mode."""
        self._stream = stream
        if colors is None:
            colors = "NO_COLOR" not in os.environ and _isatty(self.stream)
        self.colors = colors
        self.broken = False
        """Set once the stream has failed; later writes are skipped."""
        self._renderer = structlog.dev.ConsoleRenderer(colors=colors, sort_keys=False)

    @property
    def stream(self) -> TextIO:
        """The stream written to."""
        return self._stream if self._stream is not None else sys.stdout

    def write(self, records: Iterable[Record]) -> None:
        """Render and write records on their own (outside a pipeline); never raises."""
        if self.mode == "off" or self.broken:
            return
        batch = list(records)
        lines = [encode_line(record) for record in batch] if self.mode == "json" else ()
        self.write_batch(batch, lines)

    def write_batch(self, records: Sequence[Record], lines: Sequence[bytes]) -> None:
        """Write a batch the pipeline has encoded once; never raises.

        ``lines`` are the records' JSON lines, as in the file: JSON mode
        writes them as they are, pretty mode renders ``records``.
        """
        if self.mode == "off" or self.broken:
            return
        if self.mode == "json":
            text = b"".join(lines).decode("utf-8")
        else:
            text = "".join([self._render(record) + "\n" for record in records])
        if text:
            self._emit(text)

    def flush(self) -> None:
        """Flush the stream; never raises."""
        if self.mode == "off" or self.broken:
            return
        try:
            self.stream.flush()
        except (OSError, ValueError):
            self.broken = True

    def _render(self, record: Record) -> str:
        try:
            return self._render_pretty(record)
        except Exception:  # noqa: BLE001 - a renderer surprise must not lose the record
            return escape_text(encode_line(record).decode("utf-8").rstrip("\n"))

    def _render_pretty(self, record: Record) -> str:
        event: dict[str, Any] = {
            "timestamp": format_time(record.ts),
            "level": escape_text(str(record.level)),
            "event": escape_text(str(record.message)),
        }
        if record.logger:
            event["logger"] = escape_text(str(record.logger))
        src = None
        for key, value in record.fields.items():
            if key == SOURCE_FIELD and isinstance(value, dict):
                src = value
            else:
                event[_key(key)] = _Shown(show_value(value))
        tail = [] if src is None or self.src == "off" else [show_source(src, self.src)]
        tail.append(f"peer={escape_text(str(record.peer))}/{escape_text(str(record.format))}")
        about = " ".join(tail)
        line = (
            self._renderer(None, "", event)
            + " "
            + (_DIM + about + _RESET if self.colors else about)
        )
        if record.exc:
            text = escape_text(str(record.exc), keep_newlines=True).rstrip("\n")
            line += "".join("\n" + _INDENT + part for part in text.split("\n"))
        return line

    def _emit(self, text: str) -> None:
        stream = self.stream
        try:
            stream.write(text)
        except UnicodeEncodeError:
            # A stream that cannot take the text (LANG=C, an ASCII pipe):
            # show the characters as escapes rather than lose the records.
            encoding = getattr(stream, "encoding", None) or "ascii"
            try:
                stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
            except (OSError, ValueError):
                self.broken = True
        except (OSError, ValueError):
            # BrokenPipeError, a closed file (ValueError), EIO on a dead tty.
            self.broken = True


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, OSError, ValueError):
        return False
