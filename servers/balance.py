"""Passing freshly accepted stream connections to the least-loaded worker (``--workers N``).

The decision is :mod:`netlog.balance`'s; this module is its plumbing:

* :class:`Exchange` (the writer) makes, before any worker starts, the shared
  counts (a ``memfd`` of a few hundred bytes, mapped by every process) and
  one ``AF_UNIX``/``SOCK_DGRAM`` socketpair per worker slot, kept for the
  writer's whole life: a restarted worker gets the same receive end, and a
  connection queued for a worker that died is still there.  Every worker
  gets the counts, every slot's send end and its own receive end
  (``pass_fds``).  When a worker exits, the writer reads what is queued for
  it and passes it to a live worker (or leaves it for the restart); at the
  writer's exit whatever is still queued is counted and closed, never
  silently dropped.
* :class:`Balancer` (a worker) is the log listeners' accept hook: right
  after ``accept``, before any byte is read, it asks :func:`netlog.balance.choose`
  and may send the descriptor (``SCM_RIGHTS``, with the listener's name and
  the peer's address) to another worker and close its own copy.  A greenlet
  reads its receive end and gives each connection to the same listener's
  :meth:`~servers.logsink.LogStreamServer.take_handed`, so limits, TLS and
  counting are those of a connection accepted there.  A connection passed
  once is served where it lands.

A message is ``[sender, listener, address]`` in JSON with one descriptor.
The send is never waited for: a full queue (``net.unix.max_dgram_qlen``,
10 by default) or a broken one means the connection is served where it was
accepted.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import gevent
import gevent.socket
import orjson

from netlog.balance import ALIVE, DEAD, DRAINING, WORD, Counts, size_in_words

if TYPE_CHECKING:
    from servers.logsink import LogStreamServer

#: Bytes of one message's payload, at most (a listener's name and an IPv6 address).
MESSAGE_SIZE: Final = 512


def _socketpair() -> tuple[socket.socket, socket.socket]:
    """One slot's (receive end, send end), both non-blocking."""
    receive, send = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for end in (receive, send):
        end.setblocking(False)  # noqa: FBT003 - the socket API
    return receive, send


def _map(fd: int, workers: int) -> tuple[mmap.mmap, Counts]:
    shared = mmap.mmap(fd, size_in_words(workers) * WORD)
    return shared, Counts(memoryview(shared), workers)


def send_connection(end: socket.socket, sender: int, listener: str, address: Any, fd: int) -> bool:
    """Queue the connection ``fd`` on ``end`` without waiting: whether it was queued."""
    payload = orjson.dumps([sender, listener, list(address)])
    try:
        socket.send_fds(end, [payload], [fd])
    except OSError:  # BlockingIOError: the queue is full; else the other end is gone
        return False
    return True


def queued_connections(end: socket.socket) -> Iterator[tuple[int, str, Any, int]]:
    """``(sender, listener, address, fd)`` of each message queued on ``end``, without waiting."""
    while True:
        try:
            payload, fds, _flags, _address = socket.recv_fds(end, MESSAGE_SIZE, 1)
        except OSError:  # BlockingIOError: nothing more is queued
            return
        if not fds:
            continue
        try:
            sender, listener, address = orjson.loads(payload)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            os.close(fds[0])
            continue
        yield int(sender), str(listener), tuple(address), fds[0]


class Exchange:
    """The writer's side: the shared counts and every slot's socketpair, for its whole life."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.fd = os.memfd_create("netlog-balance")
        os.ftruncate(self.fd, size_in_words(workers) * WORD)
        self.shared, self.counts = _map(self.fd, workers)
        self.pairs = [_socketpair() for _ in range(workers)]
        self.waiting: list[list[tuple[str, Any, int]]] = [[] for _ in range(workers)]
        """Per slot: connections no queue could take when its worker died (held here)."""

    def pass_fds(self, slot: int) -> tuple[int, ...]:
        """The descriptors worker ``slot`` (from 0) inherits."""
        return (self.fd, self.pairs[slot][0].fileno(), *(send.fileno() for _, send in self.pairs))

    def config(self, slot: int) -> dict[str, Any]:
        """What worker ``slot`` needs to find them (same numbers in the child)."""
        return {
            "memfd": self.fd,
            "workers": self.workers,
            "receive": self.pairs[slot][0].fileno(),
            "send": [send.fileno() for _, send in self.pairs],
        }

    def worker_exited(self, slot: int) -> None:
        """Mark the slot dead, forget what it held, and pass on what was queued for it."""
        self.counts.set_state(slot, DEAD)
        self.counts.set_held(slot, 0)
        self.reclaim(slot)

    def reclaim(self, slot: int) -> None:
        """Pass what is queued for the dead ``slot`` to the least-loaded live worker.

        With no live worker, it goes back on the slot's own queue for the
        worker started there next (or, if even that is full, waits here).
        """
        counts = self.counts
        writer = self.workers
        waiting = self.waiting[slot]
        self.waiting[slot] = []
        for sender, listener, address, fd in queued_connections(self.pairs[slot][0]):
            counts.add_received(sender, slot)  # as the dead worker's proxy: no longer in flight
            waiting.append((listener, address, fd))
        for listener, address, fd in waiting:
            loads = counts.loads()
            live = [j for j, state in enumerate(counts.states()) if state == ALIVE]
            for target in (*sorted(live, key=loads.__getitem__), slot):
                if send_connection(self.pairs[target][1], writer, listener, address, fd):
                    counts.add_handed(writer, target)
                    os.close(fd)
                    break
            else:
                self.waiting[slot].append((listener, address, fd))

    def handed(self, slot: int) -> int:
        """Connections worker ``slot`` passed on so far (every process that ran in it)."""
        return self.counts.handed_by(slot)

    def close(self) -> int:
        """At the writer's exit: close every queued connection; how many there were."""
        left = 0
        for waiting in self.waiting:
            for _listener, _address, fd in waiting:
                left += 1
                os.close(fd)
        for receive, _send in self.pairs:
            for _sender, _listener, _address, fd in queued_connections(receive):
                left += 1
                os.close(fd)
        for receive, send in self.pairs:
            receive.close()
            send.close()
        self.counts.words.release()
        with contextlib.suppress(BufferError):
            self.shared.close()
        os.close(self.fd)
        return left


