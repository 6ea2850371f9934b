"""Settings for ``netlog serve``: one frozen dataclass and the parser that fills it.

Precedence is command line, then ``NETLOG_<OPTION>`` environment variables,
then the defaults below.  The environment is read into argparse *defaults*,
so one parser validates both sources and a bad value from either gets the
same one-line error naming where it came from.
"""

from __future__ import annotations

import argparse
import logging.handlers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

ConsoleMode = Literal["pretty", "json", "off"]

DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - a server in a container must listen on all interfaces
DEFAULT_ECHO_PORT = 7007
DEFAULT_RESPONDER_PORT = 7007
DEFAULT_LOG_TCP_PORT = logging.handlers.DEFAULT_TCP_LOGGING_PORT  # 9020
DEFAULT_LOG_UDP_PORT = logging.handlers.DEFAULT_UDP_LOGGING_PORT  # 9021
DEFAULT_HTTP_PORT = logging.handlers.DEFAULT_HTTP_LOGGING_PORT  # 9022
DEFAULT_LOG_DIR = Path("./netlog-data")
DEFAULT_GRACE = 5.0
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_MAX_FRAME = 1 << 20
DEFAULT_MAX_LINE = 1 << 20
DEFAULT_RESPONDER_RATE = 1000.0
DEFAULT_FLUSH_INTERVAL = 1.0
DEFAULT_MAX_BYTES = 100 * (1 << 20)
DEFAULT_BACKUPS = 5

#: A port option's value that disables its listener.
DISABLED = -1


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``netlog serve`` can be told; immutable once parsed."""

    host: str = DEFAULT_HOST
    echo_port: int = DEFAULT_ECHO_PORT
    responder_port: int = DEFAULT_RESPONDER_PORT
    log_tcp_port: int = DEFAULT_LOG_TCP_PORT
    log_udp_port: int = DEFAULT_LOG_UDP_PORT
    http_port: int = DEFAULT_HTTP_PORT
    log_dir: Path = DEFAULT_LOG_DIR
    console: ConsoleMode = "pretty"
    grace: float = DEFAULT_GRACE
    ready_file: Path | None = None
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_frame: int = DEFAULT_MAX_FRAME
    max_line: int = DEFAULT_MAX_LINE
    responder_rate: float = DEFAULT_RESPONDER_RATE
    flush_interval: float = DEFAULT_FLUSH_INTERVAL
    max_bytes: int = DEFAULT_MAX_BYTES
    backups: int = DEFAULT_BACKUPS


def env_name(option: str) -> str:
    """``--log-tcp-port`` -> ``NETLOG_LOG_TCP_PORT``."""
    return "NETLOG_" + option.lstrip("-").replace("-", "_").upper()


def _port(text: str) -> int:
    value = _integer(text)
    if not DISABLED <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535, or -1 to disable)")
    return value


def _integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 10**9:  # also rejects nan and inf
        raise argparse.ArgumentTypeError(f"{text!r} must be a number >= 0")
    return value


def _positive_seconds(text: str) -> float:
    value = _non_negative(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


def _console(text: str) -> str:
    value = text.strip().lower()
    if value not in ("pretty", "json", "off"):
        raise argparse.ArgumentTypeError(f"{text!r} is not one of pretty, json, off")
    return value


def _path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def _host(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty host")
    return text.strip()


# option, converter, default, help.  One table drives the parser, the
# environment lookup and the README, so they cannot drift apart.
_OPTIONS: tuple[tuple[str, Callable[[str], object], object, str], ...] = (
    ("--host", _host, DEFAULT_HOST, "address every listener binds"),
    ("--echo-port", _port, DEFAULT_ECHO_PORT, "TCP echo port"),
    ("--responder-port", _port, DEFAULT_RESPONDER_PORT, "UDP responder port"),
    ("--log-tcp-port", _port, DEFAULT_LOG_TCP_PORT, "log sink TCP port"),
    ("--log-udp-port", _port, DEFAULT_LOG_UDP_PORT, "log sink UDP port"),
    ("--http-port", _port, DEFAULT_HTTP_PORT, "HTTP port"),
    ("--log-dir", _path, DEFAULT_LOG_DIR, "where records.jsonl is written"),
    ("--console", _console, "pretty", "console output: pretty, json or off"),
    ("--grace", _non_negative, DEFAULT_GRACE, "seconds shutdown waits for open log connections"),
    ("--ready-file", _path, None, "write the bound ports here as JSON once listening"),
    ("--idle-timeout", _positive_seconds, DEFAULT_IDLE_TIMEOUT, "close silent connections"),
    (
        "--max-connections",
        _positive_int,
        DEFAULT_MAX_CONNECTIONS,
        "concurrent connections per TCP listener",
    ),
    ("--max-frame", _positive_int, DEFAULT_MAX_FRAME, "largest SocketHandler frame, bytes"),
    ("--max-line", _positive_int, DEFAULT_MAX_LINE, "longest JSON or text line, bytes"),
    (
        "--responder-rate",
        _non_negative,
        DEFAULT_RESPONDER_RATE,
        "UDP replies/s per source, 0 = unlimited",
    ),
    ("--flush-interval", _positive_seconds, DEFAULT_FLUSH_INTERVAL, "seconds between file flushes"),
    ("--max-bytes", _positive_int, DEFAULT_MAX_BYTES, "rotate records.jsonl at this size"),
    ("--backups", _non_negative_int, DEFAULT_BACKUPS, "rotated files kept"),
)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but every error is one line on stderr and exit status 2.

    argparse's default prints the whole usage block first; for a server
    started by compose or a script, the one line naming the problem is what
    reaches the person reading the log.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print ``message`` as the only line and exit 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_serve_options(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """Add the ``serve`` options, with defaults taken from ``environ`` where set."""
    for option, convert, default, text in _OPTIONS:
        name = env_name(option)
        value = default
        raw = environ.get(name)
        if raw is not None:
            try:
                value = convert(raw)
            except argparse.ArgumentTypeError as exc:
                parser.error(f"environment variable {name}: {exc}")
        parser.add_argument(
            option,
            type=convert,
            default=value,
            help=f"{text} (env {name}, default {default})",
        )


def settings_from_namespace(namespace: argparse.Namespace) -> Settings:
    """Build :class:`Settings` from parsed ``serve`` options."""
    values = {f.name: getattr(namespace, f.name) for f in fields(Settings)}
    return Settings(**values)


def parse_serve_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Parse ``serve`` options alone: the pure entry point that tests use."""
    parser = ArgumentParser(prog="netlog serve")
    add_serve_options(parser, os.environ if environ is None else environ)
    return settings_from_namespace(parser.parse_args(argv))
