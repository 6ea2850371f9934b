"""The record model: one log record as every decoder produces it.

A :class:`Record` carries exactly the keys of ARCHITECTURE.md's "Records on disk".
Times are kept as float epoch seconds (what ``LogRecord.created`` and
``time.time()`` give) and turned into RFC 3339 text only when written, so a
decoder never pays for formatting a record that a sink may drop.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

#: The ``format`` values a record may carry.
FORMATS = ("pickle", "json", "text", "syslog", "http", "gelf", "fluent", "otlp")


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
    id: str = ""
    """The record's stable id (:func:`new_id`); empty until the pipeline encodes it.

    A record that already has one (forwarded from another netlog) keeps it.
    Last and defaulted, so decoders build records without naming it.
    """
    host: str = ""
    """The machine that received the record first, for records ``netlog collect``
    gathered from many (the NATS subject's last token); empty, and absent from
    the line, for a record this process received itself.
    """


#: ``Record(...)`` without the namedtuple's Python-level ``__new__``:
#: ``new_record(Record, (...))`` makes the same tuple, all eleven fields
#: given.  For the decoders' per-record paths, where that call was a third
#: of a line's cost.
new_record: Final = tuple.__new__


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


#: Crockford's base32: digits then letters without I, L, O, U, in ASCII order,
#: so ids compare as text in the order of the numbers they spell.
_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS: Final = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
#: Characters of each part of an id: time (ms), node, counter.
_TIME_CHARS: Final = 10
_NODE_CHARS: Final = 6
_COUNT_CHARS: Final = 10
#: Length of every id :func:`new_id` makes.
ID_LENGTH: Final = _TIME_CHARS + _NODE_CHARS + _COUNT_CHARS


def _base32(number: int, width: int) -> str:
    """``number`` (non-negative, below ``32**width``) as ``width`` base32 characters."""
    out = []
    for _ in range(width):
        out.append(_ALPHABET[number & 31])
        number >>= 5
    return "".join(reversed(out))


class _IdState:
    """The process's id node and counter; reseeded in a forked child (``--workers``)."""

    def __init__(self) -> None:
        self.seed()

    def seed(self) -> None:
        """Draw a new random node and counter start, so no two processes share a sequence."""
        bits = int.from_bytes(os.urandom(10), "big")
        self.node = _base32(bits >> 50, _NODE_CHARS)
        # Start anywhere in the lower half: 2**49 ids before it could wrap.
        self.count = bits & ((1 << 49) - 1)
        self.high = _base32(self.count >> 10, _COUNT_CHARS - 2)
        self.ms = -1
        self.time = ""


_state = _IdState()
os.register_at_fork(after_in_child=_state.seed)


def new_id(received: float) -> str:
    """A new record id: 26 characters, time-ordered, unique across processes and machines.

    ULID-like: the receive time in milliseconds (10 base32 characters, so
    ids sort by receive time as text), then a random node drawn once per
    process (6 characters, 30 bits) and a counter that starts at a random
    value (10 characters): later ids of one process are always greater,
    and two processes (restarts, ``--workers``, other machines) share a
    prefix only if they draw the same node in the same millisecond.  The
    time part and the counter's high digits are cached, so an id costs a
    few hundred nanoseconds; no lock, because the sinks run on one thread.
    """
    state = _state
    try:
        ms = int(received * 1000)
    except (TypeError, ValueError, OverflowError):
        ms = 0
    if ms != state.ms:
        state.ms = ms
        state.time = _base32(min(max(ms, 0), (1 << 50) - 1), _TIME_CHARS)
    count = state.count = state.count + 1
    low = count & 1023
    if low == 0:
        state.high = _base32((count >> 10) & ((1 << 40) - 1), _COUNT_CHARS - 2)
    return f"{state.time}{state.node}{state.high}{_PAIRS[low]}"


def id_time(record_id: str) -> float | None:
    """The receive time (epoch seconds) an id spells, or None when it is not one of ours."""
    if len(record_id) != ID_LENGTH:
        return None
    ms = 0
    for char in record_id[:_TIME_CHARS]:
        digit = _ALPHABET.find(char)
        if digit < 0:
            return None
        ms = ms * 32 + digit
    return ms / 1000
