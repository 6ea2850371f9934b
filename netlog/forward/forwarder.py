"""The forwarder: one shipping loop per destination, each with its own cursor.

It runs in its own process (``python -m netlog.forward``, started by
``netlog serve``), on asyncio: nats-py is asyncio and the sink is gevent,
and the two never share a loop or a process.  Each destination has a
:class:`Shipper`: read a batch from the store at its cursor, hand it to the
destination, and only when it was taken move the cursor past it, so one
slow or refusing destination holds back only itself.  A refused batch is
retried with exponential backoff and jitter (0.5 s doubling to 30 s);
each kind of refusal is said once until shipping works again.  When caught
up it polls the store (a ``stat`` and a ``pread``) every ``poll`` seconds.

On stop (SIGTERM) each shipper lets the batch in flight finish (or, when its
destination is refusing, gives up on it after ``grace``), saves its cursor
and returns; every ``STATUS_INTERVAL`` the forwarder writes
``<log-dir>/.forward-status.json`` atomically, which the sink's
``/metrics`` reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from netlog.forward.failures import DestinationError, FailureLog
from netlog.forward.positions import PositionsFile, positions_path
from netlog.forward.reader import StoreReader
from netlog.report import describe_exception

if TYPE_CHECKING:
    from netlog.forward.destination import Destination
    from netlog.forward.positions import Position
    from netlog.forward.reader import Batch, Line

__all__ = ["STATUS_NAME", "Backoff", "Forwarder", "Shipper", "read_status"]

#: The status file the sink's ``/metrics`` reads.
STATUS_NAME: Final = ".forward-status.json"
#: Seconds between status files.
STATUS_INTERVAL: Final = 1.0
#: Seconds between looks at the store when everything was shipped.
DEFAULT_POLL: Final = 0.2
#: Seconds a refused batch may keep being retried after the stop signal.
DEFAULT_GRACE: Final = 5.0


class Backoff:
    """Exponential delays with jitter: ``first`` doubling up to ``limit``, each 50-100% of it."""

    def __init__(self, first: float = 0.5, limit: float = 30.0) -> None:
        self.first = first
        self.limit = limit
        self._next = first

    def delay(self) -> float:
        """The next delay; the one after it is twice as long (up to the limit)."""
        base = self._next
        self._next = min(self.limit, base * 2)
        return random.uniform(base / 2, base)  # noqa: S311 - jitter, not secrecy

    def reset(self) -> None:
        """Start again from ``first``: the last attempt worked."""
        self._next = self.first


class Shipper:
    """Ships one destination from its own cursor; see the module docstring."""

    def __init__(
        self,
        log_dir: Path,
        destination: Destination,
        say: Callable[[str], None],
        *,
        poll: float = DEFAULT_POLL,
        grace: float = DEFAULT_GRACE,
        batch_count: int = 1000,
        batch_bytes: int = 1 << 20,
    ) -> None:
        self.destination = destination
        self.poll = poll
        self.grace = grace
        self._say = say
        self.positions = PositionsFile(positions_path(log_dir, destination.name))
        self.committed: Position | None = self.positions.load()
        self.reader = StoreReader(
            log_dir, self.committed, max_count=batch_count, max_bytes=batch_bytes, report=say
        )
        self.failures = FailureLog(destination.name, say)
        self.backoff = Backoff()
        self.shipped = 0
        """Records the destination took."""
        self.batches = 0
        self.corrupt = 0
        """Stored lines skipped as not records."""
        self.depth = max(1, int(getattr(destination, "pipeline", 1)))
        """Batches in flight at once: the destination's ``pipeline`` (1 unless it says more)."""
        self.log_dir = log_dir
        self.batch_count = batch_count
        self.batch_bytes = batch_bytes
        self._connected = False
        self._connect_lock = asyncio.Lock()
        self._stop_deadline: float | None = None
        self._final: dict[str, Any] | None = None

    def status(self) -> dict[str, Any]:
        """What ``/metrics`` shows for this destination."""
        if self._final is not None:
            return self._final
        try:
            behind = self.reader.behind()
        except OSError:
            behind = -1
        return {
            "shipped": self.shipped,
            "batches": self.batches,
            "behind_bytes": behind,
            "corrupt": self.corrupt,
            "lost_files": self.reader.lost_files,
            "failures": dict(self.failures.counts),
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Ship until ``stop`` is set; then save the cursor and close."""
        try:
            await self._loop(stop)
        finally:
            self._save(force=True)
            self._final = self.status()
            self.reader.close()
            await self.destination.close()

    async def _loop(self, stop: asyncio.Event) -> None:
        """Up to ``depth`` batches in flight; the cursor moves past each, in order, once taken."""
        pending: deque[tuple[asyncio.Task[None] | None, Batch]] = deque()
        try:
            while True:
                if not stop.is_set():
                    self._fill(pending)
                if not pending:
                    if stop.is_set():
                        return
                    self._save()
                    await _wait(stop, self.poll)
                    continue
                task, batch = pending[0]
                if task is not None:
                    if not await self._settle(task, stop):
                        return  # stopped with the batch not taken: the cursor stays before it
                    refusal = _refusal(task)
                    if refusal is not None:
                        self._rewind(pending)
                        delay = self.backoff.delay()
                        self.failures.failed(*refusal, delay)
                        if stop.is_set():
                            return
                        await _wait(stop, delay)
                        continue
                    self.backoff.reset()
                    self.failures.succeeded()
                pending.popleft()
                self._commit(batch)
        finally:
            for task, _ in pending:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    def _fill(self, pending: deque[tuple[asyncio.Task[None] | None, Batch]]) -> None:
        """Read batches and start sending them until ``depth`` are in flight or none is left."""
        while len(pending) < self.depth:
            try:
                batch = self.reader.read()
            except OSError as exc:
                self._say(f"forward to {self.destination.name}: cannot read the store: {exc}")
                return
            if batch is None:
                return
            task = asyncio.create_task(self._connect_and_send(batch.lines)) if batch.lines else None
            pending.append((task, batch))

    def _commit(self, batch: Batch) -> None:
        if batch.corrupt:
            self.corrupt += batch.corrupt
            self._say(
                f"forward to {self.destination.name}: skipped {batch.corrupt} corrupt "
                f"stored lines in {batch.position.name} ({self.corrupt} in total)"
            )
        self.shipped += len(batch.lines)
        self.batches += 1
        self.committed = batch.position
        self._save()

    def _rewind(self, pending: deque[tuple[asyncio.Task[None] | None, Batch]]) -> None:
        """A batch was refused: drop the ones after it and read again from the cursor."""
        for task, _ in pending:
            if task is not None:
                task.cancel()
        pending.clear()
        lost = self.reader.lost_files
        self.reader.close()
        self.reader = StoreReader(
            self.log_dir,
            self.committed,
            max_count=self.batch_count,
            max_bytes=self.batch_bytes,
            report=self._say,
        )
        self.reader.lost_files = lost

    async def _settle(self, task: asyncio.Task[None], stop: asyncio.Event) -> bool:
        """Wait for ``task``; once stopped, for ``grace`` more at most. Whether it is done."""
        if not stop.is_set():
            stopped = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
            if task.done():
                return True
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.grace
        remaining = self._stop_deadline - time.monotonic()
        if remaining > 0 and not task.done():
            await asyncio.wait({task}, timeout=remaining)
        return task.done()

    async def _connect_and_send(self, lines: Sequence[Line]) -> None:
        if not self._connected:
            async with self._connect_lock:
                if not self._connected:
                    await self.destination.connect()
                    self._connected = True
        await self.destination.send(lines)

    def _save(self, *, force: bool = False) -> None:
        if self.committed is None:
            return
        try:
            self.positions.save(self.committed, force=force)
        except OSError as exc:
            self._say(f"forward to {self.destination.name}: cannot save the position: {exc}")


def _refusal(task: asyncio.Task[None]) -> tuple[str, str] | None:
    """A finished send's failure as (kind, text); ``None`` when it was taken."""
    if task.cancelled():
        return ("error", "cancelled")
    exc = task.exception()
    if exc is None:
        return None
    if isinstance(exc, DestinationError):
        return (exc.kind, exc.text)
    return ("error", describe_exception(exc))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Forwarder:
    """Every destination's :class:`Shipper`, and the status file."""

    def __init__(
        self,
        log_dir: Path,
        destinations: Sequence[Destination],
        say: Callable[[str], None],
        *,
        poll: float = DEFAULT_POLL,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        self.log_dir = log_dir
        self.shippers = [Shipper(log_dir, d, say, poll=poll, grace=grace) for d in destinations]
        self._say = say

    async def run(self, stop: asyncio.Event) -> None:
        """Ship until ``stop``; every shipper saves its cursor before this returns."""
        status = asyncio.create_task(self._status_forever(stop))
        try:
            await asyncio.gather(*(shipper.run(stop) for shipper in self.shippers))
        finally:
            status.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status
            self.write_status()

    async def _status_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.write_status()
            await _wait(stop, STATUS_INTERVAL)

    def write_status(self) -> None:
        """Replace the status file atomically; a failure is said, never raised."""
        body = orjson.dumps(
            {
                "pid": os.getpid(),
                "updated": time.time(),
                "destinations": {s.destination.name: s.status() for s in self.shippers},
            }
        )
        try:
            fd, tmp = tempfile.mkstemp(prefix=".forward-status-", dir=self.log_dir)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(body)
                Path(tmp).replace(self.log_dir / STATUS_NAME)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            self._say(f"forward: cannot write {STATUS_NAME}: {exc}")


def read_status(log_dir: Path) -> dict[str, Any]:
    """The forwarder's last status (``{}`` when there is none): for ``/metrics``."""
    try:
        data = orjson.loads((log_dir / STATUS_NAME).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
