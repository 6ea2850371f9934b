"""What the forwarder needs of a place it ships records to.

The forwarder (its own process, asyncio: nats-py is asyncio, the sink is
gevent, and the two never share a loop) reads stored lines from the store
at its persisted position and calls :meth:`Destination.send` with a batch.
``send`` returns only once the destination has taken the whole batch as
far as its transport can say (JetStream: every message acknowledged; TCP
syslog: written and drained to the kernel), and raises on any failure, so
the forwarder advances its position only past batches that were taken and
retries the rest with backoff: at least once, never a gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class StoredLine(Protocol):
    """One record as the store holds it."""

    @property
    def id(self) -> str:
        """The record's stable id (JetStream's ``Nats-Msg-Id``: resends are dropped)."""
        ...

    @property
    def line(self) -> bytes:
        """The record's JSON line as stored, without its newline."""
        ...


class Destination(Protocol):
    """A place records are shipped to; see the module docstring for the contract."""

    name: str
    """For reports and metric labels: ``nats``, ``syslog``."""

    async def connect(self) -> None:
        """Open the connection (and create what must exist, e.g. the stream); raise on failure."""
        ...

    async def send(self, batch: Sequence[StoredLine]) -> None:
        """Deliver ``batch`` in order; return when taken, raise when not (all may be resent)."""
        ...

    async def close(self) -> None:
        """Let go of the connection; never raises."""
        ...
