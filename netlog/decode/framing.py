"""Framings: how a transport's bytes are cut into frames, before any format is applied.

A frame is the bytes of one record, not yet understood:

* :class:`LengthPrefixed`: ``SocketHandler``'s 4-byte big-endian length then
  that many bytes, on a stream; a length over ``max_frame`` is fatal, since
  the framing can no longer be trusted;
* :class:`Lines`: LF-terminated lines on a stream, one trailing CR removed,
  a line over ``max_line`` dropped without buffering it whole;
* :class:`OctetCounted`: RFC 6587 octet counting (``LEN SP MSG``), how
  rsyslog, syslog-ng and Vector send syslog over TCP and RFC 5425 TLS; a
  frame over ``max_line`` is skipped without buffering it, a header that
  is not a count is fatal;
* :func:`pickle_datagram`: one length-prefixed frame that must fill its
  datagram exactly (``DatagramHandler``).

A whole datagram and an HTTP body's lines need no state and are cut where
they are decoded.  Which format turns a frame into a record is
:mod:`netlog.decode.formats`' business; :func:`is_pickle_start` is how a
transport tells the two framings of a connection or datagram apart.

Stream framers are fed with :meth:`push` (complete frames out, the rest
buffered) and closed with :meth:`finish` at EOF.  Problems that lose data
but leave the framing sound (a line too long, a frame cut by EOF) go to the
``problem(reason, text)`` callback they are built with; a fatal one is left
in ``fatal`` for the decoder to raise after the good frames before it.
"""

from __future__ import annotations

import re
import struct
from typing import TYPE_CHECKING, Final

from netlog.errors import DecodeError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "PICKLE_START",
    "LengthPrefixed",
    "Lines",
    "OctetCounted",
    "is_octet_counted",
    "is_pickle_start",
    "pickle_datagram",
]

#: First bytes that mean pickle framing: a control byte other than TAB/LF/CR
#: or a byte that cannot start UTF-8 (a sane frame's length starts with 0x00).
PICKLE_START: Final = frozenset(
    [*(b for b in range(0x20) if b not in b"\t\n\r"), 0x7F, *range(0x80, 0xC2), *range(0xF5, 0x100)]
)
_LENGTH: Final = struct.Struct(">I").unpack_from
#: Digits in an RFC 6587 octet count at most: 9 is a billion bytes, far past any --max-line.
_COUNT_DIGITS: Final = 9
#: What starts an octet-counted syslog stream: a count, a space, a ``<PRI>``.
_OCTET_START: Final = re.compile(rb"[1-9][0-9]{0,%d} <" % (_COUNT_DIGITS - 1))


def is_pickle_start(first: int) -> bool:
    """Tell whether a stream or datagram whose first byte is ``first`` is pickle framing."""
    return first in PICKLE_START


def is_octet_counted(head: bytes) -> bool | None:
    """Whether a stream starting with ``head`` is RFC 6587 octet counting; ``None``: undecided.

    Only a stream whose first byte is a digit asks: ``78 <11>1 2026-...`` is
    octet counting, ``2026-11-30 12:00 started`` is a text line.  A head of
    digits alone, or digits and a space, needs more bytes to tell.
    """
    if _OCTET_START.match(head):
        return True
    digits = len(head) - len(head.lstrip(b"0123456789"))
    if head[:1] == b"0" or digits > _COUNT_DIGITS:
        return False
    rest = head[digits:]
    return None if rest in (b"", b" ") else False


def pickle_datagram(data: bytes, max_frame: int) -> bytes:
    """The frame of a ``DatagramHandler`` datagram: its payload after the length prefix.

    The prefix must equal the payload's size: a datagram cut short by the
    sender's MTU or the server's receive size would otherwise be unpickled
    half.  Raises ``DecodeError`` (``bad_datagram``, ``frame_too_large``,
    ``length_mismatch``).
    """
    if len(data) < 4:
        raise DecodeError("bad_datagram", f"{len(data)}-byte datagram with a binary start")
    size = int.from_bytes(data[:4], "big")
    if size > max_frame:
        raise DecodeError(
            "frame_too_large", f"pickle frame of {size} bytes exceeds the limit of {max_frame}"
        )
    if size != len(data) - 4:
        raise DecodeError(
            "length_mismatch",
            f"pickle datagram says {size} bytes but carries {len(data) - 4} (cut short?)",
        )
    return data[4:]


