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
    from netlog.forward.reader import Line

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
        self._connected = False
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
            "corrupt": self.reader.corrupt,
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
        stop_deadline: float | None = None
        while not stop.is_set():
            try:
                batch = self.reader.read()
            except OSError as exc:
                self._say(f"forward to {self.destination.name}: cannot read the store: {exc}")
                await _wait(stop, self.backoff.delay())
                continue
            if batch is None:
                self._save()
                await _wait(stop, self.poll)
                continue
            if batch.corrupt:
                self._say(
                    f"forward to {self.destination.name}: skipped {batch.corrupt} corrupt "
                    f"stored lines in {batch.position.name} ({self.reader.corrupt} in total)"
                )
            while batch.lines:
                try:
                    taken = await self._deliver(batch.lines, stop)
                except DestinationError as exc:
                    kind, text = exc.kind, exc.text
                except Exception as exc:  # noqa: BLE001 - a destination's bug must not end shipping
                    kind, text = "error", describe_exception(exc)
                else:
                    if taken:
                        break
                    return  # stopped with the batch not taken: the cursor stays before it
                delay = self.backoff.delay()
                self.failures.failed(kind, text, delay)
                if stop.is_set():
                    now = time.monotonic()
                    stop_deadline = stop_deadline or now + self.grace
                    if now >= stop_deadline:
                        return  # the batch stays unshipped: the cursor stays before it
                    await asyncio.sleep(min(delay, stop_deadline - now))
                else:
                    await _wait(stop, delay)
            self.backoff.reset()
            self.failures.succeeded()
            self.shipped += len(batch.lines)
            self.batches += 1
            self.committed = batch.position
            self._save()

    async def _deliver(self, lines: Sequence[Line], stop: asyncio.Event) -> bool:
        """Connect if need be and send; False when stopped ``grace`` seconds into it."""
        task = asyncio.create_task(self._connect_and_send(lines))
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                await asyncio.wait({task}, timeout=self.grace)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                return False
            task.result()  # raises the destination's refusal
            return True
        finally:
            stopped.cancel()

    async def _connect_and_send(self, lines: Sequence[Line]) -> None:
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
