"""The sans-IO decoder for one TCP log connection (h11's shape: bytes in, records out).

The server reads bytes and calls :meth:`StreamDecoder.feed` (or
``receive_data`` then ``next_record`` until :data:`NEED_DATA`); ``b""`` means
the peer closed.  No sockets, no gevent, no clock of its own (it is passed in).

Framing and format, decided once per connection from its first byte
(:func:`netlog.decode.framing.is_pickle_start`):

* ``pickle`` when the first byte is a control byte other than TAB/LF/CR or a
  byte that cannot start UTF-8 (0x80-0xC1, 0xF5-0xFF): ``SocketHandler``
  frames are a 4-byte big-endian length, so a sane frame starts with 0x00
  (:class:`~netlog.decode.framing.LengthPrefixed` framing, pickle format);
* ``octets`` when the first bytes are a count, a space and ``<`` (``78
  <11>1 2026-...``): RFC 6587 octet-counted syslog, as rsyslog, syslog-ng
  and Vector send it over TCP and RFC 5425 TLS
  (:class:`~netlog.decode.framing.OctetCounted`); a stream starting with a
  digit waits for the few bytes that tell it from a text line;
* ``syslog`` when the first byte is ``<``: RFC 6587 non-transparent
  framing, LF-terminated ``<PRI>`` lines (the same
  :class:`~netlog.decode.framing.Lines` as below);
* ``lines`` otherwise: each line (LF-terminated, one trailing CR removed,
  :class:`~netlog.decode.framing.Lines`) is a JSON record when it is a JSON
  object, else a text record (:func:`netlog.decode.formats.json_or_text`).

A syslog frame is parsed as UDP syslog is (RFC 5424, else RFC 3164:
:func:`netlog.decode.formats.syslog_record`); one that does not start with
a valid ``<PRI>`` is kept as JSON or text, as on any line connection.

What is fatal and what is not (the connection policy):

* A frame whose length prefix exceeds ``max_frame`` is fatal
  (``DecodeError("frame_too_large")``) as soon as its 4 bytes are here; the
  claimed length is never buffered, so the framing cannot be trusted and
  the connection must go.
* A frame that does not unpickle, is not a dict with ``str`` keys, is empty,
  or expands too far is *skipped*: its length prefix was sane, so the next
  frame is still found.  ``dropped["bad_frame"]`` counts it, ``last_problem``
  says why, and the connection is kept: one odd record from an application
  must not cost it all its later logs.
* A frame on which normalising fails with anything but ``DecodeError`` (a
  decoder bug; none is known) is skipped the same way and counted in
  ``dropped["internal_error"]``, so it costs no other record of the read.
* A line longer than ``max_line`` is dropped (``dropped["line_too_long"]``)
  and decoding resumes after its newline; at most ~``max_line`` bytes are
  ever buffered, however long the line.  An octet-counted syslog frame over
  ``max_line`` is dropped the same way and decoding resumes after it; an
  octet-counted header that is not a count is fatal
  (``DecodeError("bad_octet_count")``).
* A JSON-looking line that does not parse is kept as a text record and
  noted in ``notes["json_as_text"]``; invalid UTF-8 is kept with backslash
  escapes and noted in ``notes["invalid_utf8"]``.

At EOF a last line without its newline is a complete record (a JSON line
without a final newline at EOF is written), while a partial pickle frame is
counted in ``dropped["truncated"]`` and never returned half.  When the
server gives up on a connection that the peer did *not* close (shutdown,
idle timeout) it calls :meth:`StreamDecoder.abandon` instead: then the
buffered bytes are half a record whatever the format, so a partial line is
counted in ``dropped["truncated"]`` too, never written half.  After EOF,
``next_record`` hands out what is left and then keeps returning
:data:`NEED_DATA`; feeding more data after EOF raises ``DecodeError``.

A fatal error never swallows records: when one chunk holds good records and
then a fatal problem, ``feed`` returns the records and the *next* call
raises.  Once an error has been raised the decoder is dead and every call
raises the same kind of error.
"""

from __future__ import annotations

import collections
import enum
import time
from typing import TYPE_CHECKING, Final, Protocol

