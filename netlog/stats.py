"""Counters the whole process shares, read by the summary line and /metrics.

Plain ``Counter`` objects, not a metrics library, on the hot path: bumping a
dict entry is the cheapest honest count there is, and exporters read them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class Stats:
    """Process-wide counts, labelled by format, reason or listener."""

    received: Counter[str] = field(default_factory=Counter)
    """Records decoded, by format."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Records or frames lost, by reason (``truncated``, ``bad_frame``...)."""
    bad_frames: Counter[str] = field(default_factory=Counter)
    """Undecodable input, by reason; a subset of what ``dropped`` counts."""
    notes: Counter[str] = field(default_factory=Counter)
    """Records kept but degraded, by reason (``json_as_text``...)."""
    connections_total: Counter[str] = field(default_factory=Counter)
    connections_open: Counter[str] = field(default_factory=Counter)
    bytes_in: Counter[str] = field(default_factory=Counter)
    """Bytes read, by listener (``log_tcp``, ``log_udp``, ``http``)."""
    http_requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    """HTTP requests answered, by (route, status code)."""

    def summary(self, written: int) -> str:
        """The one line printed at exit."""
        return (
            f"{written} records written, {sum(self.dropped.values())} dropped, "
            f"{sum(self.bad_frames.values())} bad frames"
        )
