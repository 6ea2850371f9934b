"""Start every enabled listener, write the ready file, and shut down as promised.

The order of shutdown is the contract of ARCHITECTURE.md: stop accepting first
(after taking what the kernel already queued), let log connections finish
within ``--grace``, read what is buffered, write, fsync, print one summary
line, exit 0.  A second signal exits at once.

The HTTP listener is the exception to "listeners closed first": from the
signal on, ``/health`` answers 503, and the listener stays open until the
log connections have drained, so a health check sees the drain instead of
a refused connection (and records posted meanwhile are still written).
Event streams to viewer pages end then, so they never hold the exit.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import gevent
import gevent.event
import orjson

from netlog.decode.forward import ForwardDecoder
from netlog.decode.gelf import GelfDatagrams, GelfStreamDecoder
from netlog.forward.config import child_env, destination_names
from netlog.forward.forwarder import read_status
from netlog.forward.positions import unshipped
from netlog.metrics import Metrics
from netlog.report import Reporter
from netlog.security import (
    HttpGuard,
    TokenError,
    allowed_hosts,
    exposure_warning,
    load_token,
    session_cookie_name,
)
from netlog.settings import DISABLED, Settings
from netlog.sinks.console import ConsoleSink
from netlog.sinks.pipeline import Pipeline, Sink
from netlog.stats import Stats
from netlog.store.writer import FILE_NAME, JsonlFileSink, LogDirInUse
from netlog.viewer import RecordFeed
from servers.api import QueryApi, open_engine
from servers.echo import EchoServer
from servers.forward_child import ForwardChild
from servers.http import HttpServer
from servers.logsink import (
    DatagramDecode,
    DecoderFactory,
    LogDatagramServer,
    LogStreamServer,
    close_quietly,
)
from servers.otlp import PATH as OTLP_PATH
from servers.responder import ResponderServer
from servers.tls import TlsContexts, TlsError, TlsLogStreamServer

#: How long echo connections get at shutdown, at most (they promise nothing).
ECHO_GRACE = 1.0
#: How long requests in flight on the HTTP port get at least, after the drain.
HTTP_GRACE = 1.0
#: Signals that end the process cleanly (a second one: at once).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Signals whose default action would kill the process and lose what waits
#: for the flush: SIGHUP reopens the files, the others are ignored.
HARMLESS_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


class StartupError(Exception):
    """A problem that stops ``serve`` before it serves: one line, exit 2."""


def write_ready_file(path: Path, ports: dict[str, int]) -> None:
    """Write the bound ports atomically: readers see the whole file or none."""
    body = orjson.dumps({"pid": os.getpid(), **ports})
    directory = path.parent if str(path.parent) else Path()
    fd, tmp = tempfile.mkstemp(prefix=".ready-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _describe_bind_error(what: str, host: str, port: int, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        reason = "address already in use"
    return f"cannot listen for {what} on {host}:{port}: {reason}"


class Runner:
    """One ``netlog serve`` process: its listeners, sinks and lifecycle."""

    def __init__(
        self,
        settings: Settings,
        *,
        stderr: TextIO | None = None,
        early_signals: list[int] | None = None,
    ) -> None:
        self.settings = settings
        self.report = Reporter(stderr)
        self.stats = Stats()
        self.stop_event = gevent.event.Event()
        self._early_signals = early_signals if early_signals is not None else []
        self._signals_seen = 0
        self.files: JsonlFileSink | None = None
        self.pipeline: Pipeline | None = None
        self.echo: EchoServer | None = None
        self.responder: ResponderServer | None = None
        self.log_streams: list[LogStreamServer] = []
        """Every stream listener that takes records (log_tcp, and other protocols)."""
        self.log_datagrams: list[LogDatagramServer] = []
        """Every datagram listener that takes records (log_udp, and other protocols)."""
        self.http: HttpServer | None = None
        self.guard: HttpGuard | None = None
        """The HTTP and OTLP ports' gate (Host, cross-site, token), made at start."""
        self.otlp: HttpServer | None = None
        """The OTLP/HTTP port: an HttpServer serving only ``/v1/logs`` and ``/health``."""
        self.feed: RecordFeed | None = None
        self.metrics: Metrics | None = None
        self.forward: ForwardChild | None = None
        """The forwarder process, when a destination is configured (``--nats``...)."""
        self._listeners: list[tuple[str, Any]] = []
        self.gelf_udp: GelfDatagrams | None = None
        """GELF's UDP decoder: its partial chunked messages are given up at shutdown."""
        self.tls: TlsContexts | None = None
        """The TLS contexts, with ``--tls-cert``: the TLS log port's and HTTPS's."""

    # -- start-up -----------------------------------------------------------

    def run(self) -> int:
        """Serve until a signal; the process exit status."""
        self._install_signal_handlers()
        try:
            self._start()
        except StartupError as exc:
            self.report.write(f"netlog serve: error: {exc}")
            self._close_listeners()
            return 2
        self.stop_event.wait()
        self._shutdown()
        return 0

    def _install_signal_handlers(self) -> None:
        for signum in STOP_SIGNALS:
            gevent.signal_handler(signum, self._on_signal, signum)
        for signum in HARMLESS_SIGNALS:
            gevent.signal_handler(signum, self._on_harmless_signal, signum)
        # Caught before anything was open: nothing to reopen, nothing to cut
        # short, so one stop signal or many mean "stop" (see __main__.py).
        if any(early in STOP_SIGNALS for early in self._early_signals):
            self.stop_event.set()
            self._signals_seen = 1

    def _on_signal(self, signum: int) -> None:
        self._signals_seen += 1
        if self._signals_seen > 1:
            self._stop_now(signum)
        self.stop_event.set()

    def _on_harmless_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP and self.tls is not None:
            self._reload_tls()
        if signum == signal.SIGHUP and self.files is not None:
            self.files.reopen()
            self.report(f"{name}: reopened {self.files.path}", key="signal:SIGHUP")
            return
        self.report(f"{name} ignored", key=f"signal:{name}")

    def _reload_tls(self) -> None:
        """SIGHUP: new connections get the certificate now in the files; open ones keep theirs."""
        assert self.tls is not None
        try:
            self.tls.reload()
        except TlsError as exc:
            self.report(f"SIGHUP: {exc}; still serving the previous one", key="signal:tls")
            return
        self.report(f"SIGHUP: reloaded the TLS certificate {self.tls.cert}", key="signal:tls")

    def _load_tls(self) -> None:
        """Load ``--tls-cert`` (and key, client CA) once at start; a bad file stops ``serve``."""
        s = self.settings
        if s.tls_cert is None:
            if s.tls_key is not None or s.tls_client_ca is not None:
                raise StartupError("--tls-key and --tls-client-ca need --tls-cert")
            return
        try:
            self.tls = TlsContexts(s.tls_cert, s.tls_key, s.tls_client_ca)
        except TlsError as exc:
            raise StartupError(str(exc)) from None

    def _stop_now(self, signum: int) -> None:
        """A second stop signal: write and fsync what is decoded, summary, exit 1.

        Runs in the hub between greenlets, so the file sink is never caught
        in the middle of a write.  Bytes not decoded yet (in the kernel, or
        a record still arriving) are given up on: that is what the second
        signal asks for.
        """
        written = 0
        if self.files is not None:
            self.files.close()
            written = self.files.written
            if self.files.dropped:
                self.stats.dropped["disk_overflow"] += self.files.dropped
        name = signal.Signals(signum).name
        line = f"netlog: second {name}: stopped without waiting for the grace: "
        self.report.write(line + self.stats.summary(written) + self._file_notes())
        os._exit(1)

    def _make_guard(self) -> tuple[HttpGuard, str | None]:
        """One gate for the HTTP and OTLP ports (the same Host names and token), and the token."""
        s = self.settings
        try:
            token = load_token(s.auth_token, s.auth_token_file)
        except TokenError as exc:
            raise StartupError(str(exc)) from None
        self.guard = guard = HttpGuard(
            allowed_hosts(s.allowed_hosts or (), bound=s.host, hostname=socket.gethostname()),
            token,
            cookie_name=session_cookie_name(s.http_port),
        )
        return guard, token

    def _secure(self) -> str | None:
        """Load the token and the certificates before anything listens; the token."""
        _guard, token = self._make_guard()
        self._load_tls()
        return token

    def _warn_if_exposed(self, ports: dict[str, int], token: str | None) -> None:
        """One stderr line when a listener binds beyond loopback and no token is set."""
        warning = exposure_warning(self.settings.host, ports, token_set=token is not None)
        if warning is not None:
            self.report.write(warning)

    def _start(self) -> None:
        s = self.settings
        token = self._secure()
        if any(port != DISABLED for port in self._record_ports()):
            self._open_sinks()
        if s.echo_port != DISABLED:
            self.echo = EchoServer(
                (s.host, s.echo_port),
                idle_timeout=s.idle_timeout,
                max_connections=s.max_connections,
            )
            self._bind("echo", "TCP echo", self.echo, s.echo_port)
        if s.responder_port != DISABLED:
            self.responder = ResponderServer(
                (s.host, s.responder_port),
                rate=s.responder_rate,
                stats=self.stats,
                report=self.report,
            )
            self._bind("responder", "the UDP responder", self.responder, s.responder_port)
        self._add_stream("log_tcp", "TCP logs", s.log_tcp_port)
        if self.tls is not None:
            self._add_stream("log_tls", "TLS logs", s.log_tls_port, tls=self.tls)
        self._add_datagrams("log_udp", "UDP logs", s.log_udp_port)
        self._add_gelf()
        self._add_stream(
            "fluent",
            "Fluentd forward",
            s.fluent_port,
            decoder=partial(ForwardDecoder, max_frame=s.max_frame, max_line=s.max_line),
        )
        self._add_http()
        self._add_otlp()
        ports = {name: int(server.address[1]) for name, server in self._listeners}
        self._ready(ports)
        self._warn_if_exposed(ports, token)
        if self.files is not None and destination_names(s):
            self.forward = ForwardChild(child_env(s), self.report)
            self.forward.start()
            if self.metrics is not None:
                self.metrics.forward = self._forward_status
        if self.pipeline is not None:
            observe = self.metrics.flush_seconds.observe if self.metrics is not None else None
            gevent.spawn(self._flush_forever, self.pipeline, s.flush_interval, observe)

    def _add_http(self) -> None:
        """Start the HTTP port (viewer, live feed, /metrics, /health, POST /log, the API)."""
        s = self.settings
        if self.pipeline is not None and self.feed is not None and self.metrics is not None:
            self.metrics.files = self.files
            self.metrics.responder = self.responder
            self.metrics.feed = self.feed
            api = QueryApi(partial(open_engine, s.log_dir), self.pipeline.files.flush)
            self.metrics.compaction = api.compaction_counts
            self.http = HttpServer(
                (s.host, s.http_port),
                self.pipeline,
                self.feed,
                self.metrics,
                self.report,
                idle_timeout=s.idle_timeout,
                max_connections=s.max_connections,
                max_frame=s.max_frame,
                max_line=s.max_line,
                api=api,
                otlp_max_body=s.otlp_max_body,
                guard=self.guard,
                tls=self.tls,
            )
            self._bind("http", "HTTP", self.http, s.http_port)
            # Cookies ignore ports, so the name carries the one bound.
            guard = self.guard
            assert guard is not None  # made by _make_guard before any listener
            guard.cookie_name = session_cookie_name(int(self.http.address[1]))
            self.metrics.guard = guard

    def _ready(self, ports: dict[str, int]) -> None:
        """Every listener is bound: write the ready file and say so, once."""
        s = self.settings
        if s.ready_file is not None:
            try:
                write_ready_file(s.ready_file, ports)
            except OSError as exc:
                raise StartupError(f"cannot write ready file {s.ready_file}: {exc}") from exc
        listening = ", ".join(f"{name} {port}" for name, port in ports.items())
        self.report.write(f"netlog: serving on {s.host}: {listening or 'no listeners'}")

    def _forward_status(self) -> dict[str, Any]:
        """The forwarder's status file plus what this process counts (for ``/metrics``)."""
        status = read_status(self.settings.log_dir)
        status["restarts"] = self.forward.restarts if self.forward is not None else 0
        status["unshipped_deleted"] = (
            self.files.forward_unshipped_deleted if self.files is not None else 0
        )
        return status

    def _record_ports(self) -> list[int]:
        """The ports of every listener that takes records: any enabled needs the store."""
        s = self.settings
        tls = [s.log_tls_port] if s.tls_cert is not None else []
        return [
            s.log_tcp_port,
            s.log_udp_port,
            s.http_port,
            s.gelf_udp_port,
            s.gelf_tcp_port,
            s.fluent_port,
            s.otlp_port,
            *tls,
        ]

    def _add_gelf(self) -> None:
        """GELF over UDP and TCP; chunks expired or evicted count in ``stats.dropped``."""
        s = self.settings
        gelf_udp = self.gelf_udp = GelfDatagrams(
            notes=self.stats.notes,
            dropped=self.stats.dropped,
            max_frame=s.max_frame,
            max_line=s.max_line,
        )
        self._add_datagrams("gelf_udp", "GELF over UDP", s.gelf_udp_port, gelf_udp, "GELF datagram")
        gelf_tcp = partial(GelfStreamDecoder, max_frame=s.max_frame, max_line=s.max_line)
        self._add_stream("gelf_tcp", "GELF over TCP", s.gelf_tcp_port, gelf_tcp)

    def _add_otlp(self) -> None:
        """Start the OTLP/HTTP port (4318) unless it is disabled: ``/v1/logs`` and ``/health``."""
        s = self.settings
        if self.pipeline is None or s.otlp_port == DISABLED:
            return
        metrics = self.metrics if self.metrics is not None else Metrics(self.stats)
        self.otlp = HttpServer(
            (s.host, s.otlp_port),
            self.pipeline,
            self.feed if self.feed is not None else RecordFeed(),
            metrics,
            self.report,
            idle_timeout=s.idle_timeout,
            max_connections=s.max_connections,
            max_frame=s.max_frame,
            max_line=s.max_line,
            name="otlp",
            routes=frozenset({OTLP_PATH, "/health"}),
            otlp_max_body=s.otlp_max_body,
            guard=self.guard,
            tls=self.tls,
        )
        self._bind("otlp", "OTLP/HTTP logs", self.otlp, s.otlp_port)

    def _add_stream(
        self,
        name: str,
        what: str,
        port: int,
        decoder: DecoderFactory | None = None,
        *,
        tls: TlsContexts | None = None,
    ) -> None:
        """Start a stream listener of records on ``port`` unless disabled (TLS with ``tls``)."""
        s = self.settings
        if self.pipeline is None or port == DISABLED:
            return
        tls_args: dict[str, Any] = {} if tls is None else {"contexts": tls}
        server = (LogStreamServer if tls is None else TlsLogStreamServer)(
            (s.host, port),
            self.pipeline,
            self.report,
            idle_timeout=s.idle_timeout,
            max_connections=s.max_connections,
            max_frame=s.max_frame,
            max_line=s.max_line,
            name=name,
            decoder=decoder,
            **tls_args,
        )
        self._bind(name, what, server, port)
        self.log_streams.append(server)

    def _add_datagrams(
        self,
        name: str,
        what: str,
        port: int,
        decode: DatagramDecode | None = None,
        kind: str = "log datagram",
    ) -> None:
        """Start a datagram listener of records on ``port`` unless it is disabled."""
        s = self.settings
        if self.pipeline is None or port == DISABLED:
            return
        server = LogDatagramServer(
            (s.host, port),
            self.pipeline,
            self.report,
            max_frame=s.max_frame,
            max_line=s.max_line,
            name=name,
            decode=decode,
            kind=kind,
        )
        self._bind(name, what, server, port)
        self.log_datagrams.append(server)

    def _open_sinks(self) -> None:
        s = self.settings
        files = JsonlFileSink(
            s.log_dir,
            max_bytes=s.max_bytes,
            backups=s.backups,
            max_age=s.max_age,
            report=self.report,
        )
        names = destination_names(s)
        if names:
            files.retain = unshipped(s.log_dir, names)
            files.retain_limit = s.forward_backlog
        try:
            files.open()
        except LogDirInUse as exc:
            raise StartupError(
                f"{exc}: one log dir takes one server; stop the other or choose another --log-dir"
            ) from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise StartupError(f"log dir {s.log_dir} is not writable: {reason}") from exc
        self.files = files
        extra: list[Sink] = []
        if s.http_port != DISABLED:
            self.feed = RecordFeed()
            self.metrics = Metrics(self.stats)
            extra.append(self.feed)
        self.pipeline = Pipeline(
            files, ConsoleSink(s.console, src=s.console_src), self.stats, extra
        )

    def _bind(self, name: str, what: str, server: Any, port: int) -> None:
        try:
            server.start()
        except OSError as exc:
            raise StartupError(_describe_bind_error(what, self.settings.host, port, exc)) from exc
        self._listeners.append((name, server))

    @staticmethod
    def _flush_forever(
        pipeline: Pipeline, interval: float, observe: Callable[[float], None] | None
    ) -> None:
        while True:
            gevent.sleep(interval)
            started = time.perf_counter()
            pipeline.flush()
            if observe is not None:
                observe(time.perf_counter() - started)

    # -- shutdown -----------------------------------------------------------

    def _close_listeners(self) -> None:
        for _name, server in self._listeners:
            close_quietly(server)

    def _stop_accepting(self) -> None:
        """Close every listener but HTTP, taking in what the kernel queued for the log ones."""
        for datagrams in self.log_datagrams:
            datagrams.drain_and_close()
        if self.gelf_udp is not None:  # chunks of a message that never completed: counted
            self.gelf_udp.chunks.abandon()
        for stream in self.log_streams:
            stream.stop_accepting_and_drain_backlog()
        for server in (self.echo, self.responder):
            if server is not None:
                close_quietly(server)

    def _drain_listeners(self, deadline: float) -> None:
        """Steps 1 and 2 of the shutdown: every listener but HTTP, in order."""
        # 1. Stop accepting everywhere, taking in what the kernel queued.
        self._stop_accepting()
        # 2. Let log connections finish within the grace; echo gets a moment.
        echo_stop = None
        if self.echo is not None:
            echo_stop = gevent.spawn(self.echo.stop, min(ECHO_GRACE, self.settings.grace))
        for stream in self.log_streams:
            stream.start_drain(deadline)
        for stream in self.log_streams:
            stream.finish_drain(deadline)
        if echo_stop is not None:
            echo_stop.join()

    def _shutdown(self) -> None:
        started = time.monotonic()
        deadline = started + self.settings.grace
        # 0. /health fails from now on; the HTTP listener itself stays open
        #    through the drain (see the module docstring).
        for web in (self.http, self.otlp):
            if web is not None:
                web.begin_drain()
        # 1-2. Stop accepting, let log connections finish within the grace.
        self._drain_listeners(deadline)
        # 2b. Close the HTTP listener: end event streams and idle keep-alive
        #     connections, let requests in flight finish within what is left
        #     of the grace (at least a moment).
        for web in (self.http, self.otlp):
            if web is not None:
                web.shutdown(max(HTTP_GRACE, deadline - time.monotonic()))
        # 3. Write, flush, fsync.
        written = 0
        if self.pipeline is not None and self.files is not None:
            self.pipeline.flush()
            self.files.close()
            written = self.files.written
            if self.files.dropped:
                self.stats.dropped["disk_overflow"] += self.files.dropped
        # 3b. Stop the forwarder after the final fsync: it saves its cursor.
        if self.forward is not None:
            self.forward.stop()
        # 4. One summary line.
        self._summary(time.monotonic() - started, written)

    def _file_notes(self) -> str:
        """What the summary adds about the store: times records.jsonl was recreated."""
        recreated = self.files.recreated if self.files is not None else 0
        if not recreated:
            return ""
        times = "once" if recreated == 1 else f"{recreated} times"
        return f"; {FILE_NAME} deleted while open and recreated {times}"

    def _summary(self, took: float, written: int) -> None:
        line = f"netlog: stopped in {took:.2f}s: {self.stats.summary(written)}"
        line += self._file_notes()
        if self.responder is not None:
            r = self.responder
            line += (
                f"; probes: {r.answered} answered, {r.rate_limited} rate-limited, "
                f"{r.refused} refused (privileged source port); "
                f"health checks: {r.health_checks} answered"
            )
        self.report.write(line)


def serve(
    settings: Settings,
    *,
    early_signals: list[int] | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``netlog serve`` with ``settings``; the exit status.

    ``--workers N`` above 1 is another process layout (``servers/workers.py``);
    one worker is this process alone, as it always was.
    """
    if settings.workers > 1:
        from servers.workers import serve_with_workers  # noqa: PLC0415 - only for --workers N

        return serve_with_workers(settings, early_signals=early_signals, stderr=stderr)
    return Runner(settings, stderr=stderr, early_signals=early_signals).run()


__all__ = ["Runner", "StartupError", "serve"]
