"""``netlog collect``'s consumer: records from a JetStream stream into this process's store.

Each host's forwarder publishes every stored line to ``<prefix>.<host>``
with ``Nats-Msg-Id`` set to the record's id.  The collector reads the
stream with one durable pull consumer (explicit acks) and, per fetched
batch: turns each message back into a :class:`~netlog.record.Record` with
its ``host`` (:func:`record_from_message`), skips the ids it has already
written (:class:`RecentIds`), hands the rest to the store and waits until
they are written *and fsynced*, and only then acks the batch.  A crash
before the ack makes JetStream deliver the batch again after ``ack_wait``;
the ids are then found in the store's tail (loaded at start by
:func:`stored_ids`) and acked without being written twice.

What bounds the memory of ids, and why it is enough: a message comes back
only if its ack did not reach the server within ``ack_wait`` (a crash
between fsync and ack, acks lost with a connection or a leader change, a
batch slower than ``ack_wait``).  While it waits, at most
:data:`MAX_ACK_PENDING` messages are un-acked, and every record written
meanwhile was fetched and written by this one consumer, one batch at a
time; so a redelivered id was written at most ``MAX_ACK_PENDING + rate x
ack_wait`` records ago.  :data:`MEMORY` ids (262,144, about 30 MB) covers
that with the default 30 s ``ack_wait`` up to 8,700 records/s, above the
rate at which one collector drains a backlog on the machine it was measured
on (about 8,000/s, ``bench/collect.py``); a shorter ``--nats-ack-wait``
widens the margin.  The same memory also catches a forwarder's resend that
JetStream's own duplicate window (2 minutes) let through, while it is that
recent.

A message that is not a netlog record (not a JSON object with an id and
times) is counted and terminated with ``AckTerm``: JetStream never
delivers it again and publishes a ``MSG_TERMINATED`` advisory naming it,
so an operator can find what was published there.

nats-py is asyncio and the rest of netlog is gevent: this module knows
neither gevent nor the store's writer.  It runs in a thread of its own
with its own event loop and reaches the store only through a
:class:`BatchStore` (``servers/collect.py`` hands each batch to the gevent
hub and answers once it is fsynced).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import orjson

from netlog.decode.normalize import parse_timestamp
from netlog.record import ID_LENGTH, Record
from netlog.sinks.encode import line_id
from netlog.store.reader import close_files, last_lines, open_files
from netlog.store.records import record_from_json
from netlog.store.writer import FILE_NAME, rotated_paths

__all__ = [
    "DEFAULT_CONSUMER",
    "BatchStore",
    "CollectOptions",
    "Collector",
    "NotARecordError",
    "Outcome",
    "RecentIds",
    "host_of",
    "record_from_message",
    "stored_ids",
]

DEFAULT_CONSUMER: Final = "netlog-collect"
DEFAULT_STREAM: Final = "NETLOG"
DEFAULT_ACK_WAIT: Final = 30.0
#: Messages fetched, written and acked together: one fsync per batch.
BATCH: Final = 256
#: The consumer's ``max_ack_pending``: un-acked messages JetStream lets out at once.
MAX_ACK_PENDING: Final = 1024
#: Ids remembered (and loaded from the store's tail at start); see the module docstring.
MEMORY: Final = 262_144
#: How long one fetch waits for messages before the loop looks at ``stop`` again.
FETCH_WAIT: Final = 1.0
#: Backoff between attempts after an engine error, seconds.
BACKOFF_FIRST: Final = 0.5
BACKOFF_MAX: Final = 5.0


class NotARecordError(ValueError):
    """A message on the stream that is not a netlog record."""


class Outcome(enum.Enum):
    """What the store says of a batch it was handed."""

    WRITTEN = "written"
    """Every line is in the file and fsynced: ack."""
    WAITING = "waiting"
    """Still queued (a full disk, an fsync error): ask again, do not ack yet."""
    LOST = "lost"
    """The store dropped queued lines: do not ack, let JetStream deliver again."""


class BatchStore(Protocol):
    """Where the collector's records go; every call may come from the collector's thread."""

    async def write(self, records: Sequence[Record], junk: int, duplicates: int) -> Outcome:
        """Queue ``records``, write and fsync them; count the skipped messages."""
        ...

    async def sync(self) -> Outcome:
        """Try again to write and fsync what an earlier :meth:`write` left queued."""
        ...


@dataclass(frozen=True, slots=True)
class CollectOptions:
    """What ``netlog collect`` is told about the engine."""

    urls: tuple[str, ...]
    stream: str = DEFAULT_STREAM
    consumer: str = DEFAULT_CONSUMER
    ack_wait: float = DEFAULT_ACK_WAIT


def host_of(subject: str) -> str:
    """The sending machine a subject names: its last token (``netlog.records.web1``: ``web1``)."""
    return subject.rpartition(".")[2]


def _is_id(value: object) -> bool:
    return type(value) is str and len(value) == ID_LENGTH and value.isascii() and value.isalnum()


def record_from_message(subject: str, data: bytes) -> Record:
    """One stream message (a stored JSON line) as the record it holds, with its ``host``.

    The record keeps its ``id``, ``ts``, ``received``, ``peer`` and every
    other key; ``host`` is the record's own when it has one (it went through
    another collector first), else the subject's last token.  Raises
    :class:`NotARecordError` for anything that is not a netlog record.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise NotARecordError("not JSON") from None
    if type(obj) is not dict:
        raise NotARecordError("not a JSON object")
    if not _is_id(obj.get("id")):
        raise NotARecordError("no record id")
    if parse_timestamp(obj.get("ts")) is None or parse_timestamp(obj.get("received")) is None:
        raise NotARecordError("no record times")
    own = obj.get("host")
    host = own if type(own) is str and own else host_of(subject)
    if not host:
        raise NotARecordError("no host in the subject")
    return record_from_json(obj)._replace(host=host)