class Balancer:
    """A worker's side: the accept hook of its log listeners and the reader of its queue."""

    def __init__(self, config: dict[str, Any], slot: int) -> None:
        self.me = slot
        self.shared, self.counts = _map(config["memfd"], config["workers"])
        os.close(config["memfd"])
        self.sends = [socket.socket(fileno=fd) for fd in config["send"]]
        self.receive = socket.socket(fileno=config["receive"])
        for end in (*self.sends, self.receive):
            end.setblocking(False)  # noqa: FBT003 - the socket API
        self.servers: dict[str, LogStreamServer] = {}
        self.held = 0
        self.draining = False
        self.taken_draining = 0
        """Connections taken from the queue since the drain began."""
        self._reader: gevent.Greenlet | None = None
        self._stopping = False
        self._idle = False
        """The reader waits for its queue (killing it there loses nothing)."""

    # -- the listeners' hook ------------------------------------------------

    def pass_on(self, server: LogStreamServer, sock: Any, address: Any) -> bool:
        """Pass a connection just accepted to a less-loaded worker; whether it was passed."""
        if self.draining:
            return False
        counts = self.counts
        target = counts.choose(self.me)
        if target is None:
            return False
        if not send_connection(self.sends[target], self.me, server.name, address, sock.fileno()):
            return False
        counts.add_handed(self.me, target)
        sock.close()
        return True

    def taken(self) -> None:
        """A connection is served here from now on."""
        self.held += 1
        self.counts.set_held(self.me, self.held)

    def released(self) -> None:
        """A connection served here has ended."""
        self.held -= 1
        self.counts.set_held(self.me, self.held)

    # -- the receiving side -------------------------------------------------

    def start(self, servers: list[LogStreamServer]) -> None:
        """Every listener is bound: take connections from now on, and be given some."""
        self.servers = {server.name: server for server in servers}
        for server in servers:
            server.balancer = self
        self._reader = gevent.spawn(self._receive_forever)
        self.counts.set_state(self.me, ALIVE)

    def _receive_forever(self) -> None:
        fd = self.receive.fileno()
        while not self._stopping:
            self._idle = True
            try:
                gevent.socket.wait_read(fd)
            finally:
                self._idle = False
            self.take_queued()

    def take_queued(self) -> int:
        """Serve every connection queued for this worker; how many."""
        taken = 0
        for sender, listener, address, fd in queued_connections(self.receive):
            self.counts.add_received(sender, self.me)
            server = self.servers.get(listener)
            if server is None:  # not a listener of ours: cannot happen between equal workers
                os.close(fd)
                continue
            sock = gevent.socket.socket(server.family, socket.SOCK_STREAM, 0, fileno=fd)
            server.take_handed(sock, address)
            taken += 1
        if self.draining:
            self.taken_draining += taken
        return taken

    def start_drain(self) -> None:
        """SIGTERM: pass nothing more, and be given nothing more."""
        self.draining = True
        self.counts.set_state(self.me, DRAINING)

    def finish(self) -> int:
        """The drain is over: stop reading, serve what is queued still; how many since it began.

        The caller drains again when any came: a connection taken after its
        listener finished draining would not be waited for otherwise.
        """
        reader, self._reader = self._reader, None
        self._stopping = True
        if reader is not None:
            if self._idle:
                reader.kill()
            else:  # serving what it took (waiting for a pool slot): let it finish
                reader.join()
        self.take_queued()
        return self.taken_draining


__all__ = [
    "Balancer",
    "Exchange",
    "queued_connections",
    "send_connection",
]
