"""The start-up warning when a listener is reachable beyond this machine without a token.

Binding ``0.0.0.0`` (the default, right inside a container) puts every
record in reach of the network: whoever reaches the HTTP port reads them,
whoever reaches a log port writes them.  One line on stderr says so, naming
the ports, unless a token is set: then whoever set it chose to serve the
network (the log ports still take records from anyone who reaches them:
they speak their senders' protocols, which carry no token).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["LOOPBACK", "exposure_warning", "is_loopback"]

#: Bind addresses that keep every listener on this machine.
LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost", "[::1]"})

#: What each listener gives whoever reaches it, by ready-file name.
_WHAT: Final = {
    "http": "HTTP {port}: reads every record (viewer, /api, /events) and writes (POST /log)",
    "echo": "echo {port}",
    "responder": "responder {port}",
}


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps a listener on this machine (127.0.0.0/8 included)."""
    name = host.strip().lower()
    return name in LOOPBACK or name.startswith("127.")


def exposure_warning(host: str, ports: Mapping[str, int], *, token_set: bool) -> str | None:
    """The warning line for listeners on ``ports`` bound to ``host``, or ``None`` when safe."""
    if token_set or is_loopback(host) or not ports:
        return None
    parts = [
        _WHAT.get(name, "{name} {port}: writes records").format(name=name, port=port)
        for name, port in ports.items()
    ]
    fix = "set --auth-token (NETLOG_AUTH_TOKEN), or bind --host 127.0.0.1 to keep it local"
    return (
        f"netlog: WARNING: listening on {host} without an access token, reachable by"
        f" anyone on the network: {'; '.join(parts)}; {fix}"
    )
