"""The live viewer's feed: the newest records in memory, fanned out to each open page.

Sans-IO like the decoders: nothing here blocks or knows about gevent.  The
HTTP server subscribes one :class:`Subscriber` per ``GET /events`` stream
and passes a ``wake`` callback (setting a gevent ``Event``); the feed calls
it when records arrive, and the stream's greenlet takes what is pending.

The feed sits on the pipeline's hot path, so it works per batch, never per
record: with no page open a batch costs a ``sum(map(len, ...))`` and a deque
append.  It never encodes a normal record: the pipeline hands it the JSON
lines it encoded once for every sink, and the feed keeps references to those
same ``bytes``.  Every page shares them: a page's backlog is references, not
copies, and its stream is built one bounded message at a time
(:func:`sse_messages`).

Everything is bounded in bytes as well as in records (issue 15, item 4):

* the feed remembers at most :data:`DEFAULT_RECENT` records and
  :data:`RECENT_BYTES` bytes;
* a record whose line is over :data:`DISPLAY_BYTES` is shown cut, with
  ``"truncated": <its size on disk>`` (the file has it whole);
* a page may have at most :data:`DEFAULT_BACKLOG` records and
  :data:`BACKLOG_BYTES` bytes pending, its first records included; a page
  that cannot keep up loses the oldest, and the loss is counted and told to
  the page (``event: dropped``);
* at most :data:`MAX_SUBSCRIBERS` pages are served at once (:attr:`RecordFeed.full`).

So the viewer holds at most ``RECENT_BYTES`` plus, per page,
``BACKLOG_BYTES`` and one message (:data:`MESSAGE_BYTES`) in flight.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate, chain
from typing import Final

from netlog.record import Record
from netlog.sinks.encode import encode_line, line_id

__all__ = [
    "BACKLOG_BYTES",
    "DEFAULT_BACKLOG",
    "DEFAULT_RECENT",
    "DISPLAY_BYTES",
    "MAX_PER_MESSAGE",
    "MAX_SUBSCRIBERS",
    "MESSAGE_BYTES",
    "RECENT_BYTES",
    "RecordFeed",
    "Subscriber",
    "shown_line",
    "sse_dropped",
    "sse_messages",
    "sse_records",
]

#: Records kept for a page that connects: it starts with these.
DEFAULT_RECENT: Final = 200
#: Bytes of those records, at most.
RECENT_BYTES: Final = 1 << 20
#: Records a page may have pending before the oldest are dropped.
DEFAULT_BACKLOG: Final = 5000
#: Bytes a page may have pending (its first records included) before the oldest are dropped.
BACKLOG_BYTES: Final = 1 << 20
#: A record whose JSON line is longer is shown cut (the file keeps it whole).
DISPLAY_BYTES: Final = 16 * 1024
#: Records per server-sent event, so one message never grows huge.
MAX_PER_MESSAGE: Final = 500
#: Bytes per server-sent event (one record more when a single record is larger).
MESSAGE_BYTES: Final = 64 * 1024
#: Pages served at once; ``GET /events`` beyond answers 503.
MAX_SUBSCRIBERS: Final = 32

#: Characters of a cut message (and half as many of a cut traceback).
_SHOWN_CHARS: Final = (DISPLAY_BYTES // 2, DISPLAY_BYTES // 8)
_SHOWN_LOGGER: Final = 256
_SHOWN_LEVEL: Final = 64


def _cut(text: object, chars: int) -> str:
    text = text if isinstance(text, str) else str(text)
    return text if len(text) <= chars else text[:chars] + "\u2026 [cut for display]"


def shown_line(record: Record, line: bytes) -> bytes:
    """``line`` as a page is shown it: itself, or cut to about :data:`DISPLAY_BYTES`.

    A cut record keeps its time, level, logger, peer and format, the start of
    its message and traceback, its ``fields`` when they are small, and gains
    ``"truncated": <bytes of the whole line>``; it keeps the line's ``id``,
    so the viewer's permalink finds the whole record.  Runs only for lines over
    the limit, so its cost is paid by the large records alone.
    """
    size = len(line)
    if size <= DISPLAY_BYTES:
        return line
    message, exc, fields = record.message, record.exc, record.fields
    record_id = line_id(line)
    text_size = len(message) if isinstance(message, str) else 0
    text_size += len(exc) if isinstance(exc, str) else 0
    keep_fields = isinstance(fields, dict) and size - text_size < DISPLAY_BYTES // 4
    base = record._replace(
        level=_cut(record.level, _SHOWN_LEVEL),
        logger=_cut(record.logger, _SHOWN_LOGGER),
        fields=fields if keep_fields else {},
    )
    for chars in _SHOWN_CHARS:
        short = base._replace(
            message=_cut(message, chars), exc=None if exc is None else _cut(exc, chars // 2)
        )
        cut = encode_line(short, record_id)
        if len(cut) <= DISPLAY_BYTES:
            break
    else:
        gist = base._replace(message="[a record too large to show]", exc=None, fields={})
        cut = encode_line(gist, record_id)
    # encode_line ends every line with "}\n": the mark goes in before it.
    return cut[:-2] + b',"truncated":%d}\n' % size


def _newest(lines: Sequence[bytes], max_records: int, max_bytes: int) -> Sequence[bytes]:
    """The newest of ``lines`` that fit in ``max_records`` and ``max_bytes``."""
    if len(lines) > max_records:
        lines = lines[len(lines) - max_records :]
    sums = list(accumulate(map(len, reversed(lines))))
    keep = bisect_right(sums, max_bytes)
    return lines[len(lines) - keep :] if keep < len(lines) else lines


class _Window:
    """The newest lines in batches, bounded in records and bytes; lines shared, never copied."""

    __slots__ = ("batches", "count", "max_bytes", "max_records", "size")

    def __init__(self, max_records: int, max_bytes: int) -> None:
        self.batches: deque[tuple[Sequence[bytes], int]] = deque()
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.count = 0
        self.size = 0

    def push(self, lines: Sequence[bytes], size: int) -> int:
        """Add a batch (``size`` = its bytes); the number of old lines pushed out."""
        self.batches.append((lines, size))
        self.count += len(lines)
        self.size += size
        if self.count > self.max_records or self.size > self.max_bytes:
            return self._shed()
        return 0

    def _shed(self) -> int:
        lost = 0
        batches = self.batches
        while self.count > self.max_records or self.size > self.max_bytes:
            lines, size = batches[0]
            need_records = self.count - self.max_records
            need_bytes = self.size - self.max_bytes
            if need_records >= len(lines) or need_bytes >= size:
                batches.popleft()
                self.count -= len(lines)
                self.size -= size
                lost += len(lines)
                continue
            sums = list(accumulate(map(len, lines)))
            cut = max(need_records, bisect_left(sums, need_bytes) + 1 if need_bytes > 0 else 0)
            batches[0] = (lines[cut:], size - sums[cut - 1])
            self.count -= cut
            self.size -= sums[cut - 1]
            lost += cut
        return lost

    def lines(self) -> list[bytes]:
        """Every line held, oldest first (references)."""
        return list(chain.from_iterable(lines for lines, _ in self.batches))

    def clear(self) -> None:
        self.batches.clear()
        self.count = self.size = 0


class Subscriber:
    """One open page: its pending JSON lines and what it has lost."""

    __slots__ = ("closed", "dropped", "last_seq", "pending", "wake")

    def __init__(
        self,
        backlog: int,
        wake: Callable[[], None],
        last_seq: int,
        backlog_bytes: int = BACKLOG_BYTES,
    ) -> None:
        self.pending = _Window(backlog, backlog_bytes)
        self.wake = wake
        self.last_seq = last_seq
        """Sequence number of the newest record given to this page."""
        self.dropped = 0
        """Records dropped since the last :meth:`take`."""
        self.closed = False

    def push(self, lines: Sequence[bytes], size: int, last_seq: int) -> int:
        """Queue a batch of lines (``size`` bytes in all); the number of old ones pushed out."""
        lost = self.pending.push(lines, size)
        self.last_seq = last_seq
        self.dropped += lost
        self.wake()
        return lost

    def take(self) -> tuple[list[bytes], int, int]:
        """Everything pending: (JSON lines, newest sequence number, dropped count)."""
        lines = self.pending.lines()
        self.pending.clear()
        dropped, self.dropped = self.dropped, 0
        return lines, self.last_seq, dropped


class RecordFeed:
    """A pipeline sink that remembers the newest records and feeds open pages.

    Records are numbered from 1 in arrival order (``total`` is the newest
    number); a page that reconnects with ``Last-Event-ID`` gets only what it
    has not seen, as far as the memory reaches.
    """

    def __init__(
        self,
        recent: int = DEFAULT_RECENT,
        backlog: int = DEFAULT_BACKLOG,
        *,
        recent_bytes: int = RECENT_BYTES,
        backlog_bytes: int = BACKLOG_BYTES,
        max_subscribers: int = MAX_SUBSCRIBERS,
    ) -> None:
        # The newest records as the pipeline encoded them (newline included).
        self._recent = _Window(recent, recent_bytes)
        self._subscribers: list[Subscriber] = []
        self.backlog = backlog
        self.backlog_bytes = backlog_bytes
        self.max_subscribers = max_subscribers
        self.total = 0
        """Records seen since start; also the newest record's sequence number."""
        self.dropped = 0
        """Records not delivered to pages too slow to take them, in total."""
        self.refused = 0
        """Pages refused because :data:`MAX_SUBSCRIBERS` were open."""
        self.closed = False

    @property
    def subscribers(self) -> int:
        """Pages connected now."""
        return len(self._subscribers)

    @property
    def full(self) -> bool:
        """Whether a new page must be refused (and counted with :meth:`refuse`)."""
        return len(self._subscribers) >= self.max_subscribers

    @property
    def recent_bytes(self) -> int:
        """Bytes of the records remembered now."""
        return self._recent.size

    def refuse(self) -> None:
        """Count a page turned away because the feed is :attr:`full`."""
        self.refused += 1

    # -- the Sink protocol ---------------------------------------------------

    def write_batch(self, records: Sequence[Record], lines: Sequence[bytes]) -> None:
        """Remember a batch's encoded ``lines`` and hand them to every open page.

        A page is sent the same JSON as the file, except that a line over
        :data:`DISPLAY_BYTES` is cut (:func:`shown_line`).
        """
        if not lines:
            return
        size = sum(map(len, lines))
        if size > DISPLAY_BYTES and max(map(len, lines)) > DISPLAY_BYTES:
            lines = [shown_line(r, line) for r, line in zip(records, lines, strict=True)]
            size = sum(map(len, lines))
        self._recent.push(lines, size)
        self.total += len(lines)
        total = self.total
        for subscriber in self._subscribers:
            self.dropped += subscriber.push(lines, size, total)

    def flush(self) -> None:
        """Nothing is buffered for a file: pages take records as they come."""

    # -- pages ---------------------------------------------------------------

    def subscribe(
        self, wake: Callable[[], None], last_seen: int | None = None
    ) -> tuple[Subscriber, Sequence[bytes]]:
        """Open a page's stream: its subscriber and the lines it starts with.

        ``last_seen`` is the page's ``Last-Event-ID``: only newer records
        are returned.  A number beyond ``total`` comes from before a restart,
        so the page gets everything remembered.  The first lines are the
        newest that fit in the page's own bounds, and are references to
        the feed's, not copies.
        """
        recent: Sequence[bytes] = self._recent.lines()
        if last_seen is not None and 0 <= last_seen <= self.total:
            first_seq = self.total - len(recent) + 1
            recent = recent[max(0, last_seen - first_seq + 1) :]
        first = _newest(recent, self.backlog, self.backlog_bytes)
        subscriber = Subscriber(self.backlog, wake, self.total, self.backlog_bytes)
        if self.closed:
            subscriber.closed = True
        else:
            self._subscribers.append(subscriber)
        return subscriber, first

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


