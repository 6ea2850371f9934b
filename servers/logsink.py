"""The log sink's listeners: TCP streams and UDP datagrams in, records out.

Handlers are thin: read, feed the decoder, hand records to the pipeline.
The part with care in it is shutdown (ARCHITECTURE.md "Shutdown"): bytes that
reached the process before the signal are decoded and written, so listeners
accept what is already queued in their backlog before they close, and open
connections are read until EOF, until they fall quiet at a record boundary,
or until the grace deadline, when whatever the kernel holds for them is read
without waiting.

What one connection may cost the others is bounded too:

* an exception from decoding (a decoder bug; decoders should raise only
  ``DecodeError``) costs that datagram, or that connection's undecodable
  rest, never the listener or the drain: it is counted as the bad frame
  ``internal_error`` and reported once, in one line;
* when ``--max-connections`` are open and another connection waits, the
  connection that has been silent longest among those that never sent a
  record is closed to make room (counted ``notes["shed_idle"]``), so idle
  connections cannot lock a real sender out;
* the bytes of unfinished records held across all connections are bounded
  (:data:`UNFINISHED_RECORDS` records of the largest size allowed): over
  it, the connection holding the most is dropped (``dropped["memory_budget"]``).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import socket
import struct
import termios
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import gevent
from gevent.pool import Pool
from gevent.server import StreamServer

from netlog.decode.datagram import decode_datagram
from netlog.decode.stream import ConnectionDecoder, StreamDecoder
from netlog.errors import DecodeError
from netlog.record import Record, format_peer
from netlog.report import Reporter, describe_exception
from netlog.settings import DEFAULT_MAX_LINE
from netlog.sinks.pipeline import Pipeline
from netlog.stats import Stats
from servers.gevent_private import accept_queued, handle_accepted, replace_read_callback
from servers.pool_watch import FullPoolWatch
from servers.responder import MAX_DATAGRAM, FullDatagramServer

#: Makes the decoder of one connection from its peer's name: the protocol
#: a stream listener speaks (``StreamDecoder`` by default).
DecoderFactory = Callable[[str], ConnectionDecoder]
#: Decodes one datagram (bytes, peer, receive time) into its record, or
#: ``None`` when it holds no record yet (a GELF chunk); raises DecodeError.
DatagramDecode = Callable[[bytes, str, float], "Record | None"]

#: Datagrams a log datagram listener takes per wake-up of the event loop
#: before the others get their turn; they are handed on as one batch.
DATAGRAMS_PER_WAKEUP = 64
#: Senders' formatted addresses a datagram listener keeps; past this it starts again.
PEERS_KEPT = 1024

#: Bytes read per recv; large reads amortise the per-call cost.
READ_SIZE = 256 * 1024
#: A handler lets the event loop run after this many reads in a row, or
#: once it has decoded this many bytes since it last did: a gevent recv that
#: finds data ready never switches, so without this one fast sender starves
#: the others, and the flush timer and the signal handler with them.
READS_PER_YIELD = 8
BYTES_PER_YIELD = 64 * 1024
#: How a handler yields: any delay above zero puts it behind one full turn
#: of the event loop (timers, signals, I/O).  ``gevent.sleep(0)`` does not:
#: it only queues a callback, and the loop checks its clock once per 50 of
#: those, so eight busy connections (~20 ms of decoding per 256 KiB read)
#: kept SIGTERM, the grace timer and the flush timer waiting for 8 s and
#: more, and shutdown never finished while senders kept sending.
LOOP_TURN = 1e-6
#: While draining, a connection at a record boundary that stays silent this
#: long is finished: an application's idle SocketHandler never closes its
#: connection, and waiting the whole grace for it helps nobody.
DRAIN_QUIET = 0.5
#: Kernel receive buffer of each log connection.  Linux grows it up to
#: tcp_rmem's maximum (32 MiB here) for a sender faster than the decoder,
#: and all of it must be decoded after the grace at shutdown: eight such
#: senders made SIGTERM take 9-10 s with a 5 s grace.  256 KiB (the kernel
#: doubles it) still carries ~5 MB/s per connection at 50 ms round trip.
RECEIVE_BUFFER = 256 * 1024
#: Seconds handlers get to decode their final reads after the grace: a
#: safety bound only, never reached unless something is badly wrong.
FINAL_DECODE_LIMIT = 60.0
#: The bytes of unfinished records (half a line, half a frame) that all log
#: connections together may hold: this many records of the largest size
#: allowed (``max(--max-line, --max-frame)``), 64 MiB with the defaults.
#: Without it, ``--max-connections`` connections trickling a byte at a time
#: held ``--max-connections`` x ``--max-line`` (1,000 x 1 MiB took RSS to
#: 1,146 MiB).
UNFINISHED_RECORDS = 64


class AcceptHook(Protocol):
    """What ``--workers N`` sets on a log listener to balance connections (servers/balance.py)."""

    def pass_on(self, server: LogStreamServer, sock: Any, address: Any) -> bool:
        """Pass a connection just accepted to another worker; whether it was passed."""

    def taken(self) -> None:
        """A connection is served here from now on."""

    def released(self) -> None:
        """A connection served here has ended."""


#: Connections passed on per call of the accept hook before gevent's loop runs again.
PASSES_PER_READ = 64


class _Connection:
    """What the server tracks of one log connection, for shedding and the memory budget."""

    __slots__ = ("decoder", "greenlet", "held", "last_read")

    def __init__(self, greenlet: gevent.Greenlet, decoder: ConnectionDecoder) -> None:
        self.greenlet = greenlet
        self.decoder = decoder
        self.held = 0
        """Bytes of an unfinished record the decoder held after the last read."""
        self.last_read = time.monotonic()
        """When it last sent something (or connected)."""


def _held(connection: _Connection) -> int:
    return connection.held


class StartDrain(Exception):  # noqa: N818 - a signal thrown into a handler, not an error
    """Thrown into handlers when shutdown begins."""


class DrainNow(Exception):  # noqa: N818 - same
    """Thrown into handlers when the grace period is over."""


class Shed(Exception):  # noqa: N818 - same
    """Thrown into an idle handler to make room for a waiting connection."""


class OverBudget(Exception):  # noqa: N818 - same
    """Thrown into the handler holding the most unfinished bytes when all hold too many."""


def buffered_bytes(sock: Any) -> int:
    """How many bytes the kernel holds for ``sock`` right now (FIONREAD)."""
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])


def _announce_shutdown(sock: Any) -> None:
    """Half-close our side: the peer sees EOF while we keep reading what it sends.

    A client that watches its socket (``netlog.client.SinkHandler`` checks
    before every batch) stops sending into a connection that is about to
    close and keeps its records for the next server, instead of writing a
    batch that lands after our final read and is lost with the reset.  The
    stdlib SocketHandler never reads, so it is unaffected.
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def read_buffered(sock: Any) -> bytes:
    """Read what is already buffered on ``sock`` without waiting for more.

    Bounded by what FIONREAD reports at the start, so a peer that keeps
    sending cannot hold shutdown open.
    """
    # A TLS socket may hold decrypted bytes besides the kernel's encrypted ones.
    pending = getattr(sock, "pending", None)
    remaining = buffered_bytes(sock) + (pending() if pending is not None else 0)
    chunks = []
    sock.settimeout(0.0)
    while remaining > 0:
        try:
            chunk = sock.recv(min(remaining, READ_SIZE))
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class LogStreamServer(StreamServer):  # type: ignore[misc]
    """Log records over TCP: SocketHandler pickles, JSON lines, text lines.

    Another stream protocol (GELF over TCP, Fluentd's forward protocol) is
    this server with another ``decoder`` factory and ``name``: the drain,
    the shedding and the memory budget are the same for every protocol.
    """

    def __init__(
        self,
        listener: tuple[str, int],
        pipeline: Pipeline,
        report: Reporter,
        *,
        idle_timeout: float,
        max_connections: int,
        max_frame: int,
        max_line: int,
        name: str = "log_tcp",
        decoder: DecoderFactory | None = None,
    ) -> None:
        super().__init__(listener, spawn=Pool(max_connections))
        self.name = name
        self.make_decoder: DecoderFactory = decoder or (
            lambda peer: StreamDecoder(peer, max_frame=max_frame, max_line=max_line)
        )
        self.pipeline = pipeline
        self.stats = pipeline.stats
        self.report = report
        self.idle_timeout = idle_timeout
        self.max_frame = max_frame
        self.max_line = max_line
        self.draining = False
        self.drain_deadline = math.inf
        self.unfinished = 0
        """Bytes of unfinished records held by all connections now."""
        self.unfinished_budget = UNFINISHED_RECORDS * max(max_frame, max_line)
        """Most bytes of unfinished records held before a connection is dropped."""
        # Open connections by handler, oldest first; those that have not sent
        # a record yet are also in _unproven (pruned lazily when shedding).
        self._connections: dict[gevent.Greenlet, _Connection] = {}
        self._unproven: dict[gevent.Greenlet, _Connection] = {}
        # gevent asks full() before each accept and stops accepting while it
        # says so: new connections then wait in the kernel's queue, silently.
        self._pool_watch = FullPoolWatch(self, self._connection_waits)
        self.balancer: AcceptHook | None = None
        """Set by a ``--workers`` process: may pass accepted connections to another worker."""

    def _connection_waits(self) -> None:
        """A connection arrived while every slot is taken: make room, or count it and say so."""
        if not self.pool.full():
            return  # a slot came free first: gevent accepts it as usual
        if not self.draining and self._shed_idle():
            return  # its slot frees when it has closed: gevent accepts then
        self.stats.notes["max_connections"] += 1
        self.report(
            f"{self.pool.size} log connections open, the --max-connections limit: "
            "new ones wait in the kernel's queue",
            key="max_connections",
        )

    def _shed_idle(self) -> bool:
        """Close the connection silent longest among those that never sent a record.

        rsyslog's imtcp refuses sessions beyond its limit; here the newcomer
        may be the application that matters, and an idle connection that
        never delivered anything is the likeliest attacker.  Connections
        that did send a record (a quiet application's SocketHandler) are
        never shed.  Runs once per connection that has to wait, never per
        record; pruning the proven ones keeps it linear in the unproven.
        """
        unproven = self._unproven
        victim = None
        for key, connection in list(unproven.items()):
            if connection.decoder.records:
                del unproven[key]
            elif victim is None or connection.last_read < victim.last_read:
                victim = connection
        if victim is None:
            return False
        del unproven[victim.greenlet]
        self._connections.pop(victim.greenlet, None)
        victim.greenlet.kill(Shed, block=False)
        self.stats.notes["shed_idle"] += 1
        self.report(
            f"{self.pool.size} log connections open, the --max-connections limit: "
            f"closed the one silent longest that never sent a record ({victim.decoder.peer})",
            key="shed_idle",
        )
        return True

    def close(self) -> None:
        """Stop watching for waiting connections, then close the listener."""
        self._pool_watch.stop()
        super().close()

    def init_socket(self) -> None:
        """Bind, then bound the receive buffer every accepted connection inherits."""
        super().init_socket()
        with contextlib.suppress(OSError):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)

    def do_read(self) -> Any:
        """Accept one connection, first passing on those another worker should take.

        With a balancer (``--workers N``), a connection is passed right after
        its accept, before any byte of it is read; never while draining.
        """
        args = super().do_read()
        balancer = self.balancer
        if balancer is None or self.draining:
            return args
        for _ in range(PASSES_PER_READ):
            if not args or not balancer.pass_on(self, *args):
                return args
            args = super().do_read()
        return args

    def do_handle(self, *args: Any) -> None:
        """Serve an accepted connection (gevent's), counted for the balancer."""
        balancer = self.balancer
        if balancer is not None:
            balancer.taken()
        super().do_handle(*args)

    def take_handed(self, sock: Any, address: Any) -> None:
        """Serve a connection another worker accepted and passed here, as if accepted here.

        The same pool (``--max-connections``: waits for a slot when full), the
        same handler (TLS handshake, drain), and the socket closed when it
        returns; also after the listener closed, so a connection passed just
        before the drain is drained here.
        """
        balancer = self.balancer
        if balancer is not None:
            balancer.taken()
        try:
            self.pool.spawn(self._handle_and_close, sock, address)
        except BaseException:
            sock.close()
            if balancer is not None:
                balancer.released()
            raise

    def _handle_and_close(self, sock: Any, address: Any) -> None:
        try:
            self.handle(sock, address)
        finally:
            sock.close()

    def handle(self, sock: Any, address: Any) -> None:
        """Decode one connection until EOF, a fatal decode error, or shutdown.

        Whatever goes wrong costs this connection at most: an unexpected
        exception (a decoder bug) is counted and reported, never raised.
        """
        me = gevent.getcurrent()
        peer = format_peer(address)
        decoder = self.make_decoder(peer)
        connection = _Connection(me, decoder)
        self._connections[me] = connection
        if not self.draining:
            self._unproven[me] = connection
        self.stats.connections_total[self.name] += 1
        self.stats.connections_open[self.name] += 1
        opened = None
        try:
            opened = self._open(sock)
            if opened is not None:
                self._serve(opened, connection)
        except DecodeError as exc:
            self.stats.bad_frame(exc.reason)
            self.report(f"log connection from {peer} closed: {exc}", key=exc.reason)
        except Shed:
            decoder.abandon()  # half a record held is lost: counted as truncated
        except OverBudget:
            # abandon() frees the buffered bytes now: the decoder sits in a
            # reference cycle, so letting it go frees them only at the next
            # gc, and until then every connection dropped kept its bytes
            # (RSS grew with each one).  The half record is counted once,
            # as memory_budget, not also as truncated.
            truncated = decoder.dropped["truncated"]
            decoder.abandon()
            decoder.dropped["truncated"] = truncated
            if not truncated:
                del decoder.dropped["truncated"]
            self.stats.dropped["memory_budget"] += 1
            self.report(
                f"log connection from {peer} dropped: it held the most bytes of unfinished "
                f"records when all connections held more than {self.unfinished_budget}",
                key="memory_budget",
            )
        except (StartDrain, DrainNow):
            pass  # arrived after it stopped reading: nothing left to do
        except Exception as exc:  # noqa: BLE001 - one connection's bug must not cost more
            self.stats.bad_frame("internal_error")
            self.report(
                f"log connection from {peer} closed: {describe_exception(exc)}",
                key="internal_error",
            )
        finally:
            if opened is not None:
                self._close(opened)
            self._connections.pop(me, None)
            self._unproven.pop(me, None)
            self.unfinished -= connection.held
            self.stats.connections_open[self.name] -= 1
            if self.balancer is not None:
                self.balancer.released()
            self._account(decoder, peer)

    def _open(self, sock: Any) -> Any:
        """The socket to read records from, or ``None`` to close it unread (TLS: the handshake)."""
        return sock

    def _close(self, sock: Any) -> None:
        """Close what ``_open`` made; gevent closes the accepted socket itself."""

    def _announce(self, sock: Any) -> None:
        """Shutdown has begun: tell the peer (see :func:`_announce_shutdown`)."""
        _announce_shutdown(sock)

    def _serve(self, sock: Any, connection: _Connection) -> None:
        decoder = connection.decoder
        draining = self.draining
        sock.settimeout(DRAIN_QUIET if draining else self.idle_timeout)
        if draining:
            self._announce(sock)
        reads = unyielded = 0
        while True:
            if draining and time.monotonic() >= self.drain_deadline:
                # Checked here, not only by the runner's timer: while every
                # handler is busy, the hub runs that timer late.
                self._final_read(sock, connection)
                return
            try:
                reads += 1
                if reads >= READS_PER_YIELD or unyielded >= BYTES_PER_YIELD:
                    reads = unyielded = 0
                    gevent.sleep(LOOP_TURN)
                data = sock.recv(READ_SIZE)
            except StartDrain:
                draining = True
                sock.settimeout(DRAIN_QUIET)
                self._announce(sock)
                continue
            except DrainNow:
                self._final_read(sock, connection)
                return
            except TimeoutError:
                if self._keep_silent_connection(decoder, draining):
                    continue
                decoder.abandon()
                return
            except OSError:
                data = b""  # reset by peer: same as EOF for what we hold
            if data:
                unyielded += len(data)
                connection.last_read = time.monotonic()
                self._take(data, connection)
                self._reply(sock, decoder)
                # Not kept while waiting for the next read: an idle
                # connection would hold its last read (up to 256 KiB) besides
                # what its decoder holds, outside the unfinished-bytes budget.
                data = b""
            else:
                self.pipeline.submit(decoder.feed(b""))
                return

    def _take(self, data: bytes, connection: _Connection) -> None:
        """Decode bytes just read, hand the records on, and keep the unfinished bytes in budget."""
        decoder = connection.decoder
        self.stats.bytes_in[self.name] += len(data)
        records = decoder.feed(data)
        if records:
            self.pipeline.submit(records)
        held = decoder.pending
        if held != connection.held:
            self.unfinished += held - connection.held
            connection.held = held
            if self.unfinished > self.unfinished_budget:
                self._over_budget()
        if records and decoder.error is not None:
            raise decoder.error

    def _reply(self, sock: Any, decoder: ConnectionDecoder) -> None:
        """Send what the protocol answers (forward's acks) once its records are on disk.

        The pipeline is flushed first, so an answer that acknowledges
        records is sent only after write(2) took them (in the page cache: a
        crash of this process no longer loses them; a power cut may, as
        Fluentd's own file buffer).  When the store is failing, lines are
        still queued after the flush (and may yet be dropped): the answer
        is withheld (``notes["ack_withheld"]``) so the sender sends them
        again, as the forward protocol intends.  A peer that cannot take
        the answer (it half-closed, or we did at shutdown) costs the answer
        only (``notes["ack_unsent"]``): the records are written, the sender
        may send them again.
        """
        reply = decoder.replies()
        if not reply:
            return
        self.pipeline.flush()
        # The JSONL sink's queue; other line sinks (tests' fakes) write at once.
        if int(getattr(self.pipeline.files, "pending_lines", 0)):
            self.stats.notes["ack_withheld"] += 1
            self.report(
                f"answer to {decoder.peer} withheld: its records are not written yet",
                key="ack_withheld",
            )
            return
        try:
            sock.sendall(reply)
        except OSError:
            self.stats.notes["ack_unsent"] += 1

    def _over_budget(self) -> None:
        """Drop the connections holding the most unfinished bytes until all hold few enough.

        Runs only when the budget is exceeded: one pass over the open
        connections per connection dropped.
        """
        me = gevent.getcurrent()
        while self.unfinished > self.unfinished_budget:
            victim = max(self._connections.values(), key=_held, default=None)
            if victim is None or not victim.held:
                return  # what is held belongs to final reads, about to end
            # Its bytes are as good as freed: no other connection pays for them.
            self.unfinished -= victim.held
            victim.held = 0
            self._connections.pop(victim.greenlet, None)
            self._unproven.pop(victim.greenlet, None)
            if victim.greenlet is me:
                raise OverBudget
            victim.greenlet.kill(OverBudget, block=False)

    def _final_read(self, sock: Any, connection: _Connection) -> None:
        """The grace is over: decode what the kernel holds, then give up on the rest."""
        decoder = connection.decoder
        # Out of the set the runner signals, so no DrainNow is sent from now
        # on; one sent just before (the handler saw the deadline itself at
        # the same moment) is absorbed at the only switch point below.
        self._connections.pop(gevent.getcurrent(), None)
        data = read_buffered(sock)
        # Close before decoding: the peer stops sending at once (it gets a
        # reset) instead of competing for the CPU, and every other handler
        # makes its final read before this one spends time decoding, so
        # their buffers do not grow meanwhile.
        with contextlib.suppress(OSError):
            sock.close()
        with contextlib.suppress(DrainNow):
            gevent.sleep(0)
        if data:  # b"" would mean EOF to the decoder
            self._take(data, connection)
        # The peer did not close: what is left is half a record.
        decoder.abandon()

    def _keep_silent_connection(self, decoder: ConnectionDecoder, draining: bool) -> bool:
        """Whether a connection that stayed silent for its timeout stays open."""
        if draining:
            # At a record boundary it is finished; inside a record, the rest
            # may still come before the grace ends.
            return decoder.pending > 0
        if decoder.pending == 0 and decoder.records > 0:
            # A quiet application between records, not an idle attacker:
            # closing would make its SocketHandler lose the next record.
            return True
        self.stats.notes["idle_timeout"] += 1
        return False

    def _account(self, decoder: ConnectionDecoder, peer: str) -> None:
        """Move a finished connection's problem counts into the shared stats."""
        self.stats.add_connection(decoder.notes, decoder.dropped)
        if not decoder.dropped:
            return
        problem = decoder.last_problem or ", ".join(decoder.dropped)
        self.report(f"log connection from {peer}: {problem}", key=f"conn:{problem[:40]}")

    def stop_accepting_and_drain_backlog(self) -> None:
        """Accept every connection already queued by the kernel, then close.

        Those clients completed their handshake and may have sent records:
        their bytes reached the machine before the signal.
        """
        self.draining = True
        pool = self.pool
        while not pool.full():
            try:
                args = accept_queued(self)
            except OSError:
                break
            if not args:
                break
            handle_accepted(self, args)
        self.close()

    def start_drain(self, deadline: float) -> None:
        """Tell running handlers that shutdown has begun and when the grace ends."""
        self.drain_deadline = deadline
        for handler in list(self._connections):
            handler.kill(StartDrain, block=False)

    def finish_drain(self, deadline: float) -> None:
        """Wait for handlers until ``deadline``, then make them read what is buffered."""
        self.pool.join(timeout=max(0.0, deadline - time.monotonic()))
        for handler in list(self._connections):
            handler.kill(DrainNow, block=False)
        # Handlers now only decode what they hold (their sockets are closed),
        # which takes a while for a large backlog on a slow machine; killing
        # them sooner would lose records that reached the process in time.
        self.pool.join(timeout=FINAL_DECODE_LIMIT)
        self.pool.kill(block=True, timeout=1.0)


