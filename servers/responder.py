"""UDP responder: one reply per datagram, within the rules of netlog.responder.

Datagrams are handled inline in the read callback (``spawn=None``): a
greenlet per datagram costs ~4.5x more than the reply itself.

Both UDP listeners (this one and the log listener) count the datagrams the
kernel dropped because their receive buffer was full: the socket's ``drops``
in ``/proc/net/udp``, read when the counters are read (``/metrics``) and when
the listener closes, never per datagram.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Any

from gevent.server import DatagramServer

from netlog.report import Reporter, describe_exception
from netlog.responder import MAX_HEALTH_CHECK, RateLimiter, is_health_check, reply_for
from netlog.stats import Stats
from servers.gevent_private import raw_datagram_socket, replace_read_callback

#: Largest UDP payload over IPv4; gevent's default read of 8192 would cut it.
MAX_DATAGRAM = 65535
#: Datagrams answered per read callback before the loop gets its turn back.
READS_PER_WAKEUP = 256


def kernel_drops(sock: Any) -> int | None:
    """How many datagrams the kernel dropped for ``sock`` (its receive buffer was full).

    The ``drops`` column of ``/proc/net/udp`` (``udp6`` for IPv6) on the
    line of the socket's inode; ``None`` where that is not available (not
    Linux, a closed socket).  Costs a read of that file: call it when the
    count is wanted, not per datagram.
    """
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
        table = "udp6" if sock.family == socket.AF_INET6 else "udp"
        lines = Path("/proc/net", table).read_text().splitlines()[1:]
    except (OSError, ValueError, AttributeError):
        return None
    for line in lines:
        fields = line.split()
        # sl local rem st queues tr retrnsmt uid timeout inode ref pointer drops
        if len(fields) >= 13 and fields[9] == inode:
            return int(fields[-1])
    return None


class FullDatagramServer(DatagramServer):  # type: ignore[misc]
    """A DatagramServer that reads whole datagrams, buffers bursts and counts the kernel's drops.

    gevent's own reads only 8192 bytes, cutting larger datagrams.
    """

    name = "udp"
    """The listener's label in :attr:`Stats.kernel_dropped`."""
    raw_socket: Any = None
    """The plain socket under gevent's, read directly once bound."""
    stats: Stats | None = None
    """Where the kernel's drops are counted (``kernel_dropped[name]``), if anywhere."""
    kernel_dropped = 0
    """Datagrams the kernel dropped on this socket, as last read."""

    def init_socket(self) -> None:
        """Bind, then make room for full-size datagrams under load."""
        super().init_socket()
        self.raw_socket = raw_datagram_socket(self)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            # A smaller kernel limit is fine: only bursts are affected.
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
        if self.stats is not None:
            self.stats.readers.append(self.count_kernel_drops)

    def count_kernel_drops(self) -> None:
        """Read the kernel's drop count for this socket into :attr:`kernel_dropped` and stats."""
        if self.raw_socket is None or self.closed:
            return  # closed: the last count read stands
        drops = kernel_drops(self.raw_socket)
        if drops is None:
            return
        self.kernel_dropped = drops
        if self.stats is not None:
            self.stats.kernel_dropped[self.name] = drops

    def close(self) -> None:
        """Count the kernel's drops one last time, then close."""
        self.count_kernel_drops()
        super().close()

    def do_read(self) -> tuple[bytes, Any] | None:
        """Read one whole datagram, or ``None`` when none is queued."""
        try:
            return self.raw_socket.recvfrom(MAX_DATAGRAM)  # type: ignore[no-any-return]
        except BlockingIOError:
            return None


class ResponderServer(FullDatagramServer):
    """Answers probes: ``ping`` -> ``pong``, ``health`` -> ``ok``, anything else echoed.

    ``answered`` counts the probes people and programs send; health checks
    (``health``) are answered alike but counted in ``health_checks``, so a
    container's periodic check does not hide them.
    """

    name = "responder"

    def __init__(
        self,
        listener: tuple[str, int],
        *,
        rate: float,
        stats: Stats | None = None,
        report: Reporter | None = None,
    ) -> None:
        super().__init__(listener, spawn=None)
        self.stats = stats
        self.report = report if report is not None else Reporter()
        self.limiter = RateLimiter(rate)
        self.answered = 0
        self.health_checks = 0
        """Health checks (``health``) answered; not in :attr:`answered`."""
        self.rate_limited = 0
        self.refused = 0
        self.errors = 0
        """Probes dropped because answering raised (a bug: reported, never fatal)."""
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
        answered = health_checks = refused = rate_limited = 0
        for _ in range(READS_PER_WAKEUP):
            try:
                data, address = recvfrom(MAX_DATAGRAM)
            except OSError:
                # BlockingIOError: all answered; else e.g. an ICMP error
                # queued on the socket: nothing to answer either.
                break
            try:
                reply = reply_for(data, address[1])
            except Exception as exc:  # noqa: BLE001 - a bug costs one probe, never the loop
                self.errors += 1
                self.report(
                    f"probe from {address[0]} dropped: {describe_exception(exc)}",
                    key="responder:error",
                )
                continue
            if reply is None:
                refused += 1
            elif allow is not None and not allow(address[0], time.monotonic()):
                rate_limited += 1
            else:
                try:
                    sendto(reply, address)
                except OSError:
                    continue  # a full send buffer or an unreachable peer: UDP may drop
                if len(data) <= MAX_HEALTH_CHECK and is_health_check(data):
                    health_checks += 1
                else:
                    answered += 1
        self.answered += answered
        self.health_checks += health_checks
        self.refused += refused
        self.rate_limited += rate_limited

    def handle(self, *_args: Any) -> None:
        """Unused: :meth:`answer_queued` answers inline (gevent wants one)."""