class LengthPrefixed:
    """Frames of a 4-byte big-endian length and that many bytes (``SocketHandler``)."""

    __slots__ = ("_buf", "_problem", "fatal", "max_frame")

    #: What a partial frame is called in a "truncated" problem.
    kind: Final = "pickle frame"

    def __init__(self, max_frame: int, problem: Callable[[str, str], None]) -> None:
        self.max_frame = max_frame
        self._problem = problem
        self._buf = bytearray()
        self.fatal: DecodeError | None = None
        """A length over ``max_frame``: the stream cannot be framed any further."""

    @property
    def pending(self) -> int:
        """Bytes buffered that are not yet a complete frame."""
        return len(self._buf)

    def clear(self) -> None:
        """Forget the buffered bytes (the decoder gives up on the stream)."""
        self._buf.clear()

    def push(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the frames it completes, in order."""
        buf = self._buf
        if buf:
            # Bytes wait in the buffer until the frame they start is whole
            # (a 1 MiB frame over many reads is copied once, not per read),
            # then the rest is cut from one bytes object, so each frame is a
            # single slice rather than a bytearray slice copied again.
            buf += data
            if len(buf) < 4:
                return []
            size = _LENGTH(buf, 0)[0]
            if size <= self.max_frame and len(buf) < 4 + size:
                return []
            data = bytes(buf)
            buf.clear()
        frames: list[bytes] = []
        end = len(data)
        pos = 0
        max_frame = self.max_frame
        while end - pos >= 4:
            size = _LENGTH(data, pos)[0]
            if size > max_frame:
                self.fatal = DecodeError(
                    "frame_too_large",
                    f"pickle frame of {size} bytes exceeds the limit of {max_frame}",
                )
                return frames
            stop = pos + 4 + size
            if stop > end:
                break
            frames.append(data[pos + 4 : stop])
            pos = stop
        if pos < end:
            buf += memoryview(data)[pos:]
        return frames

    def finish(self) -> list[bytes]:
        """The peer closed: a partial frame is lost (``truncated``), never returned."""
        if self._buf:
            self._problem(
                "truncated",
                f"connection closed inside a pickle frame ({len(self._buf)} bytes lost)",
            )
            self._buf.clear()
        return []


class Lines:
    """LF-terminated lines, one trailing CR removed; at most ~``max_line`` bytes buffered.

    A line longer than ``max_line`` is dropped (``line_too_long``) and
    framing resumes after its newline.  ``delimiter`` (one byte) ends a
    frame instead of LF: GELF over TCP ends each JSON frame with a NUL byte, and the same
    buffering and length rules apply (a trailing CR is removed only before
    an LF).
    """

    __slots__ = ("_buf", "_delimiter", "_problem", "_skipping", "fatal", "max_line")

    #: What a partial line is called in a "truncated" problem.
    kind: Final = "line"

    def __init__(
        self, max_line: int, problem: Callable[[str, str], None], delimiter: bytes = b"\n"
    ) -> None:
        self.max_line = max_line
        self._problem = problem
        self._delimiter = delimiter
        self._buf = bytearray()
        self._skipping = False  # inside an over-long line, discarding up to its newline
        self.fatal: DecodeError | None = None
        """Always ``None``: no line makes the rest of the stream unframeable."""

    @property
    def pending(self) -> int:
        """Bytes buffered that are not yet a complete line."""
        return len(self._buf)

    def clear(self) -> None:
        """Forget the buffered bytes and any line being skipped."""
        self._buf.clear()
        self._skipping = False

    def push(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the lines it completes, in order, without their endings."""
        delimiter = self._delimiter
        if self._skipping:
            newline = data.find(delimiter)
            if newline < 0:
                return []
            self._skipping = False
            data = data[newline + 1 :]
        buf = self._buf
        first = None
        if buf:
            newline = data.find(delimiter)
            if newline < 0:
                self._keep_tail(data)
                return []
            buf += data[:newline]
            first = self._checked(bytes(buf))
            buf.clear()
            data = data[newline + 1 :]
        lines = data.split(delimiter)
        tail = lines.pop()
        # Both tests run at C speed over the whole read; the per-line
        # Python loops run only when a read has a CR or a long line.
        if delimiter == b"\n" and b"\r\n" in data:
            lines = [line[:-1] if line[-1:] == b"\r" else line for line in lines]
        max_line = self.max_line
        if len(data) > max_line and max(map(len, lines), default=0) > max_line:
            lines = [line for line in lines if len(line) <= max_line or self._too_long()]
        if first is not None:
            lines.insert(0, first)
        if tail:
            self._keep_tail(tail)
        return lines

    def finish(self) -> list[bytes]:
        """The peer closed: a last line without its newline is complete."""
        self._skipping = False
        if not self._buf:
            return []
        line = self._checked(bytes(self._buf))
        self._buf.clear()
        return [] if line is None else [line]

    def _checked(self, line: bytes) -> bytes | None:
        """``line`` without its CR, or ``None`` (and a problem) when it is too long."""
        if line[-1:] == b"\r" and self._delimiter == b"\n":
            line = line[:-1]
        if len(line) > self.max_line:
            self._too_long()
            return None
        return line

    def _too_long(self) -> bool:
        self._problem("line_too_long", f"dropped a line longer than {self.max_line} bytes")
        return False

    def _keep_tail(self, tail: bytes) -> None:
        """Buffer the start of a line, or give up on it once it is over ``max_line``."""
        if len(self._buf) + len(tail) > self.max_line + 1:  # + 1: room for a CR
            self._buf.clear()
            self._skipping = True
            self._too_long()
        else:
            self._buf += tail


class OctetCounted:
    """RFC 6587 octet-counted frames: ``LEN SP MSG``, as syslog collectors send them over TCP.

    ``LEN`` is the decimal byte count of ``MSG``.  A frame longer than
    ``max_line`` is skipped as it arrives (``line_too_long``), never
    buffered, and framing resumes after it: the count says where it ends.
    A header that is not a count (a letter, a count with a leading zero or
    over 9 digits, no space) is fatal (``bad_octet_count``): nothing after
    it can be framed.  Line endings between frames are tolerated, since
    some senders add one.  At most ~``max_line`` bytes are ever buffered.
    """

    __slots__ = ("_buf", "_need", "_problem", "_skip", "fatal", "max_line")

    #: What a partial frame is called in a "truncated" problem.
    kind: Final = "syslog frame"

    def __init__(self, max_line: int, problem: Callable[[str, str], None]) -> None:
        self.max_line = max_line
        self._problem = problem
        self._buf = bytearray()
        self._need = 0  # bytes the buffered frame needs in all, once its header is read
        self._skip = 0  # bytes still to discard of a frame over max_line
        self.fatal: DecodeError | None = None
        """A header that is not an octet count: the stream cannot be framed any further."""

    @property
    def pending(self) -> int:
        """Bytes buffered that are not yet a complete frame (or still to be skipped)."""
        return len(self._buf) + (1 if self._skip else 0)

    def clear(self) -> None:
        """Forget the buffered bytes and any frame being skipped."""
        self._buf.clear()
        self._need = self._skip = 0

    def push(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the frames it completes, in order, without their counts."""
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return []
            data = data[self._skip :]
            self._skip = 0
        buf = self._buf
        if buf:
            # As LengthPrefixed: a frame arriving over many reads is copied
            # once, when it is whole, not once per read.
            buf += data
            if self._need and len(buf) < self._need:
                return []
            data = bytes(buf)
            buf.clear()
        self._need = 0
        frames: list[bytes] = []
        end = len(data)
        pos = 0
        while pos < end:
            if data[pos] in b"\r\n":
                pos += 1
                continue
            header = self._header(data, pos, end)
            if header is None:
                break  # a count still arriving, or a bad one (then ``fatal``)
            size, start = header
            stop = start + size
            if size > self.max_line:
                self._problem(
                    "line_too_long", f"dropped a syslog frame of {size} bytes, over {self.max_line}"
                )
                self._skip = max(0, stop - end)
            elif stop > end:
                self._need = stop - pos
                break
            else:
                frames.append(data[start:stop])
            pos = stop
        if pos < end and self.fatal is None:
            buf += memoryview(data)[pos:]
        return frames

    def _header(self, data: bytes, pos: int, end: int) -> tuple[int, int] | None:
        """The count at ``pos`` and where its frame starts; ``None`` if incomplete or bad."""
        space = data.find(b" ", pos, pos + _COUNT_DIGITS + 1)
        if space < 0:
            if end - pos > _COUNT_DIGITS or not data[pos:end].isdigit():
                self._bad_header(data[pos : pos + _COUNT_DIGITS + 1])
            return None
        header = data[pos:space]
        if not header.isdigit() or header[:1] == b"0":
            self._bad_header(header)
            return None
        return int(header), space + 1

    def finish(self) -> list[bytes]:
        """The peer closed: a partial frame is lost (``truncated``), never returned."""
        if self._buf or self._skip:
            self._problem(
                "truncated",
                f"connection closed inside a syslog frame ({len(self._buf)} bytes lost)",
            )
        self.clear()
        return []

    def _bad_header(self, header: bytes) -> None:
        self.fatal = DecodeError(
            "bad_octet_count", f"syslog frame header {header[:12]!r} is not an octet count"
        )
        self.clear()
