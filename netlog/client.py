"""Point an application's logging at the sink, and lose nothing on the way.

The stdlib ``SocketHandler`` connects and sends in the caller's thread, drops
records while the sink is unreachable (including an application's first
records when it starts before the sink), and loses what is in flight at exit
(python/cpython#84532).  :class:`SinkHandler` encodes in the caller's thread
(so the record is captured as it was) and hands the bytes to one background
thread that owns the connection: it reconnects with backoff, keeps a bounded
buffer while the sink is down, and flushes at ``close()`` and at exit.

Works with plain threads and under gevent's monkey patching (the thread is
then a greenlet and every wait is cooperative).

Over TLS (``tls=True``, or ``ca``/``cert``/``key``, or an ``ssl.SSLContext``
of the application's own) the server is verified by default, its
certificate against ``ca`` (else the system's CAs) and its name against the
host connected to, as ``ssl.create_default_context`` does; ``cert`` and
``key`` are the client certificate for a sink that requires one
(``--tls-client-ca``).  TLS 1.2 is the oldest version offered.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import select
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import MutableMapping
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson

from netlog.settings import DEFAULT_LOG_TCP_PORT, DEFAULT_LOG_TLS_PORT

if TYPE_CHECKING:
    import ssl

DEFAULT_PORT = DEFAULT_LOG_TCP_PORT
DEFAULT_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"
DEFAULT_TLS_PORT = DEFAULT_LOG_TLS_PORT
DEFAULT_TLS_ADDRESS = f"127.0.0.1:{DEFAULT_TLS_PORT}"

Wire = Literal["pickle", "json"]

#: Attributes every LogRecord has; an ``extra=`` key among them would make
#: ``Logger.makeRecord`` raise, so :func:`configure`'s structlog chain carries
#: such keys in :data:`FIELDS_ATTR` instead.
RESERVED_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

#: The one LogRecord attribute holding the user's keys that LogRecord owns
#: (``thread=3``, ``name="x"``), as a dict: the sink puts them back in
#: ``fields`` under the names the user wrote.
FIELDS_ATTR: Final = "netlog_fields"


def parse_address(address: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``"host:port"``, ``"[::1]:port"`` or ``"host"`` -> ``(host, port)``."""
    text = address.strip()
    if not text:
        raise ValueError("an empty address")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not port_text:
        return host, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{address!r}: {port_text!r} is not a port") from None
    if not 0 < port < 65536:
        raise ValueError(f"{address!r}: {port} is not a port")
    return host or "127.0.0.1", port


