"""``netlog serve --workers N``: N worker processes share the ports, this process writes.

Who does what (ARCHITECTURE.md, "Every core"):

* each worker (``servers/worker_runner.py``) binds every TCP and UDP listener
  of the runner with ``SO_REUSEPORT`` (the kernel spreads connections and
  datagrams over them), decodes, gives ids, encodes, and hands batches of
  lines to this process over its own UNIX socket;
* this process is the one writer and the supervisor: it owns the store
  (one ``records.jsonl``, one place that rotates), the HTTP and OTLP ports
  (viewer, live feed, API, ``/metrics``, ``/health``, ``POST /log``), the
  forwarder, the ready file and the summary line.  It appends each batch
  whole with ``write_chunk``, passes its lines to the viewer's feed, answers a worker's
  flush once the batch is written, and adds up the counts each worker
  reports.

Back-pressure: a worker's socket buffer is bounded; while this process has
not read, the worker's ``sendall`` waits, its handlers stop reading, and
TCP slows the senders (UDP: the kernel drops and counts).  A worker that
dies is started again (1 s, doubling to 60 s); what it had decoded and not
handed over, as of its last report, is counted ``dropped["worker_died"]``.
"""

from __future__ import annotations

import contextlib
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, TextIO

import gevent
import gevent.event
import gevent.socket
import gevent.subprocess
import orjson

from netlog.record import Record
from netlog.settings import DISABLED, Settings
from netlog.sinks.handover import (
    CONFIG,
    DONE,
    FLUSH,
    HELLO,
    LINES,
    STATS,
    ack_frame,
    frame,
    split_lines,
)
from netlog.stats import Stats
from netlog.store.records import record_from_json
from servers.balance import Exchange
from servers.handover import Channel
from servers.logsink import FINAL_DECODE_LIMIT
from servers.runner import Runner, StartupError

#: Seconds a worker may take to start and bind before ``serve`` gives up.
START_TIMEOUT: Final = 60.0
#: Seconds past the grace a worker gets to hand over before it is killed:
#: its final decode (``FINAL_DECODE_LIMIT``) and a margin.
_STOP_MARGIN: Final = FINAL_DECODE_LIMIT + 10.0
_FIRST_DELAY: Final = 1.0
_MAX_DELAY: Final = 60.0
#: Seconds of running after which a worker's death counts as a fresh one.
_HEALTHY_AFTER: Final = 60.0
_PROBES: Final = ("answered", "rate_limited", "refused", "errors", "health_checks")


class LineRecords(Sequence[Record]):
    """A batch's records read back from its lines, only if the viewer's feed asks.

    The feed needs a record only to cut a line over its display limit;
    decoding every line again here would double the writer's work.
    """

    def __init__(self, lines: Sequence[bytes]) -> None:
        self._lines = lines

    def __len__(self) -> int:
        return len(self._lines)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [record_from_json(orjson.loads(line)) for line in self._lines[index]]
        return record_from_json(orjson.loads(self._lines[index]))


class ProbeTotals:
    """The UDP responder's counts added up over the workers (for ``/metrics``)."""

    def __init__(self) -> None:
        self.answered = self.rate_limited = self.refused = self.errors = self.health_checks = 0

    def set(self, totals: Counter[str]) -> None:
        """Take the sums."""
        for name in _PROBES:
            setattr(self, name, totals[name])


@dataclass
class WorkerSlot:
    """One worker's place: the process now in it, and what its past ones counted."""

    index: int
    process: Any = None
    channel: Channel | None = None
    ports: dict[str, int] = field(default_factory=dict)
    snapshot: dict[str, Any] = field(default_factory=dict)
    """Its latest report (``STATS``, ``DONE``)."""
    lines: int = 0
    """Lines received from the process now in the slot."""
    done: bool = False
    """The process said ``DONE``: everything it had was handed over."""
    restarts: int = 0
    records: int = 0
    """Lines received from every process that ran in this slot."""
    lost: int = 0
    """Records counted lost with the processes that died in this slot."""
    bound: gevent.event.Event = field(default_factory=gevent.event.Event)
    ended: gevent.event.Event = field(default_factory=gevent.event.Event)
    """Set when the slot's process exited and will not be started again."""


