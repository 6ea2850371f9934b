"""asyncio (or uvloop) TCP echo and UDP echo: the anchors for netlog's echo and responder.

The fastest idiomatic asyncio shape: ``Protocol`` callbacks, not streams, so
``data_received`` writes straight back to the transport, with the same
back-pressure rule as netlog (stop reading while the transport is over its
high-water mark).

    python bench/anchors/echo_asyncio.py --loop uvloop --ready-file FILE

Port 0 binds an ephemeral port; the ready file gets
``{"pid", "echo", "responder"}`` once both are bound.  SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
from pathlib import Path


class Echo(asyncio.Protocol):
    """TCP: every byte back; pause reading while the peer does not read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool:
        return False  # close once everything is written

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


class UdpEcho(asyncio.DatagramProtocol):
    """UDP: every datagram back to its sender."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


async def serve(host: str, tcp_port: int, udp_port: int, ready_file: Path | None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, host, tcp_port, backlog=4096)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        udp.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
    udp.bind((host, udp_port))
    transport, _ = await loop.create_datagram_endpoint(UdpEcho, sock=udp)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if ready_file is not None:
        ports = {
            "pid": os.getpid(),
            "echo": server.sockets[0].getsockname()[1],
            "responder": udp.getsockname()[1],
        }
        tmp = ready_file.with_name(ready_file.name + ".tmp")
        tmp.write_text(json.dumps(ports))
        tmp.replace(ready_file)
    await stop.wait()
    server.close()
    transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tcp-port", type=int, default=0)
    parser.add_argument("--udp-port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()
    coro = serve(args.host, args.tcp_port, args.udp_port, args.ready_file)
    if args.loop == "uvloop":
        import uvloop  # noqa: PLC0415 - only when asked for

        uvloop.run(coro)
    else:
        asyncio.run(coro)


if __name__ == "__main__":
    main()