from netlog.decode.connection import ConnectionBookkeeping
from netlog.decode.formats import cap_message, json_or_text, syslog_record
from netlog.decode.framing import (
    PICKLE_START,
    LengthPrefixed,
    Lines,
    OctetCounted,
    is_octet_counted,
)
from netlog.decode.normalize import Budget, expansion_budget, from_logrecord
from netlog.decode.unpickle import FrameLoader
from netlog.errors import DecodeError
from netlog.settings import DEFAULT_MAX_FRAME, DEFAULT_MAX_LINE

if TYPE_CHECKING:
    from collections.abc import Callable

    from netlog.record import Record

__all__ = ["NEED_DATA", "ConnectionDecoder", "NeedData", "StreamDecoder"]

_LT: Final = ord("<")
_DIGITS: Final = frozenset(b"0123456789")


class ConnectionDecoder(Protocol):
    """What a stream listener needs of one connection's decoder, whatever the protocol.

    :class:`StreamDecoder` is one; GELF over TCP and Fluentd's forward
    protocol are others.  The listener (``servers/logsink.py``) owns the
    socket, the drain and the memory budget; the decoder only turns bytes
    into records and says what it holds and what it lost.
    """

    peer: str
    records: int
    dropped: collections.Counter[str]
    notes: collections.Counter[str]
    last_problem: str | None

    @property
    def pending(self) -> int:
        """Bytes held that are not yet a complete record (0 at a record boundary)."""
        ...

    @property
    def error(self) -> DecodeError | None:
        """The fatal error once the stream is unusable, else ``None``."""
        ...

    def feed(self, data: bytes) -> list[Record]:
        """Records completed by ``data``; ``b""`` is EOF; raises ``DecodeError`` when fatal."""
        ...

    def abandon(self) -> None:
        """Give up without EOF: what is held is half a record, counted as lost."""
        ...

    def replies(self) -> bytes:
        """Bytes to send back once the records fed so far are on disk (``b""``: none)."""
        ...


class NeedData(enum.Enum):
    """The type of :data:`NEED_DATA` (an enum so that ``is NEED_DATA`` narrows for mypy)."""

    NEED_DATA = "NEED_DATA"


#: Returned by :meth:`StreamDecoder.next_record` when no complete record is buffered.
NEED_DATA: Final = NeedData.NEED_DATA


