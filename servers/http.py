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
* ``GET /api/records``, ``/api/records/ID``, ``/api/histogram``,
  ``/api/facets``: the history search (:mod:`servers.api`), run off the hub.
* ``POST /login``: the login page's form; the session cookie when the
  token is right.

Before routing, :class:`netlog.security.HttpGuard` checks ``Host``, cross-site
browser requests and the access token (issue 21); a refusal reads no body.

At shutdown, :meth:`HttpServer.shutdown` ends every event stream, closes
idle keep-alive connections at once and gives requests in flight a moment.

What an attacker can do to the port is bounded (issue 15, items 5 and 13):

* A request's line and headers must arrive within :data:`HEADER_TIMEOUT`
  (or ``--idle-timeout`` when shorter) of their first byte, whatever the
  pace (nginx ``client_header_timeout``, Go ``ReadHeaderTimeout``): 408.
* The header fields may total :data:`MAX_HEADER_BYTES` in at most
  :data:`MAX_HEADER_FIELDS` lines (pywsgi bounds the request line itself at
  ``MAX_REQUEST_LINE``): 431 beyond.
* When every ``--max-connections`` slot is taken and another connection
  arrives, the connection that has waited longest for its request (an idle
  keep-alive one, or one still sending its headers) is closed to make room,
  so ``/health`` always gets in; counted in ``notes["http_shed"]``.
* With ``--tls-cert`` the port is HTTPS only: the TLS handshake runs in
  the connection's greenlet, is one of the connections waiting (shed first
  when the slots are full) and must finish within the header timeout.
* ``/events`` serves at most :data:`~netlog.viewer.feed.MAX_SUBSCRIBERS`
  pages; more get 503.
* Ambiguous framing (RFC 9112 6.3: ``Content-Length`` with
  ``Transfer-Encoding``, several or malformed ``Content-Length`` values,
  a transfer coding other than ``chunked``, whitespace before a colon,
  folded or NUL-bearing header lines) is refused, 400 or 501, and the
  connection is closed, so nothing after it is read as a request.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qs

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
from netlog.security import LOGIN, HttpGuard, Verdict, allowed_hosts, session_cookie_name
from netlog.settings import DEFAULT_MAX_LINE, DEFAULT_OTLP_MAX_BODY
from netlog.sinks.pipeline import Pipeline
from netlog.viewer import RecordFeed, load_assets
from netlog.viewer.feed import Subscriber, sse_dropped, sse_messages
from servers.api import QueryApi
from servers.gevent_private import forget_body
from servers.otlp import PATH as OTLP_PATH
from servers.otlp import handle_export
from servers.pool_watch import FullPoolWatch
from servers.tls import TlsContexts, close, handshake, wrap

__all__ = ["HEADER_TIMEOUT", "HEARTBEAT", "MAX_HEADER_BYTES", "MAX_HEADER_FIELDS", "HttpServer"]

#: Seconds between comments on a quiet event stream; also how soon a page
#: that went away is noticed.
HEARTBEAT: Final = 15.0
#: Seconds a stream waits after a wake-up, so a burst goes out as one message.
COALESCE: Final = 0.05

#: Seconds a request's line and headers may take from their first byte
#: (never more than ``--idle-timeout``).
HEADER_TIMEOUT: Final = 10.0
#: Bytes of header fields one request may carry (the request line apart).
MAX_HEADER_BYTES: Final = 64 * 1024
#: Header field lines one request may carry.
MAX_HEADER_FIELDS: Final = 100

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
    ("X-Frame-Options", "DENY"),
]
_NOSNIFF: Final = ("X-Content-Type-Options", "nosniff")
#: Bytes of a ``POST /login`` body read at most: a form with one token.
_MAX_LOGIN_BODY: Final = 4096
_NO_STORE: Final = ("Cache-Control", "no-store")
_SOCKET_REPR: Final = re.compile(r"^<[^>]*>: ")
#: One header field line (RFC 9110 5.1, 5.5): a token, a colon right after
#: it, a value without CR, LF or NUL, then the line end.  Rejects whitespace
#: before the colon and obs-fold continuation lines (RFC 9112 5.1, 5.2).
_FIELD_LINE: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n\x00]*\r?\n\Z")
_DIGITS: Final = re.compile(r"[0-9]+\Z")
_API_ROUTES: Final = ("/api/records", "/api/records/ID", "/api/histogram", "/api/facets")


