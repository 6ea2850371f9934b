"""Counters the whole process shares, read by the summary line and /metrics.

Plain ``Counter`` objects, not a metrics library, on the hot path: bumping a
dict entry is the cheapest honest count there is, and exporters read them.

What a problem counts as is decided here, once (``bad_frame``,
``add_connection``), so every listener reports the same thing the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

#: The reasons a stream decoder drops input for that are undecodable input
#: (bad frames); its other reasons (``truncated``, ``line_too_long``...) are
#: records lost for their size or the peer's timing, counted as dropped only.
STREAM_BAD_FRAME_REASONS: Final = frozenset({"bad_frame", "bad_json", "internal_error"})
#: The counters a ``--workers`` process reports to the writer and the writer
#: adds up (``http_requests`` stays with the process serving HTTP: the writer).
SHARED_COUNTERS: Final = (
    "received",
    "dropped",
    "bad_frames",
    "notes",
    "connections_total",
    "connections_open",
    "bytes_in",
    "kernel_dropped",
)
#: A snapshot of those counters: counter name -> label -> count (JSON-ready).
Snapshot = dict[str, dict[str, int]]


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
    kernel_dropped: Counter[str] = field(default_factory=Counter)
    """Datagrams the kernel dropped for a full receive buffer, by listener
    (``log_udp``, ``responder``): the socket's own count, set (not added to)
    each time it is read."""
    readers: list[Callable[[], None]] = field(default_factory=list)
    """Called by :meth:`refresh`: each fetches a count kept outside the
    process (the kernel's drops) into these counters."""

    def refresh(self) -> None:
        """Fetch the counts kept outside the process; call before reading them (``/metrics``)."""
        for read in self.readers:
            read()

    def snapshot(self) -> Snapshot:
        """The :data:`SHARED_COUNTERS` as plain dicts, for another process to add up."""
        return {name: dict(getattr(self, name)) for name in SHARED_COUNTERS}

    def add_snapshot(self, snapshot: Snapshot, *, live: bool = True) -> None:
        """Add another process's counts; ``live=False`` for a process that has exited.

        A process that exited holds no connection open any more, so its
        ``connections_open`` is left out; everything else it counted stays counted.
        """
        for name in SHARED_COUNTERS:
            if not live and name == "connections_open":
                continue
            counts = snapshot.get(name)
            if counts:
                getattr(self, name).update(counts)

    def clear(self) -> None:
        """Forget every count (a total about to be added up again)."""
        for name in SHARED_COUNTERS:
            getattr(self, name).clear()
        self.http_requests.clear()

    def bad_frame(self, reason: str) -> None:
        """Undecodable input was dropped: it is a bad frame, and it is lost."""
        self.bad_frames[reason] += 1
        self.dropped[reason] += 1

    def add_connection(self, notes: Counter[str], dropped: Counter[str]) -> None:
        """Take a finished stream decoder's per-connection counts.

        Every reason it dropped for is counted as dropped; those in
        :data:`STREAM_BAD_FRAME_REASONS` are bad frames as well.
        """
        self.notes.update(notes)
        if not dropped:
            return
        self.dropped.update(dropped)
        for reason, count in dropped.items():
            if reason in STREAM_BAD_FRAME_REASONS:
                self.bad_frames[reason] += count

    def summary(self, written: int) -> str:
        """The one line printed at exit (the kernel's drops, by listener, when there were any)."""
        line = (
            f"{written} records written, {sum(self.dropped.values())} dropped, "
            f"{sum(self.bad_frames.values())} bad frames"
        )
        kernel = sum(self.kernel_dropped.values())
        if kernel:
            where = ", ".join(f"{name} {n}" for name, n in sorted(self.kernel_dropped.items()) if n)
            line += f", {kernel} dropped by the kernel ({where})"
        return line
