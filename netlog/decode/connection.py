"""The bookkeeping every stream decoder keeps about its connection, whatever the protocol.

:class:`~netlog.decode.stream.StreamDecoder`, GELF over TCP and Fluentd's
forward protocol count records, losses and notes the same way, and end the
same way: after EOF or a fatal error, anything fed raises.  One base keeps
that in one place, so the listener (``servers/logsink.py``) reads the same
counters from every :class:`~netlog.decode.stream.ConnectionDecoder`.

Nothing here runs per record: a decoder's ``feed`` tests ``_error`` and
``_eof`` inline, as before, and only calls :meth:`_refused` once the stream
has ended, so the hot path costs what it did when each decoder kept these
fields itself.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

from netlog.errors import DecodeError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ConnectionBookkeeping"]


class ConnectionBookkeeping:
    """A connection decoder's counters, its peer, its clock, and how it ends."""

    records: int
    """Complete records produced so far."""
    dropped: collections.Counter[str]
    """Non-fatal problems that lost data, by reason (``bad_frame``, ``truncated``...)."""
    notes: collections.Counter[str]
    """Records kept in a degraded form, by reason (``json_as_text``, ``invalid_utf8``)."""
    last_problem: str | None
    """Text of the most recent non-fatal problem, for the server to report once."""

    def __init__(self, peer: str, *, max_line: int, clock: Callable[[], float]) -> None:
        self.peer = peer
        self.max_line = max_line
        self._clock = clock
        self.records = 0
        self.dropped = collections.Counter()
        self.notes = collections.Counter()
        self.last_problem = None
        self._eof = False
        self._error: DecodeError | None = None

    @property
    def error(self) -> DecodeError | None:
        """The fatal error, once the stream is unusable.

        ``feed`` returns the good records that came before a fatal problem
        and raises on the next call; a server checks this after handing
        those records on, so it closes the connection now rather than
        waiting for more bytes that will never decode.
        """
        return self._error

    def _refused(self) -> DecodeError:
        """What ``feed`` raises once the stream has ended: its fatal error, else data after EOF.

        Data after EOF becomes the fatal error, so every later call raises it too.
        """
        if self._error is None:
            self._error = DecodeError("data_after_eof", "data fed to a decoder after EOF")
        return DecodeError(self._error.reason, str(self._error))

    def _problem(self, reason: str, text: str) -> None:
        self.dropped[reason] += 1
        self.last_problem = text
