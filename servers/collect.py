"""``netlog collect``: ``serve``'s store, HTTP port and viewer, fed by a JetStream consumer.

The choice, and why: nats-py is asyncio and the HTTP server, the viewer's
feed and the store's writer live on the gevent hub.  netlog does not
monkey-patch, so the two cannot share a loop.  The consumer
(:class:`netlog.forward.collector.Collector`) therefore runs in one OS
thread of its own with its own asyncio loop, and the gevent side is the
ordinary :class:`~servers.runner.Runner` with every log listener but HTTP
disabled.  They meet in one place, :class:`HubStore`: the consumer thread
hands a batch to the hub with ``loop.run_callback_threadsafe``, the hub
submits it to the pipeline (so the file, the console and the live viewer
see it like any record), flushes and fsyncs, and answers through the
asyncio loop's ``call_soon_threadsafe``; the consumer acks only then.
One batch (at most :data:`~netlog.forward.collector.BATCH` messages) is in
flight at a time, so what waits in memory is bounded by the batch.

A second process reading the same store was the alternative; it was not
taken because the store's lock makes one log dir one writer's, and the
HTTP port also takes ``POST /log``, so it would have to be the writer too.

At SIGTERM the runner's drain starts by asking the consumer to stop: the
batch in hand is written, fsynced and acked, the connection closed, and
then the usual shutdown flushes, fsyncs and prints the summary.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, TextIO, TypeVar

import gevent
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector as MetricsCollector

from netlog.forward.collector import (
    CollectCounts,
    CollectOptions,
    Collector,
    Outcome,
    RecentIds,
    stored_ids,
)
from netlog.record import Record
from netlog.settings import Settings
from servers.runner import Runner

__all__ = ["CollectRunner", "HubStore", "collect"]

#: How long the shutdown waits for the consumer to finish its batch beyond ``--grace``.
STOP_GRACE = 10.0
#: Seconds the consumer waits between fsync and ack: for the crash tests only
#: (``NETLOG_COLLECT_ACK_DELAY``), so a kill -9 can land between the two.
ACK_DELAY_ENV = "NETLOG_COLLECT_ACK_DELAY"

_T = TypeVar("_T")


class HubStore:
    """The consumer thread's way to the store: each call runs on the gevent hub.

    Every method is a coroutine of the consumer's asyncio loop; the work is
    done by a callback on the hub (which never switches greenlets inside it,
    so it is never caught half-way), and the answer comes back with
    ``call_soon_threadsafe``.
    """

    def __init__(self, runner: Runner, ack_delay: float = 0.0) -> None:
        self.runner = runner
        self.hub_loop = gevent.get_hub().loop
        self.ack_delay = ack_delay

    async def write(self, records: Sequence[Record], junk: int, duplicates: int) -> Outcome:
        """Submit, write and fsync ``records`` on the hub; count the skipped messages."""
        outcome = await self._on_hub(self._write, records, junk, duplicates)
        if self.ack_delay and records:
            await asyncio.sleep(self.ack_delay)
        return outcome

    async def sync(self) -> Outcome:
        """Write and fsync again what a full disk left queued."""
        return await self._on_hub(self._sync)

    def report(self, text: str, key: str) -> None:
        """The runner's rate-limited reporter, called on the hub (it is not thread-safe)."""
        self.hub_loop.run_callback_threadsafe(self.runner.report, text, key)

    async def _on_hub(self, work: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[_T] = loop.create_future()

        def settle(value: Any, *, failed: bool) -> None:
            if answer.done():
                return
            if failed:
                answer.set_exception(value)
            else:
                answer.set_result(value)

        def run() -> None:
            try:
                value = work(*args)
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, which reports it
                loop.call_soon_threadsafe(partial(settle, exc, failed=True))
                return
            loop.call_soon_threadsafe(partial(settle, value, failed=False))

        self.hub_loop.run_callback_threadsafe(run)
        return await answer

    def _write(self, records: Sequence[Record], junk: int, duplicates: int) -> Outcome:
        runner = self.runner
        if junk:
            runner.stats.bad_frames["not_a_record"] += junk
            runner.stats.dropped["not_a_record"] += junk
        if duplicates:
            runner.stats.notes["duplicate_skipped"] += duplicates
        if not records:
            return Outcome.WRITTEN
        assert runner.pipeline is not None
        assert runner.files is not None
        self._dropped = runner.files.dropped
        runner.pipeline.submit(records)
        return self._sync()

    def _sync(self) -> Outcome:
        files = self.runner.files
        assert files is not None
        errors = files.write_errors
        files.sync()
        if files.dropped != self._dropped:
            self._dropped = files.dropped
            return Outcome.LOST
        if files.pending_lines or files.write_errors != errors:
            return Outcome.WAITING
        return Outcome.WRITTEN

    _dropped = 0


class _CollectMetrics(MetricsCollector):
    """``netlog_collect_*`` on ``/metrics``: read from the consumer's counts when scraped."""

    def __init__(self, counts: CollectCounts) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        c = self.counts
        for name, text, value in (
            ("records", "Records collected from the stream and written.", c.records),
            ("duplicates", "Redelivered or resent records skipped by id.", c.duplicates),
            ("junk", "Messages on the stream that were not records (AckTerm).", c.junk),
            ("engine_errors", "NATS errors (each retried with backoff).", c.engine_errors),
        ):
            yield CounterMetricFamily(f"netlog_collect_{name}", text, value=value)


class CollectRunner(Runner):
    """The serve runner with the consumer thread started after it and stopped first."""

    def __init__(
        self,
        settings: Settings,
        options: CollectOptions,
        *,
        stderr: TextIO | None = None,
        early_signals: list[int] | None = None,
    ) -> None:
        super().__init__(settings, stderr=stderr, early_signals=early_signals)
        self.options = options
        self.collector: Collector | None = None
        self._thread: threading.Thread | None = None

    def _record_ports(self) -> list[int]:
        # The consumer takes records even with the HTTP port disabled.
        return [*super()._record_ports(), 0]

    def _start(self) -> None:
        super()._start()
        ack_delay = float(os.environ.get(ACK_DELAY_ENV) or 0)
        store = HubStore(self, ack_delay)
        memory = RecentIds(ids=stored_ids(self.settings.log_dir))
        self.collector = Collector(self.options, store, memory, store.report)
        if self.metrics is not None:
            self.metrics.registry.register(_CollectMetrics(self.collector.counts))
        self._thread = threading.Thread(
            target=asyncio.run, args=(self.collector.run(),), name="netlog-collect", daemon=True
        )
        self._thread.start()
        self.report.write(
            f"netlog collect: consuming stream {self.options.stream} as {self.options.consumer}"
            f" from {','.join(self.options.urls)} ({len(memory)} ids remembered from the store)"
        )

    def _shutdown(self) -> None:
        thread, collector = self._thread, self.collector
        if thread is not None and collector is not None:
            collector.request_stop()
            deadline = time.monotonic() + self.settings.grace + STOP_GRACE
            # The hub keeps running while we wait: the batch in hand needs it.
            while thread.is_alive() and time.monotonic() < deadline:
                gevent.sleep(0.02)
            if thread.is_alive():
                # Written and fsynced but maybe not acked: delivered again to the
                # next run, which finds the ids in the store and skips them.
                self.report("collect: the consumer did not stop in time")
        super()._shutdown()


def collect(
    settings: Settings,
    options: CollectOptions,
    *,
    early_signals: list[int] | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``netlog collect``; the exit status."""
    return CollectRunner(settings, options, stderr=stderr, early_signals=early_signals).run()
