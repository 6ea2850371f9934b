"""Slowing down a source that keeps failing to authenticate, in bounded memory.

Each source (an IP address) gets a window of :data:`WINDOW` seconds from
its first failure; at :data:`LIMIT` failures inside it, every request from
that source is answered 429 until the window ends, whether its token is
right or not, so a guesser learns nothing faster than ``LIMIT`` tries a
window.  Nothing sleeps: a refused request costs no more than an accepted
one.  The table holds at most :data:`MAX_SOURCES` sources; past that the
oldest entry is forgotten, so many addresses can escape the count but never
grow the memory.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["LIMIT", "MAX_SOURCES", "WINDOW", "FailureThrottle"]

#: Failures a source may have in one window before it is refused.
LIMIT: Final = 5
#: Seconds of a window, from a source's first failure in it.
WINDOW: Final = 60.0
#: Sources remembered at most.
MAX_SOURCES: Final = 4096


class FailureThrottle:
    """Per-source failure counts in fixed windows; the clock is the caller's."""

    def __init__(
        self, limit: int = LIMIT, window: float = WINDOW, max_sources: int = MAX_SOURCES
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_sources = max_sources
        self._sources: dict[str, tuple[float, int]] = {}  # source -> (window start, failures)

    def __len__(self) -> int:
        return len(self._sources)

    def retry_after(self, source: str, now: float) -> int:
        """Whole seconds until ``source`` may try again; 0 when it may now."""
        entry = self._sources.get(source)
        if entry is None:
            return 0
        start, failures = entry
        left = start + self.window - now
        if left <= 0:
            del self._sources[source]
            return 0
        return math.ceil(left) if failures >= self.limit else 0

    def failed(self, source: str, now: float) -> None:
        """Count one failure of ``source``."""
        entry = self._sources.pop(source, None)
        if entry is not None and now - entry[0] < self.window:
            self._sources[source] = (entry[0], entry[1] + 1)
            return
        while len(self._sources) >= self.max_sources:
            del self._sources[next(iter(self._sources))]
        self._sources[source] = (now, 1)