def sse_messages(lines: Sequence[bytes], last_seq: int) -> Iterator[bytes]:
    r"""``records`` events carrying JSON arrays, one at a time, each with its newest record's id.

    Each event holds at most :data:`MAX_PER_MESSAGE` records and about
    :data:`MESSAGE_BYTES`, so a stream holds one such message at a time,
    never a copy of its whole backlog.  ``lines`` may end in ``\n`` or not:
    encode_line escapes every line break inside strings, so the only ones
    are line ends, removed here to leave the one line an SSE ``data:``
    field needs.
    """
    first_seq = last_seq - len(lines) + 1
    start = 0
    while start < len(lines):
        chunk = lines[start : start + MAX_PER_MESSAGE]
        sums = list(accumulate(map(len, chunk)))
        count = max(1, bisect_right(sums, MESSAGE_BYTES))
        chunk = chunk[:count]
        seq = first_seq + start + count - 1
        data = b",".join(chunk).replace(b"\n", b"")
        yield b"id: %d\nevent: records\ndata: [%b]\n\n" % (seq, data)
        start += count


def sse_records(lines: Sequence[bytes], last_seq: int) -> bytes:
    """Every event of :func:`sse_messages` in one ``bytes`` (for small batches and tests)."""
    return b"".join(sse_messages(lines, last_seq))


def sse_dropped(count: int) -> bytes:
    """A ``dropped`` event: the page missed ``count`` records."""
    return b'event: dropped\ndata: {"count": %d}\n\n' % count
