r"""The hand-over between ``--workers`` processes and the one writer: frames of many lines.

Sans-IO, like the decoders: this module makes and cuts the frames that
travel over each worker's UNIX socket to the parent process (the writer),
and the servers move the bytes.  A frame is a 13-byte header (payload
length, kind, sequence number) and its payload; a batch of lines is one
frame whose payload is the encoded lines back to back, so the hand-over
costs a few syscalls per batch, never one per record, and the writer cuts
the lines with one ``splitlines`` (an encoded line holds no raw ``\r`` or
``\n``: JSON escapes them).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

#: Payload length, kind, sequence number (a batch's, an ack's; 0 otherwise).
HEADER: Final = struct.Struct("!IBQ")
#: The largest payload accepted: a batch is cut near :data:`BATCH_BYTES`,
#: but one record may be as large as ``--max-line``/``--max-frame`` allow.
MAX_PAYLOAD: Final = 256 << 20
#: A worker sends its lines once this many bytes are waiting (or at each flush).
BATCH_BYTES: Final = 256 * 1024

# Parent to worker.
CONFIG: Final = 1
"""The worker's settings, index and the ports to bind (first frame, once)."""
ACK: Final = 2
"""Batches up to ``seq`` are written; payload: the writer's lines still queued (8 bytes)."""
# Worker to parent.
HELLO: Final = 10
"""Every listener is bound; payload: JSON ``{"ports": {name: port}, "pid": n}``."""
LINES: Final = 11
"""Encoded lines, back to back."""
FLUSH: Final = 12
"""Encoded lines, and write them now and answer with an ``ACK`` of this ``seq``."""
STATS: Final = 13
"""The worker's counts so far (JSON, :meth:`netlog.stats.Stats.snapshot` and more)."""
DONE: Final = 14
"""The drain is over, every line was sent; payload: the final counts, like ``STATS``."""

_PENDING: Final = struct.Struct("!Q")


class HandoverError(Exception):
    """The other side sent something no netlog process sends: the channel is closed."""


def frame(kind: int, payload: bytes = b"", seq: int = 0) -> bytes:
    """One frame: header and payload."""
    return HEADER.pack(len(payload), kind, seq) + payload


def lines_frame(kind: int, seq: int, lines: Sequence[bytes]) -> bytes:
    """A batch of encoded lines as one frame, built with one join."""
    size = sum(map(len, lines))
    return b"".join((HEADER.pack(size, kind, seq), *lines))


def split_lines(payload: bytes) -> list[bytes]:
    r"""The lines of a ``LINES`` or ``FLUSH`` payload, each ending in ``\n``."""
    return payload.splitlines(keepends=True)


def ack_frame(seq: int, pending_lines: int) -> bytes:
    """The writer has written batches up to ``seq``; ``pending_lines`` it could not write yet."""
    return frame(ACK, _PENDING.pack(pending_lines), seq)


def ack_pending(payload: bytes) -> int:
    """The writer's queued lines an ``ACK`` reports."""
    return int(_PENDING.unpack(payload)[0])


class FrameBuffer:
    """Cuts a byte stream into ``(kind, seq, payload)`` frames, holding a partial one."""

    def __init__(self, limit: int = MAX_PAYLOAD) -> None:
        self._buffer = bytearray()
        self.limit = limit

    @property
    def pending(self) -> int:
        """Bytes held of a frame not complete yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """Take bytes read; the frames they complete, in order."""
        buffer = self._buffer
        buffer += data
        frames = []
        view = memoryview(buffer)
        position = 0
        available = len(buffer)
        header = HEADER.size
        try:
            while available - position >= header:
                length, kind, seq = HEADER.unpack_from(buffer, position)
                if length > self.limit:
                    raise HandoverError(f"a frame of {length} bytes, over {self.limit}")
                end = position + header + length
                if end > available:
                    break
                frames.append((kind, seq, bytes(view[position + header : end])))
                position = end
        finally:
            view.release()
        del buffer[:position]
        return frames


__all__ = [
    "ACK",
    "BATCH_BYTES",
    "CONFIG",
    "DONE",
    "FLUSH",
    "HEADER",
    "HELLO",
    "LINES",
    "MAX_PAYLOAD",
    "STATS",
    "FrameBuffer",
    "HandoverError",
    "ack_frame",
    "ack_pending",
    "frame",
    "lines_frame",
    "split_lines",
]
