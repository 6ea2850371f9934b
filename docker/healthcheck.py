# ruff: noqa: INP001 - a script copied into the image, not a package
"""The container's health check: one ``health`` datagram to the UDP responder, ``ok`` back.

Not ``netlog probe``: that sends ``ping``, which the responder counts as a
probe, so a check every five seconds would fill the shutdown summary's probe
count (``probes: 13 answered`` after one ``nc -u``).  ``health`` is answered
the same way and counted apart (``health_checks``).

Standard library only; exit 0 on ``ok``, 1 otherwise, one line either way.
The port is the container's ``NETLOG_RESPONDER_PORT`` (default 7007), so
changing it in compose's ``environment:`` keeps the check right.
"""

from __future__ import annotations

import os
import socket
import sys

HOST = "127.0.0.1"
DEFAULT_PORT = 7007
TRIES = 3
TIMEOUT = 1.0


def check(port: int) -> bool:
    """``True`` when the responder on ``port`` answers a health check with ``ok``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        for _ in range(TRIES):
            try:
                sock.sendto(b"health\n", (HOST, port))
                if sock.recv(64).strip() == b"ok":
                    return True
            except OSError:  # a timeout, or ICMP port unreachable reported as refused
                continue
    return False


def main() -> int:
    """Exit status for Docker: 0 healthy, 1 not."""
    raw = os.environ.get("NETLOG_RESPONDER_PORT", "") or str(DEFAULT_PORT)
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        print(f"healthcheck: NETLOG_RESPONDER_PORT={raw}: no responder to check", file=sys.stderr)
        return 1
    if check(port):
        print(f"ok from {HOST}:{port}")
        return 0
    print(f"healthcheck: no ok from {HOST}:{port} after {TRIES} tries", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
