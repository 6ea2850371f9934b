r"""The console sink: records for a person watching ``docker compose up``.

Every string in a record came from the network, and a terminal obeys what
it is sent: a message holding ``\x1b]0;...`` retitles the window, one holding
``\r`` or ``\n`` forges a record line (CVE-2021-25743 is that bug in
Kubernetes).  So every text goes through :func:`escape_text` before it reaches
the stream, and only the renderer's own colour codes are raw.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Final, TextIO

import structlog.dev

from netlog.settings import CONSOLE_MODES
from netlog.sinks.encode import encode_line, format_time
from netlog.sinks.safe_text import escape_text

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from netlog.record import Record
    from netlog.settings import ConsoleMode

__all__ = ["ConsoleSink"]

# structlog treats these keys specially (columns, or an exception to format);
# a sender's field with such a name is shown under a prefix instead.
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


def _show(value: Any) -> str:
    """Any field value as escaped text: strings as they are, the rest as ``repr``."""
    if isinstance(value, str):
        return escape_text(value)
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - hostile or recursive __repr__; show something
        text = object.__repr__(value)
    return escape_text(text)


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
    ) -> None:
        if mode not in CONSOLE_MODES:
            raise ValueError(f"console mode must be pretty, json or off, not {mode!r}")
        self.mode: ConsoleMode = mode
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
        for key, value in record.fields.items():
            name = _show(key)
            if name in _RESERVED:
                name = "fields." + name
            event[name] = _show(value)
        event["peer"] = f"{escape_text(str(record.peer))}/{escape_text(str(record.format))}"
        line = self._renderer(None, "", event)
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
