"""A line a container printed, as Docker's logging drivers deliver it (GELF, Fluentd forward).

Docker knows only the stream (stdout or stderr), not the level, and many
programs write every level to stderr (Python's ``logging.basicConfig``,
Go's ``log``), so "stderr means error" alone would mark their INFO lines as
errors.  One interpretation serves both drivers:

* a line that is a JSON object is decoded as a JSON line is on the log
  ports (structlog, pino, zap...): its own level, message and time win;
* a text line that starts with a level word (``INFO``, ``[WARN]``,
  ``WARNING:root:``, ``level=error``) takes that level;
* any other line takes the stream's level: ``info`` on stdout, ``error``
  on stderr (Docker's own ``gelf`` driver sends syslog levels 6 and 3).
"""

from __future__ import annotations

import collections
import re
from typing import Final

from netlog.decode.formats import json_or_text
from netlog.record import Record

__all__ = ["STREAM_LEVELS", "container_line", "leading_level"]

#: The level of a line that does not say its own, by the stream it came on.
STREAM_LEVELS: Final = {"stdout": "info", "stderr": "error"}

#: A level word at the start of a text line: ``INFO``, ``[warn]``,
#: ``WARNING:root:``, ``level=error``, ``E0312`` is not one (glog's letters
#: are too easy to mistake for words).
_LEADING_LEVEL: Final = re.compile(
    rb"\s{0,8}(?:level=)?[\[(<]?"
    rb"(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRITICAL|CRIT|FATAL|PANIC)"
    rb"[\])>]?(?=[\s:|\]-]|$)",
    re.IGNORECASE,
)
_SPELLINGS: Final = {"panic": "critical", "err": "error", "crit": "critical"}


def leading_level(line: bytes) -> str | None:
    """The level a text line names at its start, lower case, or ``None``."""
    match = _LEADING_LEVEL.match(line)
    if match is None:
        return None
    word = match.group(1).decode().lower()
    return _SPELLINGS.get(word, word)


def container_line(
    line: bytes,
    stream: str | None,
    peer: str,
    received: float,
    *,
    notes: collections.Counter[str],
    fmt: str,
) -> Record | None:
    """One printed line as a record (``None`` for a blank line); see the module docstring."""
    seen: collections.Counter[str] = collections.Counter()
    record = json_or_text(line, peer, received, seen, fmt)
    notes.update(seen)
    if record is None:
        return None
    if line.lstrip()[:1] == b"{" and "json_as_text" not in seen:
        return record  # a JSON line: it said its own level (or none: info)
    level = leading_level(line) or STREAM_LEVELS.get(stream or "", "info")
    return record._replace(level=level)
