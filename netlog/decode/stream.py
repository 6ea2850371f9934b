"""The sans-IO decoder for one TCP log connection (h11's shape: bytes in, records out).

The server reads bytes and calls :meth:`StreamDecoder.feed` (or
``receive_data`` then ``next_record`` until :data:`NEED_DATA`); ``b""`` means
the peer closed.  No sockets, no gevent, no clock of its own (it is passed in).

Format, decided once per connection from its first byte:

* ``pickle`` when the first byte is a control byte other than TAB/LF/CR or a
  byte that cannot start UTF-8 (0x80-0xC1, 0xF5-0xFF): ``SocketHandler``
  frames are a 4-byte big-endian length, so a sane frame starts with 0x00;
* ``lines`` otherwise: each line (LF-terminated, one trailing CR removed) is
  a JSON record when it is a JSON object, else a text record.

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
* A line longer than ``max_line`` is dropped (``dropped["line_too_long"]``)
  and decoding resumes after its newline; at most ~``max_line`` bytes are
  ever buffered, however long the line.
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
import struct
import time
from typing import TYPE_CHECKING, Final

import orjson

from netlog.decode.normalize import Budget, expansion_budget, from_json, from_logrecord, from_text
from netlog.decode.unpickle import FrameLoader
from netlog.errors import DecodeError

if TYPE_CHECKING:
    from collections.abc import Callable

    from netlog.record import Record

__all__ = ["NEED_DATA", "NeedData", "StreamDecoder", "is_pickle_start"]


class NeedData(enum.Enum):
    """The type of :data:`NEED_DATA` (an enum so that ``is NEED_DATA`` narrows for mypy)."""

    NEED_DATA = "NEED_DATA"


#: Returned by :meth:`StreamDecoder.next_record` when no complete record is buffered.
NEED_DATA: Final = NeedData.NEED_DATA

_PICKLE_START: Final = frozenset(
    [*(b for b in range(0x20) if b not in b"\t\n\r"), 0x7F, *range(0x80, 0xC2), *range(0xF5, 0x100)]
)
_LENGTH: Final = struct.Struct(">I").unpack_from
_DEEP_JSON: Final = 250  # brackets; orjson writes at most 254 levels


def is_pickle_start(first: int) -> bool:
    """Tell whether a stream or datagram whose first byte is ``first`` is pickle framing."""
    return first in _PICKLE_START


class StreamDecoder:
    """Decode one connection's bytes into records.

    ``peer`` is copied into every record; ``clock`` gives each record's
    ``received`` time (when the bytes completing it arrived) and is injected
    so tests control it.
    """

    format: str | None
    """``"pickle"`` or ``"lines"`` once the first byte has been seen."""
    records: int
    """Complete records produced so far."""
    dropped: collections.Counter[str]
    """Non-fatal problems that lost data, by reason (``bad_frame``, ``truncated``...)."""
    notes: collections.Counter[str]
    """Records kept in a degraded form, by reason (``json_as_text``, ``invalid_utf8``)."""
    last_problem: str | None
    """Text of the most recent non-fatal problem, for the server to report once."""

    def __init__(
        self,
        peer: str,
        *,
        max_frame: int = 1 << 20,
        max_line: int = 1 << 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.peer = peer
        self.max_frame = max_frame
        self.max_line = max_line
        self._clock = clock
        self._expansion = expansion_budget(max_frame)
        self.format = None
        self.records = 0
        self.dropped = collections.Counter()
        self.notes = collections.Counter()
        self.last_problem = None
        self._buf = bytearray()
        self._ready: collections.deque[Record] = collections.deque()
        self._skipping = False  # inside an over-long line, discarding up to its newline
        self._eof = False
        self._error: DecodeError | None = None

    @property
    def pending(self) -> int:
        """Bytes buffered that are not yet a complete record (0 at a record boundary)."""
        return len(self._buf)

    @property
    def error(self) -> DecodeError | None:
        """The fatal error, once the stream is unusable.

        ``feed`` returns the good records that came before a fatal problem
        and raises on the next call; a server checks this after handing
        those records on, so it closes the connection now rather than
        waiting for more bytes that will never decode.
        """
        return self._error

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
        self._skipping = False
        if self._buf:
            kind = "pickle frame" if self.format == "pickle" else "line"
            self._problem(
                "truncated",
                f"connection given up inside a {kind} ({len(self._buf)} bytes lost)",
            )
            self._buf.clear()

    # --- decoding --------------------------------------------------------------

    def _decode(self, data: bytes) -> list[Record]:
        if self._error is not None:
            raise DecodeError(self._error.reason, str(self._error))
        if self._eof:
            self._error = DecodeError("data_after_eof", "data fed to a decoder after EOF")
            raise DecodeError(self._error.reason, str(self._error))
        now = self._clock()
        out: list[Record] = []
        if not data:
            self._finish(now, out)
        else:
            if self.format is None:
                self.format = "pickle" if data[0] in _PICKLE_START else "lines"
            if self.format == "pickle":
                self._frames(data, now, out)
            else:
                self._lines(data, now, out)
        self.records += len(out)
        return out

    def _problem(self, reason: str, text: str) -> None:
        self.dropped[reason] += 1
        self.last_problem = text

    def _fail(self, reason: str, text: str) -> None:
        self._error = DecodeError(reason, text)
        self._buf.clear()
        self._skipping = False

    def _frames(self, data: bytes, now: float, out: list[Record]) -> None:
        buf = self._buf
        if buf:
            # Bytes wait in the buffer until the frame they start is whole
            # (a 1 MiB frame over many reads is copied once, not per read),
            # then the rest is decoded from one bytes object, so each frame
            # is a single slice rather than a bytearray slice copied again.
            buf += data
            if len(buf) < 4:
                return
            size = _LENGTH(buf, 0)[0]
            if size <= self.max_frame and len(buf) < 4 + size:
                return
            data = bytes(buf)
            buf.clear()
        end = len(data)
        pos = 0
        load = FrameLoader().load
        while end - pos >= 4:
            size = _LENGTH(data, pos)[0]
            if size > self.max_frame:
                self._fail(
                    "frame_too_large",
                    f"pickle frame of {size} bytes exceeds the limit of {self.max_frame}",
                )
                return
            stop = pos + 4 + size
            if stop > end:
                break
            frame = data[pos + 4 : stop]
            pos = stop
            try:
                record = from_logrecord(load(frame), self.peer, now, Budget(self._expansion))
            except DecodeError as exc:
                self._problem("bad_frame", f"skipped a bad pickle frame: {exc}")
                continue
            out.append(record)
        if pos < end:
            buf += memoryview(data)[pos:]

    def _lines(self, data: bytes, now: float, out: list[Record]) -> None:
        if self._skipping:
            newline = data.find(b"\n")
            if newline < 0:
                return
            self._skipping = False
            data = data[newline + 1 :]
        buf = self._buf
        if buf:
            newline = data.find(b"\n")
            if newline < 0:
                self._keep_tail(data)
                return
            buf += data[:newline]
            line = bytes(buf)
            buf.clear()
            self._line(line, now, out)
            data = data[newline + 1 :]
        lines = data.split(b"\n")
        tail = lines.pop()
        line_record = self._line
        for line in lines:
            line_record(line, now, out)
        if tail:
            self._keep_tail(tail)

    def _keep_tail(self, tail: bytes) -> None:
        """Buffer the start of a line, or give up on it once it is over ``max_line``."""
        if len(self._buf) + len(tail) > self.max_line + 1:  # + 1: room for a CR
            self._buf.clear()
            self._skipping = True
            self._problem("line_too_long", f"dropped a line longer than {self.max_line} bytes")
        else:
            self._buf += tail

    def _line(self, line: bytes, now: float, out: list[Record]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.max_line:
            self._problem("line_too_long", f"dropped a line longer than {self.max_line} bytes")
            return
        if line[:1] == b"{" or line.lstrip()[:1] == b"{":
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                self.notes["json_as_text"] += 1
            else:
                if type(obj) is dict:
                    deep = len(line) > _DEEP_JSON and (
                        line.count(b"{") + line.count(b"[") > _DEEP_JSON
                    )
                    out.append(from_json(obj, self.peer, now, deep=deep))
                    return
        elif not line or line.isspace():
            return
        try:
            text = line.decode()
        except UnicodeDecodeError:
            text = line.decode("utf-8", "backslashreplace")
            self.notes["invalid_utf8"] += 1
        out.append(from_text(text, self.peer, now))

    def _finish(self, now: float, out: list[Record]) -> None:
        self._eof = True
        self._skipping = False
        if not self._buf:
            return
        if self.format == "pickle":
            self._problem(
                "truncated",
                f"connection closed inside a pickle frame ({len(self._buf)} bytes lost)",
            )
            self._buf.clear()
        else:
            line = bytes(self._buf)
            self._buf.clear()
            self._line(line, now, out)
