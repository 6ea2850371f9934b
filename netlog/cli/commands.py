"""``netlog send`` and ``netlog probe``: the client side from a shell.

Both are made for scripts and health checks: a clear exit status, one line
on stderr when something is wrong, and a bounded run time.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from netlog.client import DEFAULT_ADDRESS, SinkHandler, parse_address

DEFAULT_PROBE_ADDRESS = "127.0.0.1:7007"
DEFAULT_PROBE_PORT = 7007


def _address(default_port: int) -> Callable[[str], tuple[str, int]]:
    def convert(text: str) -> tuple[str, int]:
        try:
            return parse_address(text, default_port)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _level(text: str) -> str:
    name = text.strip().upper()
    if not isinstance(logging.getLevelName(name), int):
        raise argparse.ArgumentTypeError(f"{text!r} is not a logging level")
    return name


def _in_range(parse: Callable[[str], float], low: float, high: float, what: str) -> Any:
    """An argparse type: ``parse`` the text, then require ``low <= value <= high``."""

    def convert(text: str) -> float:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} must be between {low:g} and {high:g}")
        return value

    return convert


_timeout = _in_range(float, 0.001, 3600, "a number of seconds")
_retries = _in_range(int, 0, 100, "a whole number")


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
        type=_address(9020),
        default=None,
        help=f"sink HOST:PORT (env NETLOG_ADDRESS, default {DEFAULT_ADDRESS})",
    )
    send.add_argument("--level", type=_level, default="INFO", help="level name (default info)")
    send.add_argument("--logger", default="netlog.send", help="logger name")
    send.add_argument(
        "--timeout",
        type=_timeout,
        default=5.0,
        help="seconds to deliver everything before failing (default 5)",
    )


def add_probe_parser(commands: argparse._SubParsersAction[Any]) -> None:
    """``netlog probe``: a UDP ping of the responder, for health checks."""
    probe = commands.add_parser(
        "probe",
        help="ping the UDP responder; exit 0 on pong, 1 otherwise",
        description="Send 'ping' to the UDP responder and wait for 'pong'.",
    )
    probe.add_argument(
        "address",
        nargs="?",
        type=_address(DEFAULT_PROBE_PORT),
        default=(parse_address(DEFAULT_PROBE_ADDRESS)),
        help=f"responder HOST:PORT (default {DEFAULT_PROBE_ADDRESS})",
    )
    probe.add_argument(
        "--timeout", type=_timeout, default=1.0, help="seconds to wait for each reply (default 1)"
    )
    probe.add_argument(
        "--retries",
        type=_retries,
        default=2,
        help="probes to send again after a timeout (default 2)",
    )


def _lines(messages: list[str], stdin: TextIO) -> Iterable[str]:
    if messages:
        yield " ".join(messages)
        return
    for line in stdin:
        text = line.rstrip("\r\n")
        if text:
            yield text


def run_send(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    """Send records; exit 1 if they were not all delivered within ``--timeout``."""
    import os  # noqa: PLC0415 - only for the environment default

    host, port = args.address or parse_address(os.environ.get("NETLOG_ADDRESS") or DEFAULT_ADDRESS)
    handler = SinkHandler(
        host, port, capacity=1_000_000, close_timeout=args.timeout, warn_undelivered=False
    )
    # A private logger: nothing else in the process should see these records.
    logger = logging.Logger(args.logger, logging.DEBUG)  # noqa: LOG001
    logger.addHandler(handler)
    level = logging.getLevelName(args.level)
    deadline = time.monotonic() + args.timeout
    count = 0
    for text in _lines(args.message, stdin or sys.stdin):
        logger.log(level, "%s", text)
        count += 1
    delivered = handler.drain(max(0.0, deadline - time.monotonic()))
    handler.close(timeout=0.0)
    if not delivered:
        print(
            f"netlog send: could not deliver {handler.queued or count} of {count} records "
            f"to {host}:{port} within {args.timeout:g}s",
            file=sys.stderr,
        )
        return 1
    return 0


def probe(address: tuple[str, int], timeout: float, retries: int) -> bool:
    """``True`` when the responder at ``address`` answers ``pong``."""
    host, port = address
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError:
        return False
    family, _, _, _, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for _ in range(retries + 1):
            try:
                sock.sendto(b"ping\n", sockaddr)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    data = sock.recv(64)
                    if data.strip().lower() == b"pong":
                        return True
            except OSError:  # timeout, or ICMP port unreachable reported as refused
                continue
    return False


def run_probe(args: argparse.Namespace) -> int:
    """Exit 0 on pong, 1 otherwise, with one line either way."""
    host, port = args.address
    if probe(args.address, args.timeout, args.retries):
        print(f"pong from {host}:{port}")
        return 0
    tries = args.retries + 1
    print(f"netlog probe: no pong from {host}:{port} after {tries} tries", file=sys.stderr)
    return 1
