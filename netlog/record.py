"""The record model: one log record as every decoder produces it.

A :class:`Record` carries exactly the keys of DESIGN.md's "Records on disk".
Times are kept as float epoch seconds (what ``LogRecord.created`` and
``time.time()`` give) and turned into RFC 3339 text only when written, so a
decoder never pays for formatting a record that a sink may drop.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

#: The ``format`` values a record may carry.
FORMATS = ("pickle", "json", "text", "syslog", "http")


class Record(NamedTuple):
    """One received log record.

    A NamedTuple rather than a dataclass: it is immutable, and constructing
    one is the cheapest structured object Python offers, which matters at
    hundreds of thousands of records a second.
    """

    ts: float
    """When the application made the record (epoch seconds, UTC)."""
    received: float
    """When the sink received it (epoch seconds, UTC)."""
    level: str
    """Lower-case level name (``info``...) or the sender's own."""
    logger: str
    message: str
    fields: dict[str, Any]
    """Every structured key the sender attached that is not a top-level key."""
    exc: str | None
    """Traceback text, when there is one."""
    peer: str
    """``"ip:port"`` of the sender."""
    format: str
    """One of :data:`FORMATS`."""


def rfc3339(ts: float) -> str:
    """Format epoch seconds as RFC 3339 UTC with microseconds and a ``Z``.

    >>> rfc3339(0.5)
    '1970-01-01T00:00:00.500000Z'
    """
    try:
        moment = datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        # A sender's clock or a hostile frame can claim any float; the
        # record is still worth keeping, so clamp rather than fail.
        moment = datetime.fromtimestamp(0, UTC) if ts < 0 else datetime.max.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_peer(address: Any) -> str:
    """Render a socket address as ``"ip:port"`` (``"[::1]:port"`` for IPv6)."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if ":" in str(host):
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    return str(address)
