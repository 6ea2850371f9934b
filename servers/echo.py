"""TCP echo (RFC 862): every byte back, streamed, with back-pressure.

Each connection is driven by callbacks on gevent's own event loop (libev io
watchers), not by a greenlet: a greenlet switch per read costs more than the
echo itself, and this is the hot path of every load test pointed at netlog.

Connections read into one preallocated 256 KiB buffer that the whole server
shares (a read is written back, or the unwritten rest copied out, within the
same callback), or splice through a pipe taken from a small pool for the
callback, so an idle connection costs no buffer at all.  When the kernel
will not take the whole reply, the connection stops reading until the rest
is written: a client that sends but never reads costs the server at most
one chunk (in user space, or in the pipe it keeps), whatever it does.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from typing import Any

import gevent
from gevent.server import StreamServer

from servers.gevent_private import raw_accept

#: Most bytes one read takes; also the most one connection holds in user space.
CHUNK = 1 << 18
#: Reads a wake-up may do while each one fills the buffer (a bulk stream).
READS_PER_WAKEUP = 16
#: After a read of this size range, the next wake-up splices instead of copying.
SPLICE_MIN = 1 << 14
SPLICE_MAX = 1 << 16
#: Spare pipes kept for splicing; more are made (and closed) on demand.
SPARE_PIPES = 2
#: splice(2) is Linux's; elsewhere every read is copied (``take_pipe`` gives none).
CAN_SPLICE = hasattr(os, "splice")
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
if CAN_SPLICE:
    _splice = os.splice
_READ = 1
_WRITE = 2
#: How often silent connections are looked for (at most), seconds.
SWEEP_INTERVAL = 1.0

Pipe = tuple[int, int]


class EchoConnection:
    """One client: a raw non-blocking socket and two io watchers.

    Two ways to echo, chosen by the size of the connection's last read.
    Messages of 16-64 KiB are spliced (socket -> pipe -> socket, like Go's
    ``io.Copy`` between TCP connections): the bytes never enter user space,
    1.2-1.4x the throughput of copying them.  Small messages are copied
    (``recv_into`` and ``send``), which costs less per call, and so are bulk
    streams (reads of more than 64 KiB), where splicing measured 0.85-0.9x
    of copying here.
    """

    __slots__ = (
        "closed",
        "echoed",
        "eof",
        "fd",
        "last_active",
        "left",
        "loop",
        "pending",
        "pipe",
        "reader",
        "server",
        "sock",
        "splicing",
        "writer",
    )

    def __init__(self, server: EchoServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.loop = server.loop
        self.pending: memoryview | None = None
        """Copied bytes the kernel refused, or ``None``."""
        self.pipe: Pipe | None = None
        """A pipe holding spliced bytes the kernel refused, or ``None``."""
        self.left = 0
        """How many bytes ``pipe`` still holds."""
        self.splicing = False
        self.eof = False
        self.closed = False
        self.echoed = False
        """Whether the client has sent anything: one that has is never shed."""
        self.last_active: float = self.loop.now()
        self.fd = fd = sock.fileno()
        self.reader = self.loop.io(fd, _READ)
        self.writer = self.loop.io(fd, _WRITE)
        self.reader.start(self.on_readable)

    def on_readable(self) -> None:
        """Echo what is queued, by copy or by splice."""
        # Out of descriptors for a pipe, copying still works.
        pipe = self.server.take_pipe() if self.splicing else None
        if pipe is not None:
            n = self._splice_round(pipe)
        else:
            # The copy path inline: it carries the small messages, where
            # every call counts.
            server = self.server
            try:
                n = self.sock.recv_into(server.buffer)
            except BlockingIOError:
                return
            except OSError:
                self.close()
                return
            if not n:
                self.at_eof()
                return
            if self.write(server.view[:n]) and n == CHUNK:
                n = self._copy_more()
        if n:
            self.last_active = self.loop.now()
            self.echoed = True
            self.splicing = SPLICE_MIN <= n <= SPLICE_MAX

    def _copy_more(self) -> int:
        """A read filled the buffer (a bulk stream): go on; the last read's size."""
        server = self.server
        recv_into = self.sock.recv_into
        n = CHUNK
        for _ in range(READS_PER_WAKEUP):
            try:
                n = recv_into(server.buffer)
            except BlockingIOError:
                break
            except OSError:
                self.close()
                return 0
            if not n:
                self.at_eof()
                return 0
            if not self.write(server.view[:n]) or n < CHUNK:
                break
        return n

    def _splice_round(self, pipe: Pipe) -> int:
        """Splice in and back out through ``pipe``; the last read's size."""
        server = self.server
        fd = self.fd
        n = 0
        for _ in range(READS_PER_WAKEUP):
            try:
                n = _splice(fd, pipe[1], CHUNK, None, None, _SPLICE_FLAGS)
            except BlockingIOError:
                break
            except OSError:
                server.give_back(pipe)
                self.close()
                return 0
            if not n:
                server.give_back(pipe)
                self.at_eof()
                return 0
            try:
                sent = _splice(pipe[0], fd, n, None, None, _SPLICE_FLAGS)
            except BlockingIOError:
                sent = 0
            except OSError:
                server.discard(pipe)  # it still holds this connection's bytes
                self.close()
                return 0
            if sent < n:
                # The pipe keeps the rest: it is this connection's until written.
                self.pipe = pipe
                self.left = n - sent
                self.wait_writable()
                return n
            if n < CHUNK:
                break
        server.give_back(pipe)
        return n

    def at_eof(self) -> None:
        """The client half-closed: say we are done too.

        Everything it sent is already written, since a pending reply stops reading.
        """
        self.eof = True
        self.finish()

    def write(self, data: memoryview) -> bool:
        """Send ``data``; ``False`` when the kernel refused some (it waits, reading stops)."""
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.close()
            return False
        if sent == len(data):
            return True
        # Copy the rest out of the shared read buffer before reading resumes.
        self.pending = memoryview(bytes(data[sent:]))
        self.wait_writable()
        return False

    def wait_writable(self) -> None:
        """Stop reading until the pending reply is written."""
        self.reader.stop()
        self.writer.start(self.on_writable)

    def on_writable(self) -> None:
        """Finish a reply the kernel refused earlier, then read again."""
        try:
            if self.pipe is not None:
                self.left -= _splice(self.pipe[0], self.fd, self.left, None, None, _SPLICE_FLAGS)
                if self.left:
                    return
                self.server.give_back(self.pipe)
                self.pipe = None
            elif self.pending is not None:
                sent = self.sock.send(self.pending)
                if sent < len(self.pending):
                    self.pending = self.pending[sent:]
                    return
                self.pending = None
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        self.last_active = self.loop.now()
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
        if self.pipe is not None:
            self.server.discard(self.pipe)
            self.pipe = None
        with contextlib.suppress(OSError):
            self.sock.close()
        self.server.forget(self)


