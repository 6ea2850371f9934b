"""A ``--workers`` process: today's listeners and drain, its lines handed to the writer.

A worker is the :class:`~servers.runner.Runner` with four differences:

* its listeners' sockets are made here with ``SO_REUSEPORT`` before they
  bind, on the port numbers the writer gives it (those the first worker
  bound: ``0`` becomes one port shared by all), so the kernel spreads
  connections and datagrams over the workers;
* its pipeline's line sink is a :class:`~servers.handover.ChannelSink`:
  records are decoded and encoded (ids given) here, and the writer only
  appends the lines;
* instead of a ready file it tells the writer it is bound (``HELLO``), and
  it reports its counts every flush interval (``STATS``) and once more
  after its drain (``DONE``);
* it has no HTTP or OTLP port and no forwarder: those are the writer's.

The drain is the runner's own (``_drain_listeners``): stop accepting, finish
connections within ``--grace``, decode what is buffered; then the lines are
handed over and written before the worker says ``DONE`` and exits 0.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import sys
import time
from typing import Any, TextIO

import gevent
import gevent.server
import gevent.socket
import orjson

from netlog.report import Reporter
from netlog.settings import Settings
from netlog.sinks.console import ConsoleSink
from netlog.sinks.handover import ACK, CONFIG, DONE, HELLO, STATS, ack_pending, frame
from netlog.sinks.pipeline import Pipeline
from servers.balance import Balancer
from servers.handover import Channel, ChannelSink
from servers.runner import Runner, StartupError

#: gevent's listen backlog for a stream listener that names none.
DEFAULT_BACKLOG = 256


class WorkerReporter(Reporter):
    """Every line says which worker wrote it: ``netlog: worker 2: ...``."""

    def __init__(self, stream: TextIO | None, index: int) -> None:
        super().__init__(stream)
        self.prefix = f"netlog: worker {index}: "

    def write(self, line: str) -> None:
        """Write one line, naming the worker."""
        if line.startswith("netlog: "):
            line = self.prefix + line[len("netlog: ") :]
        super().write(line)


def reuseport_socket(server: Any, host: str, port: int) -> Any:
    """A socket for ``server`` bound with ``SO_REUSEPORT`` (listening, for a stream server)."""
    stream = isinstance(server, gevent.server.StreamServer)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if stream else socket.SOCK_DGRAM
    sock = gevent.socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if stream:
            sock.listen(getattr(server, "backlog", None) or DEFAULT_BACKLOG)
        sock.setblocking(False)  # noqa: FBT003 - the socket API
    except BaseException:
        sock.close()
        raise
    return sock


class WorkerRunner(Runner):
    """One worker: the runner's listeners and drain, lines handed to the writer."""

    def __init__(
        self,
        settings: Settings,
        channel: Channel,
        *,
        index: int,
        ports: dict[str, int],
        stderr: TextIO | None,
        early_signals: list[int],
        balancer: Balancer | None = None,
    ) -> None:
        super().__init__(settings, stderr=stderr, early_signals=early_signals)
        self.report = WorkerReporter(stderr, index)
        self.channel = channel
        self.index = index
        self.balancer = balancer
        """Passes accepted stream connections to a less-loaded worker, takes theirs."""
        self.ports = ports
        """The port each listener binds, by name (empty for the first worker: as configured)."""
        self.sink: ChannelSink | None = None
        self.done = False
        """The drain is over and handed over: the channel closing is expected now."""

    def run(self) -> int:
        """Serve until SIGTERM; read the writer's answers meanwhile."""
        gevent.spawn(self._read_channel)
        return super().run()

    def _read_channel(self) -> None:
        for kind, seq, payload in self.channel.frames():
            if kind == ACK and self.sink is not None:
                self.sink.acknowledged(seq, ack_pending(payload))
        if self.done:
            return
        # The writer is gone (killed): nothing here can reach the disk any more.
        self.report.write("netlog: the writer process is gone: exiting")
        os._exit(1)

    def _open_sinks(self) -> None:
        s = self.settings
        self.sink = ChannelSink(self.channel)
        self.pipeline = Pipeline(self.sink, ConsoleSink(s.console, src=s.console_src), self.stats)

    def _bind(self, name: str, what: str, server: Any, port: int) -> None:
        port = self.ports.get(name, port)
        try:
            sock = reuseport_socket(server, self.settings.host, port)
        except OSError as exc:
            raise StartupError(f"cannot listen for {what} on port {port}: {exc}") from exc
        server.socket = sock
        server.address = sock.getsockname()
        super()._bind(name, what, server, port)

    def _ready(self, ports: dict[str, int]) -> None:
        if self.balancer is not None:
            self.balancer.start(self.log_streams)
        self.channel.send(frame(HELLO, orjson.dumps({"ports": ports, "pid": os.getpid()})))
        gevent.spawn(self._report_forever)

    def snapshot(self) -> bytes:
        """The counts of this worker, and what it holds that the writer has not got."""
        self.stats.refresh()
        body: dict[str, Any] = dict(self.stats.snapshot())
        body["unfinished"] = sum(stream.unfinished for stream in self.log_streams)
        body["buffered"] = self.sink.buffered if self.sink is not None else 0
        body["handed"] = self.sink.handed if self.sink is not None else 0
        if self.responder is not None:
            r = self.responder
            body["probes"] = {
                "answered": r.answered,
                "rate_limited": r.rate_limited,
                "refused": r.refused,
                "errors": r.errors,
                "health_checks": r.health_checks,
            }
        return orjson.dumps(body)

    def _report_forever(self) -> None:
        interval = max(self.settings.flush_interval, 0.05)
        while not self.stop_event.is_set():
            self.stop_event.wait(interval)
            if self.stop_event.is_set():
                return
            if self.sink is not None:
                self.sink.send_pending()
            try:
                self.channel.send(frame(STATS, self.snapshot()))
            except OSError:
                return

    def _drain_listeners(self, deadline: float) -> None:
        """The runner's drain, plus the connections other workers passed here meanwhile.

        This worker stops passing and being given connections first; those
        already queued for it are taken while it drains, and once more, without
        waiting, at its end (the writer passes on any that arrive later still).
        """
        balancer = self.balancer
        if balancer is not None:
            balancer.start_drain()
        super()._drain_listeners(deadline)
        if balancer is not None and balancer.finish():
            for stream in self.log_streams:
                stream.finish_drain(deadline)

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.settings.grace
        self._drain_listeners(deadline)
        if self.pipeline is not None:
            self.pipeline.flush()  # handed over and written by the writer
        self.done = True
        with contextlib.suppress(OSError):
            self.channel.send(frame(DONE, self.snapshot()))
        self.channel.close()


def worker_main(fd: int, early_signals: list[int]) -> int:
    """Run one worker on the socket ``fd``: read its settings, serve, drain, exit."""
    sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=fd)
    channel = Channel(sock)
    for kind, _seq, payload in channel.frames():
        if kind == CONFIG:
            # From the writer, our parent, over a socketpair nobody else holds.
            config = pickle.loads(payload)  # noqa: S301
            break
    else:
        return 1
    balance = config.get("balance")
    runner = WorkerRunner(
        config["settings"],
        channel,
        index=config["index"],
        ports=config["ports"],
        stderr=sys.stderr,
        early_signals=early_signals,
        balancer=Balancer(balance, config["index"] - 1) if balance is not None else None,
    )
    return runner.run()


__all__ = ["WorkerRunner", "reuseport_socket", "worker_main"]
