"""TCP echo (RFC 862): every byte back, streamed, with back-pressure.

Each connection is driven by callbacks on gevent's own event loop (libev io
watchers), not by a greenlet: a greenlet switch per read costs more than the
echo itself, and this is the hot path of every load test pointed at netlog.

Connections read into one preallocated 64 KiB buffer that the whole server
shares (a read is written back, or the unwritten rest copied out, within the
same callback), so an idle connection costs no buffer at all.  When the
kernel will not take the whole reply, the connection stops reading until the
rest is written: a client that sends but never reads costs the server at
most one chunk, whatever it does.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from typing import Any

import gevent
from gevent.server import StreamServer

#: Read size; also the most one connection ever holds in user space.
CHUNK = 65536
_READ = 1
_WRITE = 2
#: How often silent connections are looked for (at most), seconds.
SWEEP_INTERVAL = 1.0


class EchoConnection:
    """One client: a raw non-blocking socket and two io watchers."""

    __slots__ = (
        "closed",
        "eof",
        "last_active",
        "loop",
        "pending",
        "reader",
        "server",
        "sock",
        "writer",
    )

    def __init__(self, server: EchoServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.loop = server.loop
        self.pending: memoryview | None = None
        self.eof = False
        self.closed = False
        self.last_active = self.loop.now()
        fd = sock.fileno()
        self.reader = self.loop.io(fd, _READ)
        self.writer = self.loop.io(fd, _WRITE)
        self.reader.start(self.on_readable)

    def on_readable(self) -> None:
        """Read what is there and write it straight back."""
        server = self.server
        try:
            n = self.sock.recv_into(server.buffer)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        self.last_active = self.loop.now()
        if not n:
            # The client half-closed; everything it sent is already written
            # (a pending reply stops reading), so say we are done too.
            self.eof = True
            self.finish()
            return
        self.write(server.view[:n])

    def write(self, data: memoryview) -> None:
        """Send ``data``; whatever the kernel refuses waits, and reading stops."""
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.close()
            return
        if sent == len(data):
            return
        # Copy the rest out of the shared read buffer before reading resumes.
        self.pending = memoryview(bytes(data[sent:]))
        self.reader.stop()
        self.writer.start(self.on_writable)

    def on_writable(self) -> None:
        """Finish a reply the kernel refused earlier, then read again."""
        pending = self.pending
        if pending is None:
            self.writer.stop()
            return
        try:
            sent = self.sock.send(pending)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        self.last_active = self.loop.now()
        if sent < len(pending):
            self.pending = pending[sent:]
            return
        self.pending = None
        self.writer.stop()
        if self.eof:
            self.finish()
        else:
            self.reader.start(self.on_readable)

    def finish(self) -> None:
        """After EOF and the last reply: half-close our side, then close."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        self.close()

    def close(self) -> None:
        """Stop the watchers and close the socket; idempotent."""
        if self.closed:
            return
        self.closed = True
        self.reader.stop()
        self.writer.stop()
        self.reader.close()
        self.writer.close()
        with contextlib.suppress(OSError):
            self.sock.close()
        self.server.forget(self)


class EchoServer(StreamServer):  # type: ignore[misc]
    """A StreamServer whose connections echo until EOF or ``idle_timeout``.

    Accepting stays gevent's; connections are handed to :class:`EchoConnection`
    instead of a greenlet.  ``max_connections`` caps the open connections:
    while at the cap, the listener stops accepting and new clients wait in
    the kernel's queue.
    """

    def __init__(
        self, listener: tuple[str, int], *, idle_timeout: float, max_connections: int
    ) -> None:
        super().__init__(listener, spawn=None)
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.connections: set[EchoConnection] = set()
        self.buffer = bytearray(CHUNK)
        self.view = memoryview(self.buffer)
        self._sweeper: gevent.Greenlet | None = None
        self.paused_full = 0
        """How many times the listener paused because the cap was reached."""

    def start(self) -> None:
        """Bind, listen, and start looking for silent connections."""
        super().start()
        self._sweeper = gevent.spawn(self._sweep_forever)

    def handle(self, *_args: Any) -> None:
        """Unused: :meth:`do_read` hands connections to EchoConnection (gevent wants one)."""

    def do_read(self) -> tuple[Any, Any] | None:
        """Accept one connection and give it to an :class:`EchoConnection`."""
        try:
            fd, _address = self.socket._accept()  # noqa: SLF001 - gevent's own raw accept
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                return None  # out of descriptors: the client waits in the queue
            raise
        sock = socket.socket(self.socket.family, socket.SOCK_STREAM, 0, fileno=fd)
        sock.setblocking(False)  # noqa: FBT003 - the stdlib signature
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connections.add(EchoConnection(self, sock))
        if len(self.connections) >= self.max_connections:
            self.paused_full += 1
            self.stop_accepting()
        return None  # nothing for gevent to spawn

    def forget(self, connection: EchoConnection) -> None:
        """A connection closed: make room for the next one."""
        self.connections.discard(connection)
        if len(self.connections) < self.max_connections and not self.closed:
            self.start_accepting()

    def _sweep_forever(self) -> None:
        interval = min(SWEEP_INTERVAL, self.idle_timeout / 2)
        while True:
            gevent.sleep(interval)
            limit = self.loop.now() - self.idle_timeout
            for connection in [c for c in self.connections if c.last_active <= limit]:
                connection.close()

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, give open connections ``timeout`` seconds, then close them."""
        self.close()
        wait = 1.0 if timeout is None else timeout
        with gevent.Timeout(wait, exception=False):
            while self.connections:
                gevent.sleep(0.05)
        for connection in list(self.connections):
            connection.close()
        if self._sweeper is not None:
            self._sweeper.kill(block=False)