def _last_active(connection: EchoConnection) -> float:
    return connection.last_active


class EchoServer(StreamServer):  # type: ignore[misc]
    """A StreamServer whose connections echo until EOF or ``idle_timeout``.

    Accepting stays gevent's; connections are handed to :class:`EchoConnection`
    instead of a greenlet.  ``max_connections`` caps the open connections:
    at the cap, a new client takes the place of the connection silent
    longest among those that never sent a byte (idle connections must not
    lock the port out: issue 15), and when every open connection has sent
    something, the listener stops accepting and new clients wait in the
    kernel's queue.
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
        self.pipes: list[Pipe] = []
        self._sweeper: gevent.Greenlet | None = None
        self.paused_full = 0
        """How many times the listener paused because the cap was reached."""
        self.shed = 0
        """Connections closed at the cap to make room for a new client."""

    def start(self) -> None:
        """Bind, listen, and start looking for silent connections."""
        super().start()
        self._sweeper = gevent.spawn(self._sweep_forever)

    def handle(self, *_args: Any) -> None:
        """Unused: :meth:`do_read` hands connections to EchoConnection (gevent wants one)."""

    def do_read(self) -> tuple[Any, Any] | None:
        """Accept one connection and give it to an :class:`EchoConnection`."""
        if len(self.connections) >= self.max_connections and not self._shed_idle():
            self.paused_full += 1
            self.stop_accepting()  # forget() starts accepting again
            return None
        try:
            fd, _address = raw_accept(self.socket)
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
        return None  # nothing for gevent to spawn

    def _shed_idle(self) -> bool:
        """At the cap: close the connection silent longest that never sent a byte.

        Called only when a client is waiting at the cap, so the scan over the
        open connections is paid per shed connection, never per echo.
        """
        idle = [c for c in self.connections if not c.echoed]
        if not idle:
            return False
        min(idle, key=_last_active).close()
        self.shed += 1
        return True

    def take_pipe(self) -> Pipe | None:
        """An empty pipe for splicing, or ``None`` when none can be made."""
        if self.pipes:
            return self.pipes.pop()
        if not CAN_SPLICE:
            return None
        try:
            pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        # A smaller pipe (a lower pipe-max-size) only means shorter splices.
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe[1], fcntl.F_SETPIPE_SZ, CHUNK)
        return pipe

    def give_back(self, pipe: Pipe) -> None:
        """An emptied pipe: kept for the next splice, or closed."""
        if len(self.pipes) < SPARE_PIPES and not self.closed:
            self.pipes.append(pipe)
        else:
            self.discard(pipe)

    @staticmethod
    def discard(pipe: Pipe) -> None:
        """Close a pipe (one that may still hold bytes nobody will read)."""
        for fd in pipe:
            with contextlib.suppress(OSError):
                os.close(fd)

    def forget(self, connection: EchoConnection) -> None:
        """A connection closed: make room for the next one."""
        self.connections.discard(connection)
        if not self.closed:
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
        while self.pipes:
            self.discard(self.pipes.pop())
        if self._sweeper is not None:
            self._sweeper.kill(block=False)