class LogDatagramServer(FullDatagramServer):
    """Log records over UDP, one per datagram; never replies to anything.

    Another datagram protocol (GELF over UDP) is this server with another
    ``decode`` and ``name``.
    """

    stats: Stats

    def __init__(
        self,
        listener: tuple[str, int],
        pipeline: Pipeline,
        report: Reporter,
        *,
        max_frame: int,
        max_line: int = DEFAULT_MAX_LINE,
        name: str = "log_udp",
        decode: DatagramDecode | None = None,
        kind: str = "log datagram",
    ) -> None:
        super().__init__(listener, spawn=None)
        self.name = name
        self.kind = kind
        """What one datagram is called in reports ("log datagram", "GELF datagram")."""
        self.pipeline = pipeline
        self.stats = pipeline.stats
        self.report = report
        self.max_frame = max_frame
        self.max_line = max_line
        self.decode: DatagramDecode = decode or self._decode_log_datagram
        self._peers: dict[Any, str] = {}
        """Senders' addresses as ``format_peer`` wrote them, for :meth:`take_queued`."""
        replace_read_callback(self, self.take_queued)

    def _decode_log_datagram(self, data: bytes, peer: str, received: float) -> Record:
        return decode_datagram(
            data,
            peer,
            received,
            max_frame=self.max_frame,
            max_line=self.max_line,
            notes=self.stats.notes,
        )

    def take_queued(self) -> None:
        """The read callback: decode what is queued, then hand it on as one batch.

        Replaces gevent's generic loop (a pool check, ``do_read`` and a
        handle-then-close wrapper per datagram) and the pipeline's per-batch
        bookkeeping per datagram: a burst of small datagrams cost about twice
        the CPU per record of the same records on a TCP connection.  Bounded
        per wake-up (:data:`DATAGRAMS_PER_WAKEUP`) so other listeners get
        their turn; the records of one wake-up are submitted together.

        The datagrams of one wake-up share one receive time, as the records
        of one TCP read do (the encoder formats it once, not once a record),
        a sender's formatted address is kept (:data:`PEERS_KEPT`), and the
        bytes are counted once a wake-up: at one record a datagram, each of
        these was a tenth of a microsecond or more a record.
        """
        recvfrom = self.raw_socket.recvfrom
        decode = self._decode
        peers = self._peers
        received = time.time()
        records: list[Record] = []
        taken = 0
        for _ in range(DATAGRAMS_PER_WAKEUP):
            try:
                data, address = recvfrom(MAX_DATAGRAM)
            except OSError:
                # BlockingIOError: all taken; else e.g. an ICMP error queued
                # on the socket: nothing to read either.
                break
            taken += len(data)
            peer = peers.get(address)
            if peer is None:
                if len(peers) >= PEERS_KEPT:
                    peers.clear()
                peer = peers[address] = format_peer(address)
            record = decode(data, peer, received)
            if record is not None:
                records.append(record)
        if taken:
            self.stats.bytes_in[self.name] += taken
        if records:
            self._submit(records)

    def handle(self, data: bytes, address: Any) -> None:
        """Decode one datagram inline (unused while :meth:`take_queued` reads)."""
        record = self._decode_one(data, address)
        if record is not None:
            self._submit((record,))

    def _decode_one(self, data: bytes, address: Any) -> Record | None:
        """One datagram's record (:meth:`_decode`), its bytes counted and its time its own."""
        self.stats.bytes_in[self.name] += len(data)
        return self._decode(data, format_peer(address), time.time())

    def _decode(self, data: bytes, peer: str, received: float) -> Record | None:
        """One datagram's record, or ``None``: whatever happens costs this datagram only."""
        try:
            return self.decode(data, peer, received)
        except DecodeError as exc:
            self.stats.bad_frame(exc.reason)
            self.report(f"{self.kind} from {peer} dropped: {exc}", key=f"{self.name}:{exc.reason}")
        except Exception as exc:  # noqa: BLE001 - a decoder bug costs one datagram, no more
            # Not raised: gevent would print a traceback per datagram and
            # pause reading (its accept back-off), and at shutdown the
            # drain would end there.
            self.stats.bad_frame("internal_error")
            self.report(
                f"{self.kind} from {peer} dropped: {describe_exception(exc)}",
                key=f"{self.name}:internal_error",
            )
        return None

    def _submit(self, records: Sequence[Record]) -> None:
        """Hand records on; a failure there is counted and reported, never raised."""
        try:
            self.pipeline.submit(records)
        except Exception as exc:  # noqa: BLE001 - same reason as in _decode
            self.stats.dropped["internal_error"] += len(records)
            self.report(
                f"{len(records)} records of {self.kind}s lost: {describe_exception(exc)}",
                key=f"{self.name}:submit_error",
            )

    def drain_and_close(self) -> None:
        """Decode every datagram already queued on the socket, then close it.

        Never raises: the rest of the shutdown must run whatever a datagram holds.
        """
        records = []
        try:
            while True:
                try:
                    item = self.do_read()
                except OSError:
                    break
                if item is None:
                    break
                record = self._decode_one(*item)
                if record is not None:
                    records.append(record)
            self._submit(records)
        finally:
            self.close()


def close_quietly(server: Any) -> None:
    """Close a listener; closing twice or a half-started one is fine."""
    with contextlib.suppress(OSError, AttributeError):
        server.close()


__all__ = [
    "UNFINISHED_RECORDS",
    "DatagramDecode",
    "DecoderFactory",
    "DrainNow",
    "LogDatagramServer",
    "LogStreamServer",
    "OverBudget",
    "Shed",
    "StartDrain",
    "close_quietly",
    "read_buffered",
]
