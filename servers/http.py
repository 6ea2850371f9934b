"""The HTTP listener: HTTPHandler records, ``/health``, ``/metrics`` and the live viewer.

One ``gevent.pywsgi.WSGIServer`` in the serving process.  Routes:

* ``POST /log`` (and ``GET /log?<form>``): records from a body, decoded by
  :mod:`netlog.decode.http` and handed to the same pipeline as the other
  listeners; ``202 {"accepted": N}``, or 400/413/415 with a one-line reason.
* ``GET /health``: ``200 ok`` while serving, ``503 draining`` from the
  moment shutdown begins.  The listener stays open through the log drain so
  that a health check or load balancer sees the 503 rather than a refused
  connection, and records posted meanwhile are still taken.
* ``GET /metrics``: Prometheus text (:mod:`netlog.metrics`).
* ``GET /`` and its files: the viewer page; ``GET /events``: its
  server-sent event stream from :class:`netlog.viewer.RecordFeed`.

At shutdown, :meth:`HttpServer.shutdown` ends every event stream, closes
idle keep-alive connections at once and gives requests in flight a moment.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any, Final

import gevent
import gevent.event
import orjson
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer

from netlog.decode.http import FORM, MAX_BODY, decode_body
from netlog.errors import DecodeError
from netlog.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from netlog.metrics import Metrics
from netlog.record import format_peer
from netlog.report import Reporter
from netlog.sinks.pipeline import Pipeline
from netlog.viewer import RecordFeed, load_assets
from netlog.viewer.feed import Subscriber, sse_dropped, sse_records
from servers.gevent_private import forget_body

__all__ = ["HEARTBEAT", "HttpServer"]

#: Seconds between comments on a quiet event stream; also how soon a page
#: that went away is noticed.
HEARTBEAT: Final = 15.0
#: Seconds a stream waits after a wake-up, so a burst goes out as one message.
COALESCE: Final = 0.05

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Response = tuple[int, list[tuple[str, str]], Iterable[bytes]]

_PAGE_HEADERS: Final = [
    (
        "Content-Security-Policy",
        (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        ),
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]
_NO_STORE: Final = ("Cache-Control", "no-store")
_SOCKET_REPR: Final = re.compile(r"^<[^>]*>: ")


def _text(status: int, text: str, *extra: tuple[str, str]) -> Response:
    body = (text.replace("\n", " ") + "\n").encode("utf-8", "backslashreplace")
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        _NO_STORE,
        *extra,
    ]
    return status, headers, [body]


def _json(status: int, value: Any) -> Response:
    body = orjson.dumps(value) + b"\n"
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        _NO_STORE,
    ]
    return status, headers, [body]


class _ErrorLog:
    """pywsgi's error log, through the rate-limited reporter."""

    def __init__(self, report: Reporter) -> None:
        self._report = report

    def write(self, message: str) -> None:
        # pywsgi starts each line with the socket's repr: noise for a reader.
        text = _SOCKET_REPR.sub("", message.strip(), count=1)
        if text:
            self._report(f"HTTP: {text[:300]}", key="http:error")

    def flush(self) -> None:
        """Nothing is buffered."""


class _Handler(WSGIHandler):  # type: ignore[misc]
    """pywsgi's handler, noting when a connection idles between requests."""

    def read_requestline(self) -> str:
        server: HttpServer = self.server
        if server.stopping:
            return ""  # ends a keep-alive connection instead of waiting
        me = gevent.getcurrent()
        server.idle.add(me)
        try:
            return str(super().read_requestline())
        finally:
            server.idle.discard(me)


