"""UDP responder: one reply per datagram, within the rules of netlog.responder.

Datagrams are handled inline in the read callback (``spawn=None``): a
greenlet per datagram costs ~4.5x more than the reply itself.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from gevent.server import DatagramServer

from netlog.responder import RateLimiter, reply_for
from servers.gevent_private import raw_datagram_socket, replace_read_callback

#: Largest UDP payload over IPv4; gevent's default read of 8192 would cut it.
MAX_DATAGRAM = 65535
#: Datagrams answered per read callback before the loop gets its turn back.
READS_PER_WAKEUP = 256


class FullDatagramServer(DatagramServer):  # type: ignore[misc]
    """A DatagramServer that reads whole datagrams and buffers bursts.

    gevent's own reads only 8192 bytes, cutting larger datagrams.
    """

    raw_socket: Any = None
    """The plain socket under gevent's, read directly once bound."""

    def init_socket(self) -> None:
        """Bind, then make room for full-size datagrams under load."""
        super().init_socket()
        self.raw_socket = raw_datagram_socket(self)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            # A smaller kernel limit is fine: only bursts are affected.
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.SOL_SOCKET, option, 4 << 20)

    def do_read(self) -> tuple[bytes, Any] | None:
        """Read one whole datagram, or ``None`` when none is queued."""
        try:
            return self.raw_socket.recvfrom(MAX_DATAGRAM)  # type: ignore[no-any-return]
        except BlockingIOError:
            return None


class ResponderServer(FullDatagramServer):
    """Answers probes: ``ping`` -> ``pong``, anything else echoed."""

    def __init__(self, listener: tuple[str, int], *, rate: float) -> None:
        super().__init__(listener, spawn=None)
        self.limiter = RateLimiter(rate)
        self.answered = 0
        self.rate_limited = 0
        self.refused = 0
        replace_read_callback(self, self.answer_queued)

    def answer_queued(self) -> None:
        """The read callback: answer what is queued in one tight loop.

        Replaces gevent's generic loop, which per datagram checks a pool,
        calls ``do_read`` and wraps ``handle`` in a handle-then-close helper;
        for 64-byte probes those calls cost as much as the reply.  Without a
        rate limit the clock is not read at all.  Bounded per wake-up so
        other listeners get their turn.
        """
        sock = self.raw_socket
        recvfrom = sock.recvfrom
        sendto = sock.sendto
        allow = self.limiter.allow if self.limiter.rate > 0 else None
        answered = refused = rate_limited = 0
        for _ in range(READS_PER_WAKEUP):
            try:
                data, address = recvfrom(MAX_DATAGRAM)
            except OSError:
                # BlockingIOError: all answered; else e.g. an ICMP error
                # queued on the socket: nothing to answer either.
                break
            reply = reply_for(data, address[1])
            if reply is None:
                refused += 1
            elif allow is not None and not allow(address[0], time.monotonic()):
                rate_limited += 1
            else:
                try:
                    sendto(reply, address)
                except OSError:
                    continue  # a full send buffer or an unreachable peer: UDP may drop
                answered += 1
        self.answered += answered
        self.refused += refused
        self.rate_limited += rate_limited

    def handle(self, *_args: Any) -> None:
        """Unused: :meth:`answer_queued` answers inline (gevent wants one)."""