class StreamDecoder(ConnectionBookkeeping):
    """Decode one connection's bytes into records.

    ``peer`` is copied into every record; ``clock`` gives each record's
    ``received`` time (when the bytes completing it arrived) and is injected
    so tests control it.  The framing (:mod:`netlog.decode.framing`) cuts
    the bytes into frames; the format (:mod:`netlog.decode.formats`) makes
    each frame a record.
    """

    format: str | None
    """``"pickle"``, ``"lines"``, ``"syslog"`` or ``"octets"`` once the first bytes were seen."""

    def __init__(
        self,
        peer: str,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_line: int = DEFAULT_MAX_LINE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(peer, max_line=max_line, clock=clock)
        self.max_frame = max_frame
        self._expansion = expansion_budget(max_frame)
        self.format = None
        self._framer: LengthPrefixed | Lines | OctetCounted | None = None
        self._head = b""  # the first bytes, while a leading digit leaves the framing open
        self._ready: collections.deque[Record] = collections.deque()

    @property
    def pending(self) -> int:
        """Bytes buffered that are not yet a complete record (0 at a record boundary)."""
        return len(self._head) if self._framer is None else self._framer.pending

    # --- the h11-style interface ---------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the connection; ``b""`` means the peer closed it."""
        self._ready.extend(self._decode(data))

    def next_record(self) -> Record | NeedData:
        """Return the next record or :data:`NEED_DATA`; raise if the stream is unusable."""
        if self._ready:
            return self._ready.popleft()
        if self._error is not None:
            raise DecodeError(self._error.reason, str(self._error))
        return NEED_DATA

    def feed(self, data: bytes) -> list[Record]:
        """``receive_data`` then drain ``next_record``: the servers' fast path."""
        out = self._decode(data)
        if self._ready:
            out[:0] = self._ready
            self._ready.clear()
        if not out and self._error is not None:
            raise DecodeError(self._error.reason, str(self._error))
        return out

    def replies(self) -> bytes:
        """Nothing: SocketHandler and line senders expect no answer."""
        return b""

    def abandon(self) -> None:
        """Give up on the connection without its EOF (shutdown, idle timeout).

        Unlike ``feed(b"")``, a last line without its newline is not taken
        as complete: the peer did not close, so the bytes are half a record.
        They are counted in ``dropped["truncated"]`` and never returned;
        complete records already decoded stay available from ``next_record``.
        """
        if self._eof or self._error is not None:
            return
        self._eof = True
        framer = self._framer
        if framer is None and self._head:
            self._problem("truncated", f"connection given up after {len(self._head)} bytes")
            self._head = b""
        if framer is not None:
            if framer.pending:
                self._problem(
                    "truncated",
                    f"connection given up inside a {framer.kind} ({framer.pending} bytes lost)",
                )
            framer.clear()

    # --- decoding --------------------------------------------------------------

    def _decode(self, data: bytes) -> list[Record]:
        if self._error is not None or self._eof:
            raise self._refused()
        now = self._clock()
        out: list[Record] = []
        framer = self._framer
        eof = not data
        if framer is None:
            if self._head:
                data, self._head = self._head + data, b""
            elif eof:
                self._eof = True
                return out
            framer = self._choose(data, final=eof)
            if framer is None:
                return out
        frames = framer.push(data) if data else []
        if eof:
            self._eof = True
            frames += framer.finish()
        if frames:
            if self.format == "pickle":
                self._pickles(frames, now, out)
            elif self.format == "lines":
                self._lines(frames, now, out)
            else:
                self._syslog(frames, now, out)
        if framer.fatal is not None:
            self._error = framer.fatal
            framer.clear()
        self.records += len(out)
        return out

    def _choose(self, data: bytes, *, final: bool) -> LengthPrefixed | Lines | OctetCounted | None:
        """The one place a connection's framing and format are chosen, from its first bytes.

        ``None`` when ``data`` (the first bytes) starts with a digit and is too
        short to tell octet-counted syslog from a text line: it is kept in
        ``_head`` until more arrive (``final``: no more will, so a line).
        """
        first = data[0]
        framer: LengthPrefixed | Lines | OctetCounted
        if first in PICKLE_START:
            self.format = "pickle"
            framer = LengthPrefixed(self.max_frame, self._problem)
        elif first == _LT:
            self.format = "syslog"
            framer = Lines(self.max_line, self._problem)
        elif first in _DIGITS and (octets := is_octet_counted(data)) is not False:
            if octets is None and not final:
                self._head = data
                return None
            self.format = "octets" if octets else "lines"
            framer = (
                OctetCounted(self.max_line, self._problem)
                if octets
                else Lines(self.max_line, self._problem)
            )
        else:
            self.format = "lines"
            framer = Lines(self.max_line, self._problem)
        self._framer = framer
        return framer

    def _pickles(self, frames: list[bytes], now: float, out: list[Record]) -> None:
        peer = self.peer
        expansion = self._expansion
        max_line = self.max_line
        load = FrameLoader().load
        budget = Budget(expansion)
        for frame in frames:
            # A budget per frame; one that remembers no object (the common
            # frame) is as good as new once refilled, and cheaper than new.
            if budget.seen:
                budget = Budget(expansion)
            else:
                budget.left = expansion
                budget.deepest = 0
            try:
                # formats.pickle_record, inlined: a call layer less per record.
                record = from_logrecord(load(frame), peer, now, budget)
            except DecodeError as exc:
                self._problem("bad_frame", f"skipped a bad pickle frame: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - a decoder bug costs this frame, no more
                # Never expected (the fuzz tests look for it through decode_datagram,
                # which has no such net), but a pickle is an arbitrary object
                # graph: one frame must not cost the read's other records.
                self._problem(
                    "internal_error",
                    f"skipped a pickle frame the decoder failed on: {type(exc).__name__}: {exc}",
                )
                continue
            if len(record.message) > max_line:
                record = cap_message(record, max_line, self.notes)
            out.append(record)

    def _lines(self, lines: list[bytes], now: float, out: list[Record]) -> None:
        peer = self.peer
        notes = self.notes
        append = out.append
        for line in lines:
            record = json_or_text(line, peer, now, notes)
            if record is not None:
                append(record)

    def _syslog(self, frames: list[bytes], now: float, out: list[Record]) -> None:
        """Syslog frames: parsed as UDP syslog is, a frame without ``<PRI>`` as JSON or text."""
        peer = self.peer
        notes = self.notes
        append = out.append
        for frame in frames:
            record = syslog_record(frame, peer, now) if frame[:1] == b"<" else None
            if record is None:
                record = json_or_text(frame.rstrip(b"\r\n"), peer, now, notes)
            if record is not None:
                append(record)
