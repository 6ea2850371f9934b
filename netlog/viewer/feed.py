"""The live viewer's feed: the newest records in memory, fanned out to each open page.

Sans-IO like the decoders: nothing here blocks or knows about gevent.  The
HTTP server subscribes one :class:`Subscriber` per ``GET /events`` stream
and passes a ``wake`` callback (setting a gevent ``Event``); the feed calls
it when records arrive, and the stream's greenlet takes what is pending.

The feed sits on the pipeline's hot path, so with no page open a batch costs
one ``deque.extend``.  It never encodes: the pipeline hands it the JSON lines
it encoded once for every sink, and the feed keeps those.  Each subscriber's
backlog is bounded: a page that cannot keep up loses the oldest pending
records, and the loss is counted and told to the page.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

from netlog.record import Record

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_RECENT",
    "MAX_PER_MESSAGE",
    "RecordFeed",
    "Subscriber",
    "sse_dropped",
    "sse_records",
]

#: Records kept for a page that connects: it starts with these.
DEFAULT_RECENT: Final = 200
#: Records a page may have pending before the oldest are dropped.
DEFAULT_BACKLOG: Final = 5000
#: Records per server-sent event, so one message never grows huge.
MAX_PER_MESSAGE: Final = 500


def _json(lines: Sequence[bytes]) -> list[bytes]:
    r"""The JSON of each line, without its ``\n``, for an SSE ``data:`` field.

    encode_line escapes every line break inside strings, so what is left
    is one line: exactly what that field needs.
    """
    return [line[:-1] for line in lines]


class Subscriber:
    """One open page: its pending JSON records and what it has lost."""

    __slots__ = ("closed", "dropped", "last_seq", "pending", "wake")

    def __init__(self, backlog: int, wake: Callable[[], None], last_seq: int) -> None:
        self.pending: deque[bytes] = deque(maxlen=backlog)
        self.wake = wake
        self.last_seq = last_seq
        """Sequence number of the newest record given to this page."""
        self.dropped = 0
        """Records dropped since the last :meth:`take`."""
        self.closed = False

    def push(self, lines: Sequence[bytes], last_seq: int) -> int:
        """Queue encoded records; the number of old ones pushed out."""
        pending = self.pending
        maxlen = pending.maxlen or 0
        lost = max(0, len(pending) + len(lines) - maxlen)
        pending.extend(lines)
        self.last_seq = last_seq
        self.dropped += lost
        self.wake()
        return lost

    def take(self) -> tuple[list[bytes], int, int]:
        """Everything pending: (JSON records, newest sequence number, dropped count)."""
        lines = list(self.pending)
        self.pending.clear()
        dropped, self.dropped = self.dropped, 0
        return lines, self.last_seq, dropped


class RecordFeed:
    """A pipeline sink that remembers the newest records and feeds open pages.

    Records are numbered from 1 in arrival order (``total`` is the newest
    number); a page that reconnects with ``Last-Event-ID`` gets only what it
    has not seen, as far as the memory reaches.
    """

    def __init__(self, recent: int = DEFAULT_RECENT, backlog: int = DEFAULT_BACKLOG) -> None:
        # The newest records as the pipeline encoded them (newline included).
        self._recent: deque[bytes] = deque(maxlen=recent)
        self._subscribers: list[Subscriber] = []
        self.backlog = backlog
        self.total = 0
        """Records seen since start; also the newest record's sequence number."""
        self.dropped = 0
        """Records not delivered to pages too slow to take them, in total."""
        self.closed = False

    @property
    def subscribers(self) -> int:
        """Pages connected now."""
        return len(self._subscribers)

    # -- the Sink protocol ---------------------------------------------------

    def write_batch(self, records: Sequence[Record], lines: Sequence[bytes]) -> None:
        """Remember a batch's encoded ``lines`` and hand them to every open page.

        ``records`` are not needed: a page is sent the same JSON as the file.
        """
        del records
        self._recent.extend(lines)
        self.total += len(lines)
        if self._subscribers:
            data = _json(lines)
            total = self.total
            for subscriber in self._subscribers:
                self.dropped += subscriber.push(data, total)

    def flush(self) -> None:
        """Nothing is buffered for a file: pages take records as they come."""

    # -- pages ---------------------------------------------------------------

    def subscribe(
        self, wake: Callable[[], None], last_seen: int | None = None
    ) -> tuple[Subscriber, list[bytes]]:
        """Open a page's stream: its subscriber and the records it starts with.

        ``last_seen`` is the page's ``Last-Event-ID``: only newer records
        are returned.  A number beyond ``total`` comes from before a restart,
        so the page gets everything remembered.
        """
        recent = list(self._recent)
        if last_seen is not None and 0 <= last_seen <= self.total:
            first_seq = self.total - len(recent) + 1
            recent = recent[max(0, last_seen - first_seq + 1) :]
        subscriber = Subscriber(self.backlog, wake, self.total)
        if self.closed:
            subscriber.closed = True
        else:
            self._subscribers.append(subscriber)
        return subscriber, _json(recent)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a page whose stream has ended; twice is fine."""
        subscriber.closed = True
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def close(self) -> None:
        """End every stream (shutdown): each is marked closed and woken."""
        self.closed = True
        for subscriber in list(self._subscribers):
            subscriber.closed = True
            subscriber.wake()


def sse_records(lines: Sequence[bytes], last_seq: int) -> bytes:
    """``records`` events carrying JSON arrays, each with the id of its newest record."""
    out: list[bytes] = []
    first_seq = last_seq - len(lines) + 1
    for start in range(0, len(lines), MAX_PER_MESSAGE):
        chunk = lines[start : start + MAX_PER_MESSAGE]
        seq = first_seq + start + len(chunk) - 1
        out.append(b"id: %d\nevent: records\ndata: [%b]\n\n" % (seq, b",".join(chunk)))
    return b"".join(out)


def sse_dropped(count: int) -> bytes:
    """A ``dropped`` event: the page missed ``count`` records."""
    return b'event: dropped\ndata: {"count": %d}\n\n' % count
