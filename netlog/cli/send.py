"""``netlog send``: records from a shell, delivered or a clear failure.

Made for scripts: exit 0 once every record reached the sink, 1 with one line
on stderr when they did not within ``--timeout``, so a run is bounded.
``--tls`` sends to the TLS log port (6514 by default), verifying the server
against ``--ca`` (else the system's CAs); ``--cert``/``--key`` present a
client certificate.  A TLS failure (an unverified server, a refused client
certificate) is the one line's reason.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterable
from typing import Any, Final, TextIO

from netlog.cli.argtypes import address, timeout
from netlog.client import (
    DEFAULT_ADDRESS,
    DEFAULT_TLS_ADDRESS,
    DEFAULT_TLS_PORT,
    SinkHandler,
    parse_address,
)
from netlog.settings import DEFAULT_LOG_TCP_PORT

DEFAULT_LEVEL: Final = "INFO"
DEFAULT_LOGGER: Final = "netlog.send"
DEFAULT_TIMEOUT: Final = 5.0


def _level(text: str) -> str:
    name = text.strip().upper()
    if not isinstance(logging.getLevelName(name), int):
        raise argparse.ArgumentTypeError(f"{text!r} is not a logging level")
    return name


def add_send_parser(commands: argparse._SubParsersAction[Any]) -> None:
    """``netlog send``: records from arguments or standard input."""
    send = commands.add_parser(
        "send",
        help="send a log record (or one per line of standard input) to the sink",
        description="Send one record from MESSAGE, or one per line of standard input.",
    )
    send.add_argument("message", nargs="*", help="the message (default: read standard input)")
    send.add_argument(
        "--address",
        type=address(DEFAULT_LOG_TCP_PORT),
        default=None,
        help=f"sink HOST:PORT (env NETLOG_ADDRESS, default {DEFAULT_ADDRESS})",
    )
    send.add_argument(
        "--level",
        type=_level,
        default=DEFAULT_LEVEL,
        help=f"level name (default {DEFAULT_LEVEL.lower()})",
    )
    send.add_argument("--logger", default=DEFAULT_LOGGER, help="logger name")
    send.add_argument(
        "--tls",
        action="store_true",
        help=f"send over TLS, verifying the server (default address {DEFAULT_TLS_ADDRESS})",
    )
    send.add_argument("--ca", help="PEM file of the CA that signed the server's certificate")
    send.add_argument("--cert", help="PEM client certificate, for a sink that requires one")
    send.add_argument("--key", help="PEM key of --cert (default: in the --cert file)")
    send.add_argument(
        "--timeout",
        type=timeout,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to deliver everything before failing (default {DEFAULT_TIMEOUT:g})",
    )


def _lines(messages: list[str], stdin: TextIO) -> Iterable[str]:
    if messages:
        yield " ".join(messages)
        return
    for line in stdin:
        text = line.rstrip("\r\n")
        if text:
            yield text


#: A LogRecord's source attributes.  A shell line is not code: these are
#: None, so the record has no source rather than this file's run_send.
_NO_SOURCE: Final = dict.fromkeys(
    (
        "pathname",
        "filename",
        "module",
        "lineno",
        "funcName",
        "process",
        "processName",
        "thread",
        "threadName",
        "taskName",
    )
)


def _record(logger: str, level: int, text: str) -> logging.LogRecord:
    """One record for ``text``, made directly: no logger, so no caller to find."""
    return logging.makeLogRecord(
        {
            **_NO_SOURCE,
            "name": logger,
            "levelno": level,
            "levelname": logging.getLevelName(level),
            "msg": text,
        }
    )


def run_send(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    """Send records; exit 1 if they were not all delivered within ``--timeout``."""
    tls = args.tls or args.ca is not None or args.cert is not None
    default = DEFAULT_TLS_ADDRESS if tls else DEFAULT_ADDRESS
    host, port = args.address or parse_address(
        os.environ.get("NETLOG_ADDRESS") or default,
        DEFAULT_TLS_PORT if tls else DEFAULT_LOG_TCP_PORT,
    )
    try:
        handler = SinkHandler(
            host,
            port,
            capacity=1_000_000,
            close_timeout=args.timeout,
            warn_undelivered=False,
            tls=tls,
            ca=args.ca,
            cert=args.cert,
            key=args.key,
        )
    except (OSError, ValueError) as exc:
        print(f"netlog send: cannot use the TLS files: {exc}", file=sys.stderr)
        return 1
    level = logging.getLevelName(args.level)
    deadline = time.monotonic() + args.timeout
    count = 0
    for text in _lines(args.message, stdin or sys.stdin):
        handler.handle(_record(args.logger, level, text))
        count += 1
    delivered = handler.drain(max(0.0, deadline - time.monotonic()))
    handler.close(timeout=0.0)
    if not delivered:
        why = f": {handler.last_error}" if handler.last_error is not None else ""
        print(
            f"netlog send: could not deliver {handler.queued or count} of {count} records "
            f"to {host}:{port} within {args.timeout:g}s{why}",
            file=sys.stderr,
        )
        return 1
    return 0