class HttpServer(WSGIServer):  # type: ignore[misc]
    """netlog's HTTP port: logs in, health, metrics and the viewer out."""

    name = "http"

    def __init__(
        self,
        listener: tuple[str, int],
        pipeline: Pipeline,
        feed: RecordFeed,
        metrics: Metrics,
        report: Reporter,
        *,
        idle_timeout: float,
        max_connections: int,
        max_frame: int,
        max_body: int = MAX_BODY,
    ) -> None:
        super().__init__(
            listener,
            application=self.application,
            spawn=Pool(max_connections),
            log=None,
            error_log=_ErrorLog(report),
            handler_class=_Handler,
            # Given, so pywsgi does not look the host up (socket.getfqdn can
            # wait for a DNS server that a container may not have).
            environ={"SERVER_NAME": listener[0] or "netlog"},
        )
        self.pipeline = pipeline
        self.stats = pipeline.stats
        self.feed = feed
        self.metrics = metrics
        self.report = report
        self.idle_timeout = idle_timeout
        self.max_frame = max_frame
        self.max_body = max_body
        self.draining = False
        """Set when shutdown begins: ``/health`` answers 503."""
        self.stopping = False
        """Set when the listener closes: keep-alive connections end."""
        self.idle: set[gevent.Greenlet] = set()
        self._assets = load_assets()

    # -- connections ---------------------------------------------------------

    def handle(self, sock: Any, address: Any) -> None:
        """Serve one connection, counted, with the idle timeout on every read and write."""
        sock.settimeout(self.idle_timeout)
        self.stats.connections_total[self.name] += 1
        self.stats.connections_open[self.name] += 1
        try:
            # A peer that leaves while pywsgi answers a bad request makes its
            # send fail outside the application: nothing is left to do then.
            with contextlib.suppress(OSError):
                super().handle(sock, address)
        finally:
            self.stats.connections_open[self.name] -= 1

    def begin_drain(self) -> None:
        """Shutdown has begun: ``/health`` fails from now on."""
        self.draining = True
        self.metrics.draining = True

    def shutdown(self, timeout: float) -> None:
        """Close the listener, end event streams and idle connections, wait for the rest."""
        self.begin_drain()
        self.stopping = True
        self.close()
        self.feed.close()
        for greenlet in list(self.idle):
            greenlet.kill(block=False)
        self.pool.join(timeout=timeout)
        self.pool.kill(block=True, timeout=1.0)

    # -- the WSGI application -------------------------------------------------

    def application(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        """Route one request; never raises (a bug answers 500 and is reported once)."""
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO") or "/"
        route, handler, methods = self._route(path)
        if method not in methods:
            status, headers, body = _text(
                405, f"{method} not allowed on {path}", ("Allow", ", ".join(methods))
            )
        else:
            try:
                status, headers, body = handler(environ, method, path)
            except Exception as exc:  # noqa: BLE001 - one request fails, the server stays
                self.report(f"HTTP {method} {path} failed: {exc!r}", key=f"http:500:{route}")
                status, headers, body = _text(500, "internal error (reported on the server)")
        self.stats.http_requests[(route, status)] += 1
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        if method == "HEAD" and isinstance(body, list):
            return []
        return body

    def _route(
        self, path: str
    ) -> tuple[str, Callable[[dict[str, Any], str, str], Response], tuple[str, ...]]:
        if path == "/log":
            return "/log", self._log, ("POST", "GET")
        if path == "/health":
            return "/health", self._health, ("GET", "HEAD")
        if path == "/metrics":
            return "/metrics", self._metrics, ("GET", "HEAD")
        if path == "/events":
            return "/events", self._events, ("GET",)
        if path in self._assets:
            return "viewer", self._asset, ("GET", "HEAD")
        return "other", self._not_found, ("GET", "HEAD", "POST")

    def _not_found(self, _environ: dict[str, Any], _method: str, path: str) -> Response:
        return _text(404, f"nothing at {path}: try /, /log, /health or /metrics")

    def _health(self, _environ: dict[str, Any], _method: str, _path: str) -> Response:
        if self.draining:
            return _text(503, "draining", ("Retry-After", "5"))
        return _text(200, "ok")

    def _metrics(self, _environ: dict[str, Any], _method: str, _path: str) -> Response:
        body = self.metrics.render()
        headers = [
            ("Content-Type", METRICS_CONTENT_TYPE),
            ("Content-Length", str(len(body))),
            _NO_STORE,
        ]
        return 200, headers, [body]

    def _asset(self, _environ: dict[str, Any], _method: str, path: str) -> Response:
        body, content_type = self._assets[path]
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            _NO_STORE,
            *_PAGE_HEADERS,
        ]
        return 200, headers, [body]

    # -- POST /log -------------------------------------------------------------

    def _log(self, environ: dict[str, Any], method: str, _path: str) -> Response:
        peer = format_peer((environ.get("REMOTE_ADDR", ""), environ.get("REMOTE_PORT", "")))
        received = time.time()
        content_type: str | None
        if method == "GET":
            query = str(environ.get("QUERY_STRING", ""))
            if not query:
                return _text(400, "GET /log needs the record in the query string")
            data = query.encode("latin-1", "backslashreplace")
            content_type = FORM
        else:
            try:
                body = self._read_body(environ)
            except OSError as exc:  # a malformed chunk, a reset, the idle timeout
                self._count_bad("unreadable_body")
                return _text(400, f"cannot read the body: {exc}", ("Connection", "close"))
            if body is None:
                self._count_bad("too_large")
                return _text(
                    413, f"the body is larger than {self.max_body} bytes", ("Connection", "close")
                )
            data = body
            content_type = environ.get("CONTENT_TYPE")
        self.stats.bytes_in[self.name] += len(data)
        try:
            records = decode_body(data, content_type, peer, received, max_frame=self.max_frame)
        except DecodeError as exc:
            self._count_bad(exc.reason)
            status = 415 if exc.reason == "unsupported_media_type" else 400
            return _text(status, str(exc))
        self.pipeline.submit(records)
        return _json(202, {"accepted": len(records)})

    def _read_body(self, environ: dict[str, Any]) -> bytes | None:
        """The request body, or ``None`` when it is over the limit (left unread)."""
        stream = environ["wsgi.input"]
        declared = environ.get("CONTENT_LENGTH")
        if declared:
            try:
                size = int(declared)
            except ValueError:
                size = 0
            if size > self.max_body:
                forget_body(stream)
                return None
        body: bytes = stream.read(self.max_body + 1)
        if len(body) > self.max_body:
            forget_body(stream)
            return None
        return body

    def _count_bad(self, reason: str) -> None:
        self.stats.bad_frame(f"http_{reason}")

    # -- GET /events -----------------------------------------------------------

    def _events(self, environ: dict[str, Any], _method: str, _path: str) -> Response:
        last_seen: int | None = None
        raw = environ.get("HTTP_LAST_EVENT_ID")
        if raw:
            try:
                last_seen = int(raw)
            except ValueError:
                last_seen = None
        wake: Any = gevent.event.Event()
        subscriber, first = self.feed.subscribe(wake.set, last_seen)
        headers = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            _NO_STORE,
            ("X-Accel-Buffering", "no"),
        ]
        return 200, headers, self._stream(subscriber, first, wake)

    def _stream(self, subscriber: Subscriber, first: list[bytes], wake: Any) -> Iterator[bytes]:
        """The event stream of one page; ends at shutdown or when the page goes away."""
        try:
            yield b"retry: 2000\n\n" + sse_records(first, subscriber.last_seq)
            while not subscriber.closed:
                woke = wake.wait(HEARTBEAT)
                wake.clear()
                if subscriber.closed:
                    break
                if not woke:
                    yield b": still here\n\n"  # a comment: finds pages that went away
                    continue
                gevent.sleep(COALESCE)
                lines, last_seq, dropped = subscriber.take()
                chunk = (sse_dropped(dropped) if dropped else b"") + sse_records(lines, last_seq)
                if chunk:
                    yield chunk
            yield b"event: bye\ndata: {}\n\n"
        finally:
            self.feed.unsubscribe(subscriber)
