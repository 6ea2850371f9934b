"""Times in queries: ``since``/``until`` as RFC 3339 or a duration ago, and the store's spelling.

The store writes ``received`` as fixed-width RFC 3339 UTC text
(``2026-01-02T03:04:05.000006Z``), which sorts as text in time order: the
engine compares those strings directly instead of parsing a timestamp per
line, so a bound is turned into the same spelling here.
"""

from __future__ import annotations

import math

from netlog.query.filter import parse_since
from netlog.query.language import QueryError
from netlog.sinks.encode import format_time

__all__ = ["parse_time", "stored_time"]

#: Later than any time the store can spell (year 9999).
_LATEST = 253_402_300_799.0


def parse_time(text: str, now: float, *, what: str = "time") -> float:
    """Epoch seconds of an RFC 3339 time or a duration before ``now`` (``15m``, ``2h``, ``7d``).

    :class:`QueryError` naming ``what`` (``since``, ``until``) when it is neither.
    """
    try:
        value = parse_since(text, now)
    except (ValueError, OverflowError):
        raise QueryError(
            f"{what}: {text[:100]!r} is neither an RFC 3339 time nor a duration like 15m, 2h, 7d"
        ) from None
    if not math.isfinite(value):
        raise QueryError(f"{what}: {text[:100]!r} is out of range")
    return value


def stored_time(when: float) -> str:
    """``when`` spelled as the store spells ``received``, clamped to what it can spell."""
    return format_time(min(max(float(when), 0.0), _LATEST))