class _Refused(BaseException):
    """A request refused before the application runs: answer ``status`` and close.

    A ``BaseException``, like gevent's ``Timeout``, so that it passes pywsgi's
    ``except Exception`` around ``read_request`` (which would answer 400 and,
    for anything but a ``ValueError``, print a traceback) and reaches
    :meth:`_Handler.handle_one_request`.
    """

    def __init__(self, status: int, reason: str, note: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.note = note

    def response(self) -> bytes:
        body = self.reason.encode("latin-1", "replace") + b"\n"
        phrase = HTTPStatus(self.status).phrase.encode()
        return (
            b"HTTP/1.1 %d %b\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"X-Content-Type-Options: nosniff\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%b"
            % (self.status, phrase, len(body), body)
        )


def _read_header_block(rfile: Any) -> bytes:
    """The header field lines up to the blank line, bounded in size and count, each well formed."""
    lines: list[bytes] = []
    size = 0
    while True:
        line: bytes = rfile.readline(MAX_HEADER_BYTES - size + 1)
        size += len(line)
        if line in (b"\r\n", b"\n"):
            lines.append(line)
            return b"".join(lines)
        if size > MAX_HEADER_BYTES or len(lines) >= MAX_HEADER_FIELDS:
            raise _Refused(
                431,
                f"the headers pass {MAX_HEADER_BYTES} bytes or {MAX_HEADER_FIELDS} fields",
                "http_header_too_large",
            )
        if not line.endswith(b"\n"):
            raise _Refused(400, "the headers end before their blank line", "http_header_cut")
        if _FIELD_LINE.match(line) is None:
            raise _Refused(400, "a malformed header field line", "http_bad_framing")
        lines.append(line)


def _check_framing(headers: Any, version: str) -> None:
    """Refuse what two parsers could frame differently (RFC 9112 6.1, 6.3)."""
    codings = headers.get_all("transfer-encoding")
    lengths = headers.get_all("content-length")
    if codings is not None:
        if lengths is not None:
            raise _Refused(400, "Content-Length with Transfer-Encoding", "http_bad_framing")
        if version != "HTTP/1.1":
            raise _Refused(400, f"Transfer-Encoding in an {version} request", "http_bad_framing")
        names = [name.strip().lower() for value in codings for name in value.split(",")]
        if names != ["chunked"]:
            raise _Refused(
                501, f"transfer coding {', '.join(names)!r}: only chunked", "http_bad_framing"
            )
    elif lengths is not None and (len(lengths) != 1 or not _DIGITS.match(lengths[0].strip())):
        raise _Refused(400, "Content-Length must be one decimal number", "http_bad_framing")


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
    """pywsgi's handler with the header bounds, noting when a connection waits for a request.

    A connection waits from the moment it asks for a request line until its
    headers are complete; while it does, it is in ``server.waiting`` (oldest
    first), where shutdown and a full pool may close it.
    """

    _deadline: Any = None

    def handle_one_request(self) -> Any:
        try:
            return super().handle_one_request()
        except _Refused as refused:
            server: HttpServer = self.server
            server.refused(refused)
            return str(refused.status), refused.response()
        finally:
            self._headers_done()

    def read_requestline(self) -> str:
        server: HttpServer = self.server
        if server.stopping:
            return ""  # ends a keep-alive connection instead of waiting
        server.waiting[gevent.getcurrent()] = None
        # Between requests only the idle timeout applies, per read; from the
        # first byte of a request, its line and headers have HEADER_TIMEOUT.
        if not self.rfile.peek(1):
            return ""
        self._deadline = gevent.Timeout.start_new(
            server.header_timeout,
            _Refused(408, "the request headers took too long", "http_header_timeout"),
        )
        return str(super().read_requestline())

    def MessageClass(self, fp: Any, *args: Any) -> Any:  # noqa: N802 - pywsgi's name
        """The headers, read within their bounds, then parsed and checked as pywsgi would not."""
        data = _read_header_block(fp)
        self._headers_done()
        headers = super().MessageClass(io.BytesIO(data), *args)
        _check_framing(headers, self.request_version)
        return headers

    def get_environ(self) -> Any:
        """The environ pywsgi builds, plus the connection's socket for ``/events`` to watch."""
        environ = super().get_environ()
        environ["netlog.socket"] = self.socket
        return environ

    def _headers_done(self) -> None:
        deadline, self._deadline = self._deadline, None
        if deadline is not None:
            deadline.close()
        server: HttpServer = self.server
        server.waiting.pop(gevent.getcurrent(), None)


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
        max_line: int = DEFAULT_MAX_LINE,
        max_body: int = MAX_BODY,
        api: QueryApi | None = None,
        guard: HttpGuard | None = None,
        name: str = "http",
        routes: frozenset[str] | None = None,
        otlp_max_body: int = DEFAULT_OTLP_MAX_BODY,
        tls: TlsContexts | None = None,
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
        self.max_line = max_line
        self.stats = pipeline.stats
        self.feed = feed
        self.metrics = metrics
        self.report = report
        self.idle_timeout = idle_timeout
        self.max_frame = max_frame
        self.max_body = max_body
        self.api = api
        self.guard = guard or HttpGuard(
            allowed_hosts((), bound=listener[0], hostname=""),
            None,
            cookie_name=session_cookie_name(listener[1]),
        )
        """Host, cross-site and token checks before anything else (:mod:`netlog.security`)."""
        self.name = name
        self.routes = routes
        """The only fixed routes served (the OTLP port's), or ``None`` for all."""
        self.otlp_max_body = otlp_max_body
        self.tls = tls
        """HTTPS with it: its ``http`` context, the one in force, for each new connection."""
        self.header_timeout = min(HEADER_TIMEOUT, idle_timeout)
        self.draining = False
        """Set when shutdown begins: ``/health`` answers 503."""
        self.stopping = False
        """Set when the listener closes: keep-alive connections end."""
        self.waiting: dict[gevent.Greenlet, None] = {}
        """Connections waiting for a request or reading its headers, oldest first."""
        self._assets = load_assets()
        # gevent asks full() before each accept and stops accepting while it
        # says so; then the first connection to arrive makes room.
        self._pool_watch = FullPoolWatch(self, self._make_room)

    def _make_room(self) -> None:
        """A connection arrived while every slot is taken: close the one waiting longest.

        Only a connection that has no request in progress (idle, or still
        sending its headers) is closed; gevent accepts the new one when its
        slot frees.  With none, the new one waits in the kernel's queue.
        """
        if not self.pool.full() or not self.waiting:
            return
        oldest = next(iter(self.waiting))
        del self.waiting[oldest]
        oldest.kill(block=False)
        self.stats.notes["http_shed"] += 1
        self.report(
            f"{self.pool.size} HTTP connections open, the --max-connections limit: "
            "closing the ones that wait longest for a request",
            key="http:shed",
        )

    def refused(self, refused: _Refused) -> None:
        """Count a request refused before the application (bad framing, header bounds)."""
        if refused.note == "http_bad_framing":
            self.stats.bad_frame(refused.note)
        else:
            self.stats.notes[refused.note] += 1
        self.stats.http_requests[("refused", refused.status)] += 1

    # -- connections ---------------------------------------------------------

    def handle(self, sock: Any, address: Any) -> None:
        """Serve one connection, counted, with the idle timeout on every read and write."""
        sock.settimeout(self.idle_timeout)
        self.stats.connections_total[self.name] += 1
        self.stats.connections_open[self.name] += 1
        try:
            if self.tls is not None:
                sock = self._handshake(sock)
                if sock is None:
                    return
            # A peer that leaves while pywsgi answers a bad request makes its
            # send fail outside the application: nothing is left to do then.
            with contextlib.suppress(OSError):
                super().handle(sock, address)
        finally:
            self.stats.connections_open[self.name] -= 1
            if self.tls is not None and sock is not None:
                close(sock)  # the SSL socket owns the descriptor now

    def _handshake(self, sock: Any) -> Any:
        """HTTPS: the TLS handshake within the header timeout, as a waiting connection."""
        assert self.tls is not None
        tls = wrap(sock, self.tls.http, self.stats, self.report, self.name)
        if tls is None:
            return None
        me = gevent.getcurrent()
        self.waiting[me] = None
        try:
            done = handshake(tls, self.header_timeout, self.stats, self.report, self.name)
        except BaseException:  # shed, or shutdown: the SSL socket owns the descriptor
            close(tls)
            raise
        finally:
            self.waiting.pop(me, None)
        return tls if done else None

    def begin_drain(self) -> None:
        """Shutdown has begun: ``/health`` fails from now on."""
        self.draining = True
        self.metrics.draining = True

    def shutdown(self, timeout: float) -> None:
        """Close the listener, end event streams and idle connections, wait for the rest."""
        self.begin_drain()
        self.stopping = True
        self._pool_watch.stop()
        self.close()
        self.feed.close()
        for greenlet in list(self.waiting):
            greenlet.kill(block=False)
        self.pool.join(timeout=timeout)
        self.pool.kill(block=True, timeout=1.0)
        if self.api is not None:
            self.api.close()

    # -- the WSGI application -------------------------------------------------

    def application(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        """Route one request; never raises (a bug answers 500 and is reported once)."""
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO") or "/"
        route, handler, methods = self._route(path)
        verdict = self.guard.check(environ, time.monotonic())
        if verdict is not None:
            status, headers, body = self._gate(environ, verdict)
        elif method not in methods:
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
        if _NOSNIFF not in headers:
            headers = [*headers, _NOSNIFF]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        if method == "HEAD" and isinstance(body, list):
            return []
        return body

    def _route(
        self, path: str
    ) -> tuple[str, Callable[[dict[str, Any], str, str], Response], tuple[str, ...]]:
        fixed = {
            "/log": (self._log, ("POST", "GET")),
            "/health": (self._health, ("GET", "HEAD")),
            "/metrics": (self._metrics, ("GET", "HEAD")),
            "/events": (self._events, ("GET",)),
            "/login": (self._login, ("POST",)),
            OTLP_PATH: (self._otlp, ("POST",)),
        }
        if self.routes is not None:
            if path in self.routes and path in fixed:
                handler, methods = fixed[path]
                return path, handler, methods
            return "other", self._not_found, ("GET", "HEAD", "POST")
        if path in fixed:
            handler, methods = fixed[path]
            return path, handler, methods
        if path in self._assets:
            return "viewer", self._asset, ("GET", "HEAD")
        if path.startswith("/api/"):
            # One label per route, never per id or typo: /metrics stays small.
            route = "/api/records/ID" if path.startswith("/api/records/") else path
            if route not in _API_ROUTES:
                route = "/api/other"
            return route, self._api, ("GET", "HEAD")
        return "other", self._not_found, ("GET", "HEAD", "POST")

    def _gate(self, environ: dict[str, Any], verdict: Verdict) -> Response:
        """The guard's answer: the login page, or a refusal with no body read."""
        if verdict is LOGIN:
            if self.routes is not None:  # the OTLP port serves no page
                return _text(401, "unauthorized", ("WWW-Authenticate", "Bearer"))
            return self._asset(environ, "GET", "/login.html")
        forget_body(environ["wsgi.input"])
        return _text(verdict.status, verdict.text, *verdict.headers, ("Connection", "close"))

    def _login(self, environ: dict[str, Any], _method: str, _path: str) -> Response:
        """``POST /login`` from the login page: ``token=...``; the session cookie when right."""
        if not self.guard.token_set:
            return _text(404, "no access token is set: nothing to log in to")
        stream = environ["wsgi.input"]
        data: bytes = stream.read(_MAX_LOGIN_BODY + 1)
        if len(data) > _MAX_LOGIN_BODY:
            forget_body(stream)
            return _text(413, "too large for a token", ("Connection", "close"))
        try:
            form = parse_qs(data.decode("utf-8", "replace"), max_num_fields=4)
        except ValueError:
            return _text(400, "a login form has one field, token")
        token = (form.get("token") or [""])[0]
        cookie = self.guard.login(token, str(environ.get("REMOTE_ADDR", "")), time.monotonic())
        if cookie is None:
            return _text(401, "unauthorized", ("WWW-Authenticate", "Bearer"))
        return 204, [_NO_STORE, ("Set-Cookie", cookie)], []

    def _otlp(self, environ: dict[str, Any], _method: str, _path: str) -> Response:
        status, headers, body = handle_export(self, environ)
        return status, headers, body

    def _api(self, environ: dict[str, Any], _method: str, path: str) -> Response:
        if self.api is None:
            return _text(404, "the query API is off (no log dir)")
        status, headers, body = self.api.handle(path, str(environ.get("QUERY_STRING", "")))
        return status, headers, body

    def _not_found(self, _environ: dict[str, Any], _method: str, path: str) -> Response:
        if self.routes is not None:
            served = ", ".join(sorted(self.routes))
            return _text(404, f"nothing at {path}: this port serves {served}")
        return _text(404, f"nothing at {path}: try /, /log, /health, /metrics or /api/records")

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
            records = decode_body(
                data,
                content_type,
                peer,
                received,
                max_frame=self.max_frame,
                max_line=self.max_line,
                notes=self.stats.notes,
            )
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
        if self.feed.full:
            self.feed.refuse()
            return _text(
                503,
                f"{self.feed.max_subscribers} viewer pages are open, the most served at once",
                ("Retry-After", "10"),
                ("Connection", "close"),
            )
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
        return 200, headers, self._stream(subscriber, first, wake, environ.get("netlog.socket"))

    def _stream(
        self, subscriber: Subscriber, first: Sequence[bytes], wake: Any, sock: Any
    ) -> Iterator[bytes]:
        """The event stream of one page; ends at shutdown or when the page goes away.

        Messages are made one at a time from references to the feed's lines:
        a page that does not read holds one message, never its whole backlog.
        A page sends nothing after its request, so its socket turning
        readable means it left (or misbehaves): the stream ends then, not at
        the next heartbeat, and its place among the viewers frees at once.
        """
        watcher = None
        if sock is not None:
            watcher = self.loop.io(sock.fileno(), 1)  # 1: readable
            watcher.start(self._page_left, subscriber, wake)
        try:
            yield b"retry: 2000\n\n"
            yield from sse_messages(first, subscriber.last_seq)
            del first
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
                if dropped:
                    yield sse_dropped(dropped)
                yield from sse_messages(lines, last_seq)
                del lines
            yield b"event: bye\ndata: {}\n\n"
        finally:
            if watcher is not None:
                watcher.stop()
                watcher.close()
            self.feed.unsubscribe(subscriber)

    def _page_left(self, subscriber: Subscriber, wake: Any) -> None:
        self.feed.unsubscribe(subscriber)
        wake.set()
