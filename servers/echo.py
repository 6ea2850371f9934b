"""TCP echo (RFC 862): every byte back, streamed, with back-pressure.

The handler reads into one preallocated buffer and writes it back before
reading again, so a client that sends but never reads stops being read as
soon as the kernel buffers fill: the server's memory for a connection is one
64 KiB buffer, whatever the client does.
"""

from __future__ import annotations

import socket
from typing import Any

from gevent.pool import Pool
from gevent.server import StreamServer

#: Read size; also the most one connection ever holds in user space.
CHUNK = 65536


class EchoServer(StreamServer):  # type: ignore[misc]
    """A StreamServer whose connections echo until EOF or ``idle_timeout``."""

    def __init__(
        self, listener: tuple[str, int], *, idle_timeout: float, max_connections: int
    ) -> None:
        super().__init__(listener, spawn=Pool(max_connections))
        self.idle_timeout = idle_timeout

    def handle(self, sock: Any, _address: Any) -> None:
        """Echo until EOF, then half-close; gevent closes the socket on return."""
        sock.settimeout(self.idle_timeout)
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        try:
            while True:
                n = sock.recv_into(buffer)
                if not n:
                    break
                sock.sendall(view[:n])
            # The client half-closed and everything it sent is written:
            # say we are done too, then the socket is closed on return.
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            # Idle timeout (TimeoutError is an OSError), reset or broken pipe:
            # the peer is gone or silent, and there is nothing to report.
            return
