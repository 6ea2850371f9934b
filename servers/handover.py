"""The hand-over's I/O: one UNIX socket between a worker and the writer, frames both ways.

The frames are :mod:`netlog.sinks.handover`'s; this module moves them with
gevent.  A worker's :class:`ChannelSink` is its pipeline's line sink: it
batches encoded lines and sends them as one frame (``sendall`` on a socket
whose buffer is bounded: when the writer has not read, the sending greenlet
waits, stops reading its connection, and TCP pushes back on the sender).
Its :meth:`ChannelSink.flush` means what the file sink's does: the writer
has written the lines (it answers the batch with an ``ACK``), so a
protocol that acknowledges records (Fluentd's forward) still answers only
once they are written.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Sequence
from typing import Any, Final

import gevent
import gevent.event
import gevent.lock

from netlog.sinks.handover import (
    BATCH_BYTES,
    FLUSH,
    LINES,
    FrameBuffer,
    HandoverError,
    lines_frame,
)

#: Bytes asked for per recv on the channel.
READ_SIZE: Final = 1 << 20
#: The channel's kernel buffer each way: what may wait between a worker and
#: the writer besides the batch being built (the kernel doubles it).
SOCKET_BUFFER: Final = 1 << 20
#: Frames handled in a row before the reader lets the event loop run.
FRAMES_PER_YIELD: Final = 4


class Channel:
    """One end of a worker's socket: whole frames out (under a lock), frames in."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.lock = gevent.lock.Semaphore()
        """Held while a frame is sent: frames from different greenlets never interleave."""
        self._frames = FrameBuffer()
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)

    def send(self, data: bytes) -> None:
        """Send one whole frame; raises OSError when the other side is gone."""
        with self.lock:
            self.sock.sendall(data)

    def frames(self) -> Iterator[tuple[int, int, bytes]]:
        """Frames as they arrive, until the other side closes (or breaks the protocol)."""
        handled = 0
        while True:
            try:
                data = self.sock.recv(READ_SIZE)
            except OSError:
                return
            if not data:
                return
            try:
                frames = self._frames.feed(data)
            except HandoverError:
                return
            for item in frames:
                yield item
                handled += 1
                if handled >= FRAMES_PER_YIELD:
                    handled = 0
                    gevent.sleep(1e-6)  # a full loop turn: timers, signals, HTTP

    def close(self) -> None:
        """Close the socket; the other side reads EOF."""
        with contextlib.suppress(OSError):
            self.sock.close()


class ChannelSink:
    """A worker pipeline's line sink: batches of lines to the writer, flush = written there."""

    def __init__(self, channel: Channel, batch_bytes: int = BATCH_BYTES) -> None:
        self.channel = channel
        self.batch_bytes = batch_bytes
        self._lines: list[bytes] = []
        self._size = 0
        self.seq = 0
        """The last batch sent."""
        self.acked = 0
        """The last batch the writer has written."""
        self.handed = 0
        """Lines sent to the writer so far."""
        self.writer_pending = 0
        """Lines the writer still held queued at its last ``ACK`` (a failing disk)."""
        self.closed = False
        self._acked = gevent.event.Event()

    @property
    def pending_lines(self) -> int:
        """What ``_reply`` asks after a flush: lines not in the file yet (as the writer said)."""
        return self.writer_pending

    @property
    def buffered(self) -> int:
        """Lines decoded here and not sent yet."""
        return len(self._lines)

    def write_lines(self, lines: Sequence[bytes]) -> None:
        """Queue lines; send a batch once :attr:`batch_bytes` wait; may wait for the writer."""
        self._lines.extend(lines)
        self._size += sum(map(len, lines))
        if self._size >= self.batch_bytes:
            self._send(LINES)

    def _send(self, kind: int) -> int:
        """Send what is queued as one frame of ``kind``; the batch's sequence number."""
        with self.channel.lock:
            lines, self._lines, self._size = self._lines, [], 0
            if not lines and kind == LINES:
                return self.seq
            self.seq += 1
            seq = self.seq
            if self.closed:
                return seq
            try:
                self.channel.sock.sendall(lines_frame(kind, seq, lines))
            except OSError:
                self.closed = True
                return seq
            self.handed += len(lines)
            return seq

    def send_pending(self) -> None:
        """Send what is queued without waiting for the write."""
        self._send(LINES)

    def flush(self) -> None:
        """Send what is queued and wait until the writer has written it."""
        if not self._lines and self.acked >= self.seq:
            return
        seq = self._send(FLUSH)
        while self.acked < seq and not self.closed:
            event = self._acked
            event.wait()

    def acknowledged(self, seq: int, writer_pending: int) -> None:
        """The writer answered batch ``seq`` (called by the worker's channel reader)."""
        self.acked = max(self.acked, seq)
        self.writer_pending = writer_pending
        event, self._acked = self._acked, gevent.event.Event()
        event.set()

    def lost_channel(self) -> None:
        """The writer is gone: nothing more can be handed over; release waiting flushes."""
        self.closed = True
        self._acked.set()


__all__ = ["Channel", "ChannelSink"]
