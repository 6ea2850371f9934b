"""Rate-limited diagnostics for the server's own problems.

A hostile or broken client can produce the same error thousands of times a
second; the operator needs to hear about it once, with a count, not have the
console (and the disk behind ``docker logs``) flooded.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from typing import TextIO

#: Most characters of an exception's message that :func:`describe_exception` keeps.
EXCEPTION_TEXT = 200


def describe_exception(exc: BaseException) -> str:
    """One line for an unexpected exception: its type, message and where it was raised.

    A short summary, not a traceback: the same bug hit by every record of a
    flood is reported once (by :class:`Reporter`'s key), and one line says
    enough to find it (``ValueError: ... (netlog/levels.py:60 in level_from_number)``).
    """
    text = str(exc)
    if len(text) > EXCEPTION_TEXT:
        text = text[:EXCEPTION_TEXT] + "..."
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f" ({last.filename}:{last.lineno} in {last.name})"
    return f"{type(exc).__name__}: {text}{where}"


class Reporter:
    """Writes ``netlog: <message>`` lines, each key at most once per ``interval``."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, message: str, key: str | None = None) -> None:
        """Report ``message``; repeats of ``key`` within the interval are counted instead."""
        key = message if key is None else key
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        if len(self._last) > 1000:  # bounded: forget old keys rather than grow
            self._last.clear()
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        suffix = f" ({suppressed} similar suppressed)" if suppressed else ""
        self.write(f"netlog: {message}{suffix}")

    def write(self, line: str) -> None:
        """Write one line unconditionally (start-up and summary lines)."""
        stream = self._stream if self._stream is not None else sys.stderr
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # stderr closed: nothing better to do with a diagnostic
