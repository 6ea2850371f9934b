"""``netlog probe``: a UDP ping of the responder, for health checks.

Exit 0 on ``pong`` and 1 otherwise, with one line either way and a run time
bounded by ``--timeout`` times the number of tries.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from typing import Any, Final

from netlog.cli.argtypes import address, in_range, timeout
from netlog.client import parse_address
from netlog.settings import DEFAULT_RESPONDER_PORT

DEFAULT_PROBE_PORT: Final = DEFAULT_RESPONDER_PORT
DEFAULT_PROBE_ADDRESS: Final = f"127.0.0.1:{DEFAULT_PROBE_PORT}"
DEFAULT_TIMEOUT: Final = 1.0
DEFAULT_RETRIES: Final = 2

_retries = in_range(int, 0, 100, "a whole number")


def add_probe_parser(commands: argparse._SubParsersAction[Any]) -> None:
    """``netlog probe``: a UDP ping of the responder, for health checks."""
    probe_parser = commands.add_parser(
        "probe",
        help="ping the UDP responder; exit 0 on pong, 1 otherwise",
        description="Send 'ping' to the UDP responder and wait for 'pong'.",
    )
    probe_parser.add_argument(
        "address",
        nargs="?",
        type=address(DEFAULT_PROBE_PORT),
        default=parse_address(DEFAULT_PROBE_ADDRESS),
        help=f"responder HOST:PORT (default {DEFAULT_PROBE_ADDRESS})",
    )
    probe_parser.add_argument(
        "--timeout",
        type=timeout,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for each reply (default {DEFAULT_TIMEOUT:g})",
    )
    probe_parser.add_argument(
        "--retries",
        type=_retries,
        default=DEFAULT_RETRIES,
        help=f"probes to send again after a timeout (default {DEFAULT_RETRIES})",
    )


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