class RecentIds:
    """The last ``limit`` ids written, for dropping redeliveries; oldest forgotten first."""

    def __init__(self, limit: int = MEMORY, ids: Iterable[str] = ()) -> None:
        self.limit = limit
        self._order: deque[str] = deque()
        self._known: set[str] = set()
        self.extend(ids)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._known

    def __len__(self) -> int:
        return len(self._known)

    def extend(self, ids: Iterable[str]) -> None:
        """Remember ``ids`` as the newest written, forgetting the oldest beyond the limit."""
        for record_id in ids:
            if record_id in self._known:
                continue
            self._order.append(record_id)
            self._known.add(record_id)
            if len(self._order) > self.limit:
                self._known.discard(self._order.popleft())


def _stored_id(line: bytes) -> str | None:
    return line_id(line + b"\n") or None


def stored_ids(log_dir: Path, limit: int = MEMORY) -> list[str]:
    """The ids of the last ``limit`` records in the store, oldest first (read backwards)."""
    files = open_files(rotated_paths(log_dir), log_dir / FILE_NAME, log_dir=True)
    try:
        return [record_id for _line, record_id in last_lines(files, limit, _stored_id)]
    finally:
        close_files(files)


@dataclass(slots=True)
class CollectCounts:
    """What the collector did; written by its thread only, read by anyone."""

    records: int = 0
    duplicates: int = 0
    junk: int = 0
    batches: int = 0
    engine_errors: int = 0


