"""The syslog destination: stored records to any RFC 5424 collector (``--syslog-forward``).

``tcp://HOST:PORT`` sends each record as one RFC 5424 message framed by
octet counting (RFC 6587 3.4.1), ``tls://HOST:PORT`` the same inside TLS
(RFC 5425; the collector's certificate is verified against the system's CAs,
or ``--syslog-ca FILE``, and its name against HOST), ``udp://HOST:PORT`` one
message a datagram (RFC 5426), cut at
:data:`~netlog.forward.rfc5424.DEFAULT_DATAGRAM_LIMIT` bytes and counted in
:attr:`SyslogDestination.truncated`.  The message itself is
:mod:`netlog.forward.rfc5424`'s.

What "at least once" means here.  Syslog over TCP has no acknowledgement of
its own: :meth:`SyslogDestination.send` returns once the whole batch is
written and drained into the kernel's send buffer, and the forwarder then
moves its position past it.  A connection the collector closed (rsyslog
stopping) is noticed before the next batch is written, and that batch goes,
after a reconnect, on the new connection.  What TCP cannot tell is the fate
of bytes already handed to the kernel: when the collector dies or resets
the connection, the batch written just before (whatever it had not read
yet) may be lost, and a batch whose write failed half-way is sent again
whole, so its first records may arrive twice.  Every record before that last
batch has been read by the collector, and every record after it is sent
again from the forwarder's position.  The record's ``id`` is in the
structured data, so a collector can drop the doubles.  UDP promises nothing:
a datagram may be lost without anyone knowing; a refused one (ICMP port
unreachable) fails the batch, which is then sent again.

After a failure the connection is dropped and :meth:`send` raises
:class:`~netlog.forward.failures.DestinationError` (``unreachable``,
``closed``, ``tls``, ``timeout``, ``refused``); the forwarder retries the
batch with its backoff (0.5 s doubling to 30 s, with jitter) and the next
:meth:`send` connects again, so a collector that is down costs one
connection attempt per retry, never a busy loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import orjson

from netlog.forward.destination import StoredLine
from netlog.forward.failures import DestinationError
from netlog.forward.rfc5424 import DEFAULT_DATAGRAM_LIMIT, Rfc5424, octet_counted
from netlog.settings import SyslogTarget, syslog_target

__all__ = ["SyslogDestination"]

#: Connecting (and the TLS handshake) gives up after this long.
CONNECT_TIMEOUT: Final = 10.0
#: A collector that takes nothing for this long is treated as gone: the
#: connection is dropped and the batch is sent again on a new one.
SEND_TIMEOUT: Final = 60.0


class _DatagramProtocol(asyncio.DatagramProtocol):
    """Keeps the error a connected UDP socket reports (ICMP port unreachable)."""

    def __init__(self) -> None:
        self.error: Exception | None = None

    def error_received(self, exc: Exception) -> None:
        self.error = exc


class SyslogDestination:
    """A :class:`~netlog.forward.destination.Destination` for a syslog collector."""

    name = "syslog"

    def __init__(
        self,
        target: SyslogTarget | str,
        *,
        ca_file: Path | None = None,
        hostname: str | None = None,
        datagram_limit: int = DEFAULT_DATAGRAM_LIMIT,
    ) -> None:
        """``hostname``: HOSTNAME of records without a ``host`` key (default: this machine's)."""
        self.target = syslog_target(target) if isinstance(target, str) else target
        self._ca_file = ca_file
        self._format = Rfc5424(hostname or socket.gethostname())
        self._datagram_limit = datagram_limit
        self._writer: asyncio.StreamWriter | None = None
        self._peer_gone: asyncio.Event | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_protocol: _DatagramProtocol | None = None
        self.sent = 0
        """Messages handed to the transport."""
        self.truncated = 0
        """UDP messages cut to the datagram limit."""
        self.skipped = 0
        """Stored lines that were not a JSON object (never sent half)."""
        self.connects = 0
        """Connections opened, the first included."""

    @property
    def connected(self) -> bool:
        """Whether a connection (or a UDP socket) is open now."""
        return self._writer is not None or self._udp is not None

    async def connect(self) -> None:
        """Open the connection; raise :class:`DestinationError` when it cannot be opened."""
        await self.close()
        host, port = self.target.host, self.target.port
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                if self.target.scheme == "udp":
                    loop = asyncio.get_running_loop()
                    transport, protocol = await loop.create_datagram_endpoint(
                        _DatagramProtocol, remote_addr=(host, port)
                    )
                    self._udp, self._udp_protocol = transport, protocol
                else:
                    context = self._tls_context() if self.target.scheme == "tls" else None
                    reader, writer = await asyncio.open_connection(
                        host, port, ssl=context, server_hostname=host if context else None
                    )
                    self._writer = writer
                    self._peer_gone = asyncio.Event()
                    self._watcher = asyncio.create_task(self._watch(reader, self._peer_gone))
        except (OSError, TimeoutError) as exc:
            await self.close()
            raise _failure(exc, f"cannot connect to {self._where()}") from exc
        self.connects += 1

    def _tls_context(self) -> ssl.SSLContext:
        """The system's CAs, or ``--syslog-ca``; the collector's name must match HOST."""
        return ssl.create_default_context(cafile=str(self._ca_file) if self._ca_file else None)

    @staticmethod
    async def _watch(reader: asyncio.StreamReader, gone: asyncio.Event) -> None:
        """A collector sends nothing back, so anything but data here means it closed."""
        with contextlib.suppress(OSError, ssl.SSLError):
            while await reader.read(1 << 16):
                pass
        gone.set()

    async def send(self, batch: Sequence[StoredLine]) -> None:
        """Write every record of ``batch`` in order; return once drained, raise when not.

        Connects first when there is no connection (the forwarder's backoff
        paces the attempts); any failure drops the connection and raises
        :class:`DestinationError`.
        """
        if not self.connected:
            await self.connect()
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                if self._udp is not None:
                    await self._send_datagrams(batch)
                else:
                    await self._send_stream(batch)
        except (OSError, TimeoutError) as exc:
            await self.close()
            raise _failure(exc, f"sending to {self._where()}") from exc
        except BaseException:
            await self.close()
            raise

    async def _send_stream(self, batch: Sequence[StoredLine]) -> None:
        writer, gone = self._writer, self._peer_gone
        assert writer is not None
        assert gone is not None
        if gone.is_set():
            raise ConnectionResetError("the collector closed the connection")
        frames = [octet_counted(self._format.message(r)) for r in self._records(batch)]
        writer.write(b"".join(frames))
        await writer.drain()
        self.sent += len(frames)

    async def _send_datagrams(self, batch: Sequence[StoredLine]) -> None:
        transport, protocol = self._udp, self._udp_protocol
        assert transport is not None
        assert protocol is not None
        for record in self._records(batch):
            datagram = self._format.datagram(record, self._datagram_limit)
            self.truncated += datagram.truncated
            self._raise_udp_error(protocol)
            transport.sendto(datagram.data)
            self.sent += 1
            # One turn of the loop a datagram: a refusal (ICMP port
            # unreachable) is heard, and the transport's buffer stays short.
            await asyncio.sleep(0)
        self._raise_udp_error(protocol)

    def _raise_udp_error(self, protocol: _DatagramProtocol) -> None:
        error, protocol.error = protocol.error, None
        if error is not None:
            raise ConnectionRefusedError(f"the collector refused a datagram: {error}")

    def _records(self, batch: Sequence[StoredLine]) -> list[dict[str, object]]:
        """The batch's stored lines as records; one that is not a JSON object is skipped."""
        records = []
        for item in batch:
            try:
                record = orjson.loads(item.line)
            except orjson.JSONDecodeError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                self.skipped += 1
        return records

    def _where(self) -> str:
        return f"{self.target.scheme}://{self.target.host}:{self.target.port}"

    async def close(self) -> None:
        """Drop the connection (or socket); never raises."""
        writer, self._writer = self._writer, None
        watcher, self._watcher = self._watcher, None
        udp, self._udp = self._udp, None
        if udp is not None:
            udp.close()
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await watcher


def _failure(exc: BaseException, doing: str) -> DestinationError:
    """``exc`` as the forwarder's error, with the kind its once-per-kind report names."""
    if isinstance(exc, ssl.SSLError):
        kind = "tls"
    elif isinstance(exc, TimeoutError):
        kind = "timeout"
    elif isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        kind = "closed"
    elif isinstance(exc, ConnectionRefusedError) and doing.startswith("sending"):
        kind = "refused"
    else:
        kind = "unreachable"
    return DestinationError(kind, f"{doing}: {exc}")