class Supervisor(Runner):
    """The parent of ``--workers N``: the writer, the HTTP side, and the workers' keeper."""

    def __init__(
        self,
        settings: Settings,
        *,
        stderr: TextIO | None = None,
        early_signals: list[int] | None = None,
    ) -> None:
        super().__init__(settings, stderr=stderr, early_signals=early_signals)
        self.slots = [WorkerSlot(index) for index in range(1, settings.workers + 1)]
        self.totals = Stats()
        """Everything counted, by this process and every worker (``/metrics``, the summary)."""
        self.retired = Stats()
        """What workers that have exited counted."""
        self.retired_probes: Counter[str] = Counter()
        self.probes = ProbeTotals()
        self.stopping = False
        self.started = False
        self._wake = gevent.event.Event()
        self.totals.readers.append(self.add_up)
        self.exchange: Exchange | None = None
        """The shared counts and queues that pass connections between workers."""

    # -- start-up -----------------------------------------------------------

    def _worker_settings(self) -> Settings:
        """The settings a worker runs with: no HTTP, no OTLP, no ready file, no forwarder."""
        return replace(
            self.settings, http_port=DISABLED, otlp_port=DISABLED, ready_file=None, workers=1
        )

    def _start(self) -> None:
        s = self.settings
        token = self._secure()
        if any(port != DISABLED for port in self._record_ports()):
            self._open_sinks()
        if self.metrics is not None:
            self.metrics.stats = self.totals
        if self.settings.workers > 1:
            self.exchange = Exchange(self.settings.workers)
        first = self.slots[0]
        self._start_slots([first], {})
        ports = first.ports
        self._start_slots(self.slots[1:], ports)
        self.started = True
        self._add_http()
        self._add_otlp()
        if self.metrics is not None:
            self.metrics.responder = self.probes if "responder" in ports else None
            self.metrics.workers = self.worker_counts
        own = {name: int(server.address[1]) for name, server in self._listeners}
        self._ready({**ports, **own})
        self._warn_if_exposed({**ports, **own}, token)
        self._start_forwarder()
        if self.pipeline is not None:
            observe = self.metrics.flush_seconds.observe if self.metrics is not None else None
            gevent.spawn(self._flush_forever, self.pipeline, s.flush_interval, observe)

    def _start_forwarder(self) -> None:
        from netlog.forward.config import child_env, destination_names  # noqa: PLC0415
        from servers.forward_child import ForwardChild  # noqa: PLC0415

        if self.files is not None and destination_names(self.settings):
            self.forward = ForwardChild(child_env(self.settings), self.report)
            self.forward.start()
            if self.metrics is not None:
                self.metrics.forward = self._forward_status

    def _start_slots(self, slots: Sequence[WorkerSlot], ports: dict[str, int]) -> None:
        """Start workers and wait until each is bound (or one failed: StartupError)."""
        for slot in slots:
            gevent.spawn(self._keep_running, slot, ports)
        deadline = time.monotonic() + START_TIMEOUT
        for slot in slots:
            while not slot.bound.is_set():
                if slot.ended.is_set():
                    raise StartupError(f"worker {slot.index} could not start (see above)")
                if time.monotonic() > deadline:
                    raise StartupError(f"worker {slot.index} did not start in {START_TIMEOUT:.0f}s")
                slot.bound.wait(0.05)

    def _launch(self, slot: WorkerSlot, ports: dict[str, int]) -> None:
        """Start one worker process on a fresh socketpair and send it its settings."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        exchange = self.exchange
        balance = exchange.pass_fds(slot.index - 1) if exchange is not None else ()
        try:
            slot.process = gevent.subprocess.Popen(
                [sys.executable, "-m", "servers.worker", str(theirs.fileno()), str(slot.index)],
                pass_fds=(theirs.fileno(), *balance),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        channel = slot.channel = Channel(
            gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=mine.detach())
        )
        config = {"settings": self._worker_settings(), "index": slot.index, "ports": ports}
        if exchange is not None:
            config["balance"] = exchange.config(slot.index - 1)
        channel.send(frame(CONFIG, pickle.dumps(config)))

    def _keep_running(self, slot: WorkerSlot, ports: dict[str, int]) -> None:
        """Run the slot's worker; start it again when it dies, until shutdown."""
        delay = _FIRST_DELAY
        try:
            while True:
                began = time.monotonic()
                try:
                    self._launch(slot, ports)
                except OSError as exc:
                    status = f"could not be started ({exc})"
                else:
                    if self.stopping:
                        slot.process.send_signal(signal.SIGTERM)
                    self._take_from(slot)
                    code = slot.process.wait()
                    status = f"exited with status {code}"
                if self.exchange is not None:
                    self.exchange.worker_exited(slot.index - 1)
                lost = self._retire(slot)
                if self.stopping or not self.started:
                    if lost is not None:
                        self._say_lost(slot, status, lost, "")
                    return
                if time.monotonic() - began > _HEALTHY_AFTER:
                    delay = _FIRST_DELAY
                slot.restarts += 1
                again = f"; starting it again in {delay:.0f}s ({slot.restarts} restarts so far)"
                self._say_lost(slot, status, lost, again)
                ports = self.slots[0].ports or ports
                self._wake.wait(delay)
                delay = min(_MAX_DELAY, delay * 2)
                if self.stopping:
                    return
        finally:
            slot.ended.set()

    def _say_lost(
        self, slot: WorkerSlot, status: str, lost: tuple[int, int, int] | None, again: str
    ) -> None:
        if lost is None:
            if again:
                self.report.write(f"netlog: worker {slot.index} {status}{again}")
            return
        records, unfinished, connections = lost
        self.report.write(
            f"netlog: worker {slot.index} {status} before handing everything over: "
            f"lost about {records} records it had decoded, {unfinished} bytes of unfinished "
            f"records and {connections} open connections (as of its last report){again}"
        )

    def _take_from(self, slot: WorkerSlot) -> None:
        """Read one worker's frames until it closes: lines to the store, counts, acks."""
        channel = slot.channel
        if channel is None:
            return
        for kind, seq, payload in channel.frames():
            if kind in (LINES, FLUSH):
                self._write(slot, payload)
                if kind == FLUSH:
                    self._acknowledge(channel, seq)
            elif kind == STATS:
                slot.snapshot = orjson.loads(payload)
            elif kind == DONE:
                slot.snapshot = orjson.loads(payload)
                slot.done = True
            elif kind == HELLO:
                slot.ports = {
                    str(name): int(port) for name, port in orjson.loads(payload)["ports"].items()
                }
                slot.bound.set()
        channel.close()

    def _write(self, slot: WorkerSlot, payload: bytes) -> None:
        """Append a worker's batch to the store and show it on the live feed.

        The file takes the batch as it came (one chunk of whole lines); only
        the live feed needs it cut into lines.
        """
        if not payload:
            return
        lines = split_lines(payload)
        slot.lines += len(lines)
        slot.records += len(lines)
        if self.files is not None:
            self.files.write_chunk(payload, len(lines))
        if self.feed is not None:
            self.feed.write_batch(LineRecords(lines), lines)

    def _acknowledge(self, channel: Channel, seq: int) -> None:
        """Write what is queued, then tell the worker (its Fluentd acks wait for this)."""
        pending = 0
        if self.files is not None:
            self.files.flush()
            pending = self.files.pending_lines
        with contextlib.suppress(OSError):
            channel.send(ack_frame(seq, pending))

    def _retire(self, slot: WorkerSlot) -> tuple[int, int, int] | None:
        """Fold an exited worker's counts into the totals; what it lost, if it died."""
        snapshot = slot.snapshot
        lost = None
        if not slot.done and slot.process is not None:
            received = sum(snapshot.get("received", {}).values())
            records = max(0, received - slot.lines)
            unfinished = int(snapshot.get("unfinished", 0))
            connections = sum(snapshot.get("connections_open", {}).values())
            lost = (records, unfinished, connections)
            slot.lost += records
            if records:
                self.retired.dropped["worker_died"] += records
        self.retired.add_snapshot(snapshot, live=False)
        self.retired_probes.update(snapshot.get("probes", {}))
        slot.snapshot, slot.lines, slot.done, slot.channel = {}, 0, False, None
        return lost

    def _close_listeners(self) -> None:
        """Start-up failed: close ours, and stop the workers already running (SIGTERM)."""
        super()._close_listeners()
        self.stopping = True
        self._wake.set()
        for slot in self.slots:
            process = slot.process
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for slot in self.slots:
            if slot.process is not None and not slot.ended.wait(START_TIMEOUT):
                slot.process.kill()

    # -- counting -------------------------------------------------------------

    def add_up(self) -> None:
        """Make :attr:`totals` this process's counts plus every worker's, past and present."""
        totals = self.totals
        totals.clear()
        totals.add_snapshot(self.stats.snapshot())
        totals.http_requests.update(self.stats.http_requests)
        totals.add_snapshot(self.retired.snapshot())
        probes = Counter(self.retired_probes)
        for slot in self.slots:
            totals.add_snapshot(slot.snapshot, live=not slot.done)
            probes.update(slot.snapshot.get("probes", {}))
        self.probes.set(probes)

    def worker_counts(self) -> dict[str, dict[str, int]]:
        """Per worker: records handed over, restarts, records lost (``/metrics``)."""
        return {
            str(slot.index): {
                "records": slot.records,
                "restarts": slot.restarts,
                "lost": slot.lost,
                "handed": self.exchange.handed(slot.index - 1) if self.exchange is not None else 0,
            }
            for slot in self.slots
        }

    # -- shutdown -------------------------------------------------------------

    def _stop_now(self, signum: int) -> None:
        self.add_up()
        self.stats = self.totals
        super()._stop_now(signum)

    def _stop_workers(self, deadline: float) -> None:
        """SIGTERM every worker; wait while each drains and hands over (kill one that hangs)."""
        self.stopping = True
        self._wake.set()
        for slot in self.slots:
            process = slot.process
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for slot in self.slots:
            if not slot.ended.wait(max(0.0, deadline - time.monotonic()) + _STOP_MARGIN):
                self.report.write(f"netlog: worker {slot.index} did not hand over in time: killed")
                if slot.process is not None and slot.process.poll() is None:
                    slot.process.kill()
                slot.ended.wait()

    def _drain_listeners(self, deadline: float) -> None:
        """Steps 1 and 2 of the runner's shutdown: the workers drain their listeners."""
        self._stop_workers(deadline)

    def _summary(self, took: float, written: int) -> None:
        """The one summary line: every worker's counts added to this process's."""
        self.add_up()
        self.stats = self.totals
        line = f"netlog: stopped in {took:.2f}s: {self.stats.summary(written)}"
        line += self._file_notes()
        if "responder" in self.slots[0].ports:
            p = self.probes
            line += (
                f"; probes: {p.answered} answered, {p.rate_limited} rate-limited, "
                f"{p.refused} refused (privileged source port); "
                f"health checks: {p.health_checks} answered"
            )
        parts = [f"{slot.index}: {slot.records}" for slot in self.slots]
        restarts = sum(slot.restarts for slot in self.slots)
        line += f"; records by worker: {', '.join(parts)}"
        if restarts:
            line += f" ({restarts} restarts)"
        line += self._exchange_notes()
        self.report.write(line)

    def _exchange_notes(self) -> str:
        """Connections passed between workers, and any still queued at exit (closed now)."""
        exchange, self.exchange = self.exchange, None
        if exchange is None:
            return ""
        handed = [exchange.handed(slot.index - 1) for slot in self.slots]
        left = exchange.close()
        note = ""
        if any(handed):
            parts = ", ".join(
                f"{slot.index}: {n}" for slot, n in zip(self.slots, handed, strict=True)
            )
            note += f"; connections passed at accept by worker: {parts}"
        if left:
            note += (
                f"; {left} connections passed to a worker that had exited were still queued "
                "at exit: closed unread"
            )
        return note


def serve_with_workers(
    settings: Settings, *, early_signals: list[int] | None = None, stderr: TextIO | None = None
) -> int:
    """``netlog serve --workers N`` (N > 1); one process where ``SO_REUSEPORT`` is missing."""
    if not hasattr(socket, "SO_REUSEPORT"):
        (stderr or sys.stderr).write(
            "netlog: this system has no SO_REUSEPORT: running one process, not "
            f"{settings.workers} workers\n"
        )
        return Runner(
            replace(settings, workers=1), stderr=stderr, early_signals=early_signals
        ).run()
    return Supervisor(settings, stderr=stderr, early_signals=early_signals).run()


__all__ = ["Supervisor", "serve_with_workers"]