def tls_context(
    tls: bool | ssl.SSLContext | None = True,
    *,
    ca: str | os.PathLike[str] | None = None,
    cert: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
) -> ssl.SSLContext | None:
    """The client's TLS context: ``None`` for plain TCP, else one that verifies the server.

    ``tls`` may be the application's own ``ssl.SSLContext`` (used as it
    is, with ``cert``/``key`` loaded into it when given).  Otherwise, with
    ``tls`` true or any of ``ca``, ``cert``, ``key`` given, it is
    ``ssl.create_default_context(cafile=ca)``: the server's certificate
    must chain to ``ca`` (or the system's CAs) and name the host; TLS 1.2
    at least.  ``cert``/``key`` are the client certificate (``key``
    defaults to the one in the ``cert`` file).
    """
    import ssl  # noqa: PLC0415 - ~10 ms at import, paid only by applications using TLS

    if isinstance(tls, ssl.SSLContext):
        context = tls
    elif tls or ca is not None or cert is not None or key is not None:
        context = ssl.create_default_context(cafile=ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    else:
        return None
    if cert is not None:
        context.load_cert_chain(cert, key)
    elif key is not None:
        raise ValueError("key= needs cert=")
    return context


def _jsonable_default(value: Any) -> str:
    return str(value)


class SinkHandler(logging.Handler):
    """A ``logging.Handler`` whose ``emit`` never waits for the network.

    ``capacity`` records are kept while the sink is unreachable; beyond that
    the oldest are dropped, counted, and reported as one warning record once
    the connection is back.  ``wire`` is ``"pickle"`` (SocketHandler's frames)
    or ``"json"`` (one JSON object a line).
    """

    #: Records sent in one write.
    BATCH = 512
    #: Reconnect backoff, seconds: first wait and ceiling.
    BACKOFF_START = 0.05
    BACKOFF_MAX = 2.0
    #: Seconds close() gives the thread to stop once the waiting is over.
    JOIN_TIMEOUT = 0.1

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        capacity: int = 10_000,
        wire: Wire = "pickle",
        connect_timeout: float = 2.0,
        close_timeout: float = 5.0,
        warn_undelivered: bool = True,
        tls: bool | ssl.SSLContext | None = None,
        ca: str | os.PathLike[str] | None = None,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        if wire not in ("pickle", "json"):
            raise ValueError(f"wire must be 'pickle' or 'json', not {wire!r}")
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.address = (host, port)
        self.capacity = capacity
        self.wire = wire
        self.connect_timeout = connect_timeout
        self.close_timeout = close_timeout
        self.warn_undelivered = warn_undelivered
        self.tls = tls_context(tls, ca=ca, cert=cert, key=key)
        """The TLS context (``None``: plain TCP); see :func:`tls_context`."""
        self.last_error: OSError | None = None
        """Why the last connection attempt failed (a refused certificate says so here)."""
        self.dropped = 0
        """Records dropped so far because the buffer was full."""
        self.sent = 0
        """Records handed to the kernel so far."""
        self._queue: deque[bytes] = deque()
        self._queue_lock = threading.Lock()
        self._wakeup = threading.Event()
        self._kick = threading.Event()  # flush/close: retry the connection now
        self._idle = threading.Event()
        self._idle.set()
        self._closing = False
        self._unreported_drops = 0
        self._in_flight = 0  # records the thread took off the queue and is writing
        # Seconds flush()/close() have waited while the sink took nothing,
        # and ``sent`` when that count began: see drain().
        self._stalled_for = 0.0
        self._stall_mark = 0
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="netlog-sink-handler", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- the application's side ------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        """Encode now, queue, and return: the network is the thread's job."""
        try:
            data = self._encode(record)
        except Exception:  # noqa: BLE001 - logging's contract: report, never raise
            self.handleError(record)
            return
        with self._queue_lock:
            if len(self._queue) >= self.capacity:
                self._queue.popleft()
                self.dropped += 1
                self._unreported_drops += 1
            self._queue.append(data)
            self._idle.clear()
        self._wakeup.set()

    def flush(self) -> None:
        """Wait until everything queued is sent, within the ``close_timeout`` budget."""
        self.drain()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything queued is sent (bounded); ``True`` if it was.

        Without ``timeout``, waits share one budget of ``close_timeout``
        seconds while the sink takes nothing: ``logging.shutdown()`` calls
        ``flush()`` and then ``close()``, and an exit may run it twice, so a
        fresh wait each time made an app with its sink down wait 10-15 s to
        exit instead of 5.  The budget is whole again as soon as the sink
        takes a record.  After :meth:`close` nothing waits.
        """
        if self._closing:
            return self._idle.is_set()
        if self.sent != self._stall_mark:
            self._stall_mark, self._stalled_for = self.sent, 0.0
        wait = self.close_timeout - self._stalled_for if timeout is None else timeout
        self._kick.set()
        self._wakeup.set()
        started = time.monotonic()
        done = self._idle.wait(max(0.0, wait))
        if not done:
            if self.sent == self._stall_mark:
                self._stalled_for += time.monotonic() - started
            else:
                self._stall_mark, self._stalled_for = self.sent, 0.0
        return done

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (bounded by ``timeout``), then stop the thread.

        The whole call stays within ``timeout`` (default: what is left of
        ``close_timeout``, see :meth:`drain`) plus ``JOIN_TIMEOUT``; then one
        line on stderr counts what was not delivered.
        """
        if self._closing:
            return
        self.drain(timeout)
        self._closing = True
        self._kick.set()
        self._wakeup.set()
        # Once drained it only closes its socket.  If not, it may be stuck in
        # connect() or sendall(); it is a daemon, and waiting past the budget
        # would deliver nothing more.
        self._thread.join(self.JOIN_TIMEOUT)
        atexit.unregister(self.close)
        undelivered = len(self._queue) + self._in_flight
        if undelivered and self.warn_undelivered:
            host, port = self.address
            sys.stderr.write(
                f"netlog.client: {undelivered} records not delivered to {host}:{port}\n"
            )
        super().close()

    @property
    def queued(self) -> int:
        """Records waiting to be sent."""
        return len(self._queue)

    # -- encoding -----------------------------------------------------------

    def _encode(self, record: logging.LogRecord) -> bytes:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if self.wire == "json":
            return self._encode_json(record)
        return self._encode_pickle(record)

    def _encode_pickle(self, record: logging.LogRecord) -> bytes:
        d = dict(record.__dict__)
        d["msg"] = record.getMessage()
        d["args"] = None
        d["exc_info"] = None
        d.pop("message", None)
        try:
            data = pickle.dumps(d, 1)
        except Exception:  # noqa: BLE001 - an unpicklable extra= value must not lose the record
            data = pickle.dumps({k: _picklable(v) for k, v in d.items()}, 1)
        return struct.pack(">L", len(data)) + data

    def _encode_json(self, record: logging.LogRecord) -> bytes:
        # structlog's names: the sink takes "event" as the message, so a
        # user's own "message" key stays a field.  The record's keys win over
        # the user's; the user's keys LogRecord owns (carried in FIELDS_ATTR)
        # are plain keys here.
        obj: dict[str, Any] = {
            "timestamp": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        if record.exc_text:
            obj["exception"] = record.exc_text
        for key, value in record.__dict__.items():
            if key == FIELDS_ATTR and isinstance(value, dict):
                for carried, item in value.items():
                    obj.setdefault(carried, item)
            elif key not in RESERVED_ATTRS:
                obj.setdefault(key, value)
        # "+ newline" rather than OPT_APPEND_NEWLINE: it copies the line out
        # of orjson's ~4 KiB output buffer, so a buffer of ``capacity``
        # queued lines costs their size, not 4 KiB each.
        return orjson.dumps(obj, default=_jsonable_default, option=orjson.OPT_NON_STR_KEYS) + b"\n"

    @staticmethod
    def formatException(ei: Any) -> str:  # noqa: N802 - logging's own spelling
        """Traceback text, the way logging.Formatter writes it."""
        return logging.Formatter().formatException(ei)

    # -- the background thread -------------------------------------------

    def _run(self) -> None:
        backoff = self.BACKOFF_START
        while True:
            if self._closing and not self._queue:
                self._disconnect()
                return
            self._wakeup.clear()
            with self._queue_lock:
                empty = not self._queue
                if empty:
                    self._idle.set()
            if empty:
                self._wakeup.wait(1.0)
                continue
            if self._sock is None or self._peer_closed():
                self._disconnect()
                if not self._connect():
                    if self._closing:
                        return  # close() gave up waiting: nothing more to do
                    self._kick.wait(backoff)
                    self._kick.clear()
                    backoff = min(self.BACKOFF_MAX, backoff * 2)
                    continue
                backoff = self.BACKOFF_START
                self._report_drops()
            self._send_batch()

    def _connect(self) -> bool:
        sock = None
        try:
            sock = socket.create_connection(self.address, timeout=self.connect_timeout)
            if self.tls is not None:
                # The handshake runs here, within connect_timeout.
                sock = self.tls.wrap_socket(sock, server_hostname=self.address[0])
        except OSError as exc:
            if sock is not None:
                sock.close()
            self.last_error = exc
            self._sock = None
            return False
        self.last_error = None
        sock.settimeout(30.0)
        self._sock = sock
        return True

    def _disconnect(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def _peer_closed(self) -> bool:
        """The sink never writes to us: a readable socket means it went away.

        Checked before each batch so that a restarted sink is noticed before
        records are written into a dead connection (where the first write
        "succeeds" and is lost).
        """
        sock = self._sock
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        if readable and self.tls is not None:
            return self._tls_closed(sock)
        return bool(readable)

    @staticmethod
    def _tls_closed(sock: socket.socket) -> bool:
        """A readable TLS socket may only hold session tickets (TLS 1.3): closed only at EOF."""
        import ssl  # noqa: PLC0415 - already loaded: the socket is an SSLSocket

        sock.settimeout(0.0)
        try:
            return not sock.recv(4096)
        except ssl.SSLWantReadError:
            return False  # it was handshake traffic, consumed
        except OSError:
            return True
        finally:
            sock.settimeout(30.0)

    def _send_batch(self) -> None:
        with self._queue_lock:
            batch = [self._queue.popleft() for _ in range(min(self.BATCH, len(self._queue)))]
            self._in_flight = len(batch)
        try:
            assert self._sock is not None
            self._sock.sendall(b"".join(batch))
        except OSError:
            # Put the batch back in front, in order, and reconnect.  What the
            # kernel already took may arrive twice; losing it would be worse.
            with self._queue_lock:
                self._queue.extendleft(reversed(batch))
                while len(self._queue) > self.capacity:
                    self._queue.pop()
                    self.dropped += 1
                    self._unreported_drops += 1
                self._in_flight = 0
            self._disconnect()
            return
        with self._queue_lock:
            self._in_flight = 0
            self.sent += len(batch)

    def _report_drops(self) -> None:
        with self._queue_lock:
            count, self._unreported_drops = self._unreported_drops, 0
        if not count:
            return
        record = logging.LogRecord(
            "netlog.client",
            logging.WARNING,
            __file__,
            0,
            "dropped %d records while the sink at %s:%d was unreachable (buffer of %d full)",
            (count, *self.address, self.capacity),
            None,
        )
        record.dropped = count
        with self._queue_lock:
            self._queue.appendleft(self._encode(record))


def _picklable(value: Any) -> Any:
    try:
        pickle.dumps(value, 1)
    except Exception:  # noqa: BLE001 - anything unpicklable becomes its repr
        return repr(value)
    return value


class _ServiceFilter(logging.Filter):
    """Attaches ``service`` to every record that passes the handler."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "service"):
            record.service = self.service
        return True


#: Keys ``render_to_log_kwargs`` passes to logging as keyword arguments.
_LOG_KWARGS = frozenset({"exc_info", "stack_info", "stacklevel"})


def _carry_reserved(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Structlog processor: keys LogRecord owns would crash ``makeRecord``.

    They travel in one attribute, :data:`FIELDS_ATTR`, which the sink
    unpacks, so ``thread=3`` arrives as ``fields.thread``, as written.
    """
    reserved = {
        key: event_dict.pop(key)
        for key in [k for k in event_dict if k in RESERVED_ATTRS and k not in _LOG_KWARGS]
    }
    if reserved:
        event_dict[FIELDS_ATTR] = reserved
    return event_dict


#: Modules whose frames are never the caller of a structlog call.
_LIBRARY_MODULES: Final = ("structlog", "logging", __name__)


def _is_logging_frame(frame: FrameType) -> bool:
    """What ``Logger.findCaller`` skips without counting it (logging's own file)."""
    return frame.f_code.co_filename == logging.__file__


def _caller_stacklevel(
    logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Structlog processor: make a stdlib logger record the application's line.

    Without it a plain ``logging.Logger`` (one created before
    ``structlog.stdlib.LoggerFactory`` set its own class) records
    ``structlog/_base.py _proxy_to_logger`` as every record's source.  This
    counts the frames from the one that calls the stdlib logger (the caller
    of structlog's ``_process_event``, which runs this processor) up to the
    first frame outside structlog, and passes that as ``stacklevel``.  A
    logger with its own ``findCaller`` (structlog's) is left alone, and so
    is a stack not shaped as expected.
    """
    if type(logger).findCaller is not logging.Logger.findCaller:
        return event_dict
    frame = sys._getframe(1)  # noqa: SLF001 - the only way to see the caller's frame
    if frame.f_code.co_name != "_process_event" or frame.f_back is None:
        return event_dict
    caller: FrameType | None = frame.f_back
    level = 0
    while caller is not None:
        if not _is_logging_frame(caller):
            level += 1
            if not str(caller.f_globals.get("__name__", "")).startswith(_LIBRARY_MODULES):
                requested = event_dict.get("stacklevel", 1)
                extra = requested - 1 if isinstance(requested, int) and requested > 1 else 0
                event_dict["stacklevel"] = level + extra
                return event_dict
        caller = caller.f_back
    return event_dict


def configure(
    address: str | None = None,
    *,
    level: str | int = "INFO",
    structlog: bool = True,
    service: str | None = None,
    wire: Wire = "pickle",
    tls: bool | ssl.SSLContext | None = None,
    ca: str | os.PathLike[str] | None = None,
    cert: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
) -> SinkHandler:
    """Send the root logger (and structlog, if installed) to the sink.

    ``address`` defaults to ``NETLOG_ADDRESS``, then ``127.0.0.1:9020``
    (``127.0.0.1:6514`` over TLS).  ``service`` (default: the program name)
    is attached to every record, so records from many applications can be
    told apart on the sink.  ``tls``, ``ca``, ``cert``, ``key``: as for
    :class:`SinkHandler` (the server is verified by default).
    """
    secure = bool(tls) or ca is not None or cert is not None
    default = DEFAULT_TLS_ADDRESS if secure else DEFAULT_ADDRESS
    port_default = DEFAULT_TLS_PORT if secure else DEFAULT_PORT
    host, port = parse_address(address or os.environ.get("NETLOG_ADDRESS") or default, port_default)
    handler = SinkHandler(host, port, wire=wire, tls=tls, ca=ca, cert=cert, key=key)
    handler.addFilter(_ServiceFilter(service or _program_name()))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, SinkHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    if structlog:
        _configure_structlog()
    return handler


def _program_name() -> str:
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    name = os.path.basename(argv0)  # noqa: PTH119 - a program name, not a path to open
    return name.removesuffix(".py") or "python"


def _configure_structlog() -> None:
    try:
        import structlog  # noqa: PLC0415 - optional: only when the application has it
    except ImportError:
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            _carry_reserved,
            _caller_stacklevel,
            structlog.stdlib.render_to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


__all__ = ["SinkHandler", "configure", "parse_address", "tls_context"]