class Collector:
    """The durable pull consumer loop; ``run`` in an asyncio loop of its own.

    ``report(text, key)`` is the process's rate-limited reporter (called from
    this thread: it must be thread-safe or hand over).  :meth:`request_stop`
    may be called from any thread: the batch in hand is finished (written,
    fsynced, acked) and ``run`` returns.
    """

    def __init__(
        self,
        options: CollectOptions,
        store: BatchStore,
        memory: RecentIds,
        report: Callable[[str, str], None],
    ) -> None:
        self.options = options
        self.store = store
        self.memory = memory
        self.report = report
        self.counts = CollectCounts()
        self._stop_flag = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._busy = False

    def request_stop(self) -> None:
        """Finish the batch in hand, then return from :meth:`run`; thread-safe."""
        self._stop_flag.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stop.set)

    async def run(self) -> None:
        """Consume until :meth:`request_stop`, reconnecting with backoff after any engine error."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_flag.is_set():
            return
        delay = BACKOFF_FIRST
        while not self._stop.is_set():
            session = asyncio.ensure_future(self._session())
            stopped = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({session, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not session.done() and not self._busy:
                session.cancel()  # connecting or binding: nothing in hand
            await asyncio.wait({session})  # a batch in hand is finished first
            stopped.cancel()
            error = None if session.cancelled() else session.exception()
            if error is None:
                delay = BACKOFF_FIRST
                continue
            self.counts.engine_errors += 1
            self.report(f"collect: NATS: {_describe(error)}; retrying", "collect:engine")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _session(self) -> None:
        """One connection: bind the durable consumer, then fetch, write, ack until stopped."""
        # nats-py is imported here, not with the module: every ``netlog`` command
        # imports the CLI, and only ``collect`` talks to NATS.
        import nats  # noqa: PLC0415
        import nats.errors  # noqa: PLC0415
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy  # noqa: PLC0415

        assert self._stop is not None
        options = self.options
        client = await nats.connect(
            servers=list(options.urls),
            connect_timeout=2,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,
            error_cb=self._quiet,
            disconnected_cb=self._nothing,
            reconnected_cb=self._nothing,
            closed_cb=self._nothing,
        )
        try:
            stream = client.jetstream()
            config = ConsumerConfig(
                name=options.consumer,
                durable_name=options.consumer,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=options.ack_wait,
                max_deliver=-1,
                max_ack_pending=MAX_ACK_PENDING,
            )
            await stream.add_consumer(options.stream, config)
            subscription = await stream.pull_subscribe_bind(
                durable=options.consumer, stream=options.stream
            )
            while not self._stop.is_set():
                # Busy from the fetch on: a fetch cancelled after the server sent
                # its messages would leave them un-acked until ack_wait, so a stop
                # lets it end (FETCH_WAIT at most) and finishes what it brought.
                self._busy = True
                try:
                    messages = await subscription.fetch(BATCH, timeout=FETCH_WAIT)
                except nats.errors.TimeoutError:
                    continue
                else:
                    await self._take(messages)
                    await client.flush(timeout=5)
                finally:
                    self._busy = False
        finally:
            with contextlib.suppress(Exception):
                await client.close()

    async def _take(self, messages: Sequence[Any]) -> None:
        """Write a fetched batch, fsync it, then ack it (junk: AckTerm)."""
        records: list[Record] = []
        keep: list[Any] = []
        junk: list[Any] = []
        seen: set[str] = set()
        duplicates = 0
        for message in messages:
            try:
                record = record_from_message(message.subject, message.data)
            except NotARecordError:
                junk.append(message)
                continue
            if record.id in self.memory or record.id in seen:
                duplicates += 1
            else:
                seen.add(record.id)
                records.append(record)
            keep.append(message)
        outcome = await self.store.write(records, len(junk), duplicates)
        delay = BACKOFF_FIRST
        while outcome is Outcome.WAITING:
            # The lines are queued in the store; nothing new is fetched (and
            # nothing acked) until they are on disk.  A stop gives up waiting:
            # JetStream delivers the batch again to the next run.
            assert self._stop is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            if self._stop.is_set():
                return
            delay = min(delay * 2, BACKOFF_MAX)
            outcome = await self.store.sync()
        for message in junk:
            await message.term()
        self.counts.junk += len(junk)
        self.counts.batches += 1
        if outcome is Outcome.LOST:
            self.report(
                "collect: the store dropped queued records; not acknowledging "
                f"{len(keep)} messages, JetStream will deliver them again",
                "collect:lost",
            )
            return
        self.memory.extend(record.id for record in records)
        self.counts.records += len(records)
        self.counts.duplicates += duplicates
        for message in keep:
            await message.ack()

    async def _quiet(self, error: Exception) -> None:
        """nats-py's error callback: counted; the session's own failure is what is reported."""
        del error
        self.counts.engine_errors += 1

    async def _nothing(self) -> None:
        """nats-py calls these on (dis)connection; the reconnecting is its own."""


def _describe(error: BaseException) -> str:
    import nats.errors  # noqa: PLC0415 - see Collector._session
    import nats.js.errors  # noqa: PLC0415

    text = str(error) or type(error).__name__
    if isinstance(error, nats.js.errors.NotFoundError):
        return f"stream not found (is any forwarder running?): {text}"
    if isinstance(error, nats.errors.NoServersError):
        return "no server reachable"
    if isinstance(error, nats.js.errors.ServiceUnavailableError):
        return "JetStream unavailable (no leader yet?)"
    return text
