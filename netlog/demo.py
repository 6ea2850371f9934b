"""A demo application that logs to the sink every second: ``python -m netlog.demo``.

``docker compose --profile demo up`` runs it next to the sink, so the sink's
console (``docker compose logs -f netlog``) shows records flowing.  It sends
the way ordinary applications do, with nothing from netlog on the sending
side, in turn:

* stdlib ``logging`` through ``logging.handlers.SocketHandler`` (pickle frames);
* structlog through stdlib into the same ``SocketHandler``, its keys becoming
  ``LogRecord`` attributes (the record's ``fields`` in the sink);
* structlog's ``JSONRenderer``, one JSON object per line, on a TCP connection
  of its own (the ``json`` format in the sink).

Every tenth tick logs a warning, every twentieth a handled exception with
its traceback.  The environment configures it:

``NETLOG_DEMO_HOST`` (default ``localhost``), ``NETLOG_DEMO_PORT`` (9020),
``NETLOG_DEMO_INTERVAL`` seconds between records (1), ``NETLOG_DEMO_COUNT``
records to send before exiting (0, the default: until SIGTERM or SIGINT).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

import structlog

N = TypeVar("N", int, float)

DEFAULT_HOST = "localhost"
DEFAULT_PORT = logging.handlers.DEFAULT_TCP_LOGGING_PORT
DEFAULT_INTERVAL = 1.0
CONNECT_TIMEOUT = 2.0


class ConfigError(ValueError):
    """An environment variable has a value the demo cannot use."""


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """Where to send, how often, and how many records."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    interval: float = DEFAULT_INTERVAL
    count: int = 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> DemoConfig:
        """Read ``NETLOG_DEMO_*``; :class:`ConfigError` names a bad one."""
        host = environ.get("NETLOG_DEMO_HOST", DEFAULT_HOST).strip()
        if not host:
            raise ConfigError("NETLOG_DEMO_HOST: an empty host")
        port = _number(environ, "NETLOG_DEMO_PORT", DEFAULT_PORT, int)
        if not 1 <= port <= 65535:
            raise ConfigError(f"NETLOG_DEMO_PORT: {port} is not a port (1-65535)")
        interval = _number(environ, "NETLOG_DEMO_INTERVAL", DEFAULT_INTERVAL, float)
        if not 0 < interval <= 3600:
            raise ConfigError(f"NETLOG_DEMO_INTERVAL: {interval} is not in (0, 3600] seconds")
        count = _number(environ, "NETLOG_DEMO_COUNT", 0, int)
        if count < 0:
            raise ConfigError(f"NETLOG_DEMO_COUNT: {count} must not be negative")
        return cls(host=host, port=port, interval=interval, count=count)


def _number(environ: Mapping[str, str], name: str, default: N, kind: type[N]) -> N:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return kind(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a number") from None


class LineSender:
    """A structlog logger that writes each rendered line to a TCP connection.

    It connects on first use and again after the connection breaks, so the
    demo survives the sink restarting; a line that cannot be sent is counted
    as dropped rather than stopping the demo.
    """

    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)
        self._sock: socket.socket | None = None
        self.dropped = 0

    def msg(self, message: str) -> None:
        """Send one rendered line (structlog calls this for every level)."""
        data = message.encode("utf-8", "replace") + b"\n"
        for _attempt in range(2):
            try:
                self._connected().sendall(data)
            except OSError:
                self.close()
            else:
                return
        self.dropped += 1

    debug = info = warning = error = critical = exception = log = msg

    def close(self) -> None:
        """Close the connection, if there is one."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _connected(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection(self._address, timeout=CONNECT_TIMEOUT)
            sock.settimeout(CONNECT_TIMEOUT)
            self._sock = sock
        return self._sock


class Demo:
    """The three senders, and one tick of records across them."""

    def __init__(self, config: DemoConfig) -> None:
        self.socket_handler = logging.handlers.SocketHandler(config.host, config.port)
        self.stdlib = logging.getLogger("demo.stdlib")
        self.stdlib.setLevel(logging.DEBUG)
        self.stdlib.propagate = False
        self.stdlib.addHandler(self.socket_handler)

        # structlog's LoggerFactory makes a logger whose findCaller skips
        # structlog's frames: a plain logging.getLogger() one would record
        # structlog/_base.py _proxy_to_logger as every record's source.
        via_stdlib = structlog.stdlib.LoggerFactory()("demo.structlog")
        via_stdlib.setLevel(logging.DEBUG)
        via_stdlib.propagate = False
        via_stdlib.addHandler(self.socket_handler)
        self.structlog_stdlib: structlog.stdlib.BoundLogger = structlog.wrap_logger(
            via_stdlib,
            wrapper_class=structlog.stdlib.BoundLogger,
            # exc_info goes on to the LogRecord, so the sink gets exc_text
            processors=[structlog.stdlib.render_to_log_kwargs],
        )

        self.line_sender = LineSender(config.host, config.port)
        self.structlog_json: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
            self.line_sender,
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        ).bind(logger="demo.json")

    def tick(self, number: int) -> str:
        """Log record ``number`` through one of the senders; which one it was."""
        context: dict[str, Any] = {"tick": number, "pid": os.getpid()}
        sender = ("stdlib", "structlog.stdlib", "structlog.json")[number % 3]
        if number % 20 == 0 and number:
            self._error(sender, context)
        elif number % 10 == 0 and number:
            self._log(sender, logging.WARNING, f"demo tick {number}: a warning", context)
        else:
            self._log(sender, logging.INFO, f"demo tick {number}", context)
        return sender

    def _log(self, sender: str, level: int, message: str, context: dict[str, Any]) -> None:
        if sender == "stdlib":
            self.stdlib.log(level, message, extra={**context, "via": sender})
        elif sender == "structlog.stdlib":
            self.structlog_stdlib.log(level, message, **context, via=sender)
        else:
            self.structlog_json.log(level, message, **context, via=sender)

    def _error(self, sender: str, context: dict[str, Any]) -> None:
        message = f"demo tick {context['tick']}: a handled error"
        try:
            _ = 1 / 0
        except ZeroDivisionError:
            if sender == "stdlib":
                self.stdlib.exception(message, extra={**context, "via": sender})
            elif sender == "structlog.stdlib":
                self.structlog_stdlib.exception(message, **context, via=sender)
            else:
                self.structlog_json.exception(message, **context, via=sender)

    def close(self) -> None:
        """Flush and close both connections."""
        self.socket_handler.close()
        self.line_sender.close()


def main(environ: Mapping[str, str] | None = None) -> int:
    """Log until SIGTERM/SIGINT (or ``NETLOG_DEMO_COUNT`` records); the exit status."""
    try:
        config = DemoConfig.from_environ(os.environ if environ is None else environ)
    except ConfigError as exc:
        print(f"netlog.demo: error: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    # As PID 1 in a container, a signal without a handler is ignored:
    # without these `docker stop` would wait for SIGKILL.
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    print(
        f"netlog.demo: sending a record every {config.interval:g} s to {config.host}:{config.port}",
        flush=True,
    )
    demo = Demo(config)
    sent = 0
    try:
        while not stop.is_set():
            sender = demo.tick(sent)
            sent += 1
            print(f"netlog.demo: record {sent} via {sender}", flush=True)
            if config.count and sent >= config.count:
                break
            stop.wait(config.interval)
    finally:
        demo.close()
    print(
        f"netlog.demo: stopped after {sent} records "
        f"({demo.line_sender.dropped} JSON lines dropped)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
