"""Framings: how a transport's bytes are cut into frames, before any format is applied.

A frame is the bytes of one record, not yet understood:

* :class:`LengthPrefixed`: ``SocketHandler``'s 4-byte big-endian length then
  that many bytes, on a stream; a length over ``max_frame`` is fatal, since
  the framing can no longer be trusted;
* :class:`Lines`: LF-terminated lines on a stream, one trailing CR removed,
  a line over ``max_line`` dropped without buffering it whole;
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

import struct
from typing import TYPE_CHECKING, Final

from netlog.errors import DecodeError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["PICKLE_START", "LengthPrefixed", "Lines", "is_pickle_start", "pickle_datagram"]

#: First bytes that mean pickle framing: a control byte other than TAB/LF/CR
#: or a byte that cannot start UTF-8 (a sane frame's length starts with 0x00).
PICKLE_START: Final = frozenset(
    [*(b for b in range(0x20) if b not in b"\t\n\r"), 0x7F, *range(0x80, 0xC2), *range(0xF5, 0x100)]
)
_LENGTH: Final = struct.Struct(">I").unpack_from


def is_pickle_start(first: int) -> bool:
    """Tell whether a stream or datagram whose first byte is ``first`` is pickle framing."""
    return first in PICKLE_START


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
