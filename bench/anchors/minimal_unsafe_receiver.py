"""UNSAFE: the least work a Python receiver of SocketHandler frames can do (a speed limit).

!!! This program calls ``pickle.loads`` on bytes from the network.  Anyone who
!!! can connect to it can run any code as its user.  It exists only so that
!!! ``bench/`` can say how close netlog gets to the cheapest possible Python
!!! receiver; never run it anywhere but on 127.0.0.1 in a benchmark.

What it does per record is the floor for the job in CPython: one
``selectors`` loop on one thread, non-blocking sockets read 256 KiB at a
time, frames cut with ``struct.unpack_from`` from one buffer, the stdlib's C
``pickle.loads`` (no restricted unpickler, no opcode check, no expansion
budget), a 5-key record (``ts`` left as the float the sender made,
``level``, ``logger``, ``message``, ``peer``), ``orjson.dumps``, and one
``os.write`` per read for all of that read's lines.  Nothing netlog promises
beyond "the line is in the file" is done: no ids, no RFC 3339 times, no user
fields, no escaping of unsafe characters, no bad-frame handling (a bad frame
kills the connection), no fsync, no drain at SIGTERM.

    python bench/anchors/minimal_unsafe_receiver.py --port 0 --out records.jsonl --ready-file FILE

The ready file gets ``{"pid", "log_tcp"}``; SIGTERM stops it.  Needs orjson
(run it with the project's venv).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import selectors
import signal
import socket
import struct
from pathlib import Path

import orjson

READ_SIZE = 256 * 1024
LENGTH = struct.Struct(">L")


def serve(listener: socket.socket, out_fd: int, stopping: list[bool]) -> None:
    """Accept and read until ``stopping[0]``; every complete frame becomes one line."""
    selector = selectors.DefaultSelector()
    listener.settimeout(0.0)  # non-blocking
    selector.register(listener, selectors.EVENT_READ, None)
    buffers: dict[socket.socket, bytes] = {}
    peers: dict[socket.socket, str] = {}
    unpack = LENGTH.unpack_from
    dumps = orjson.dumps
    loads = pickle.loads  # UNSAFE: runs whatever the bytes say
    while not stopping[0]:
        for key, _events in selector.select(0.5):
            sock = key.fileobj
            if sock is listener:
                conn, address = listener.accept()
                conn.settimeout(0.0)  # non-blocking
                selector.register(conn, selectors.EVENT_READ, None)
                buffers[conn] = b""
                peers[conn] = f"{address[0]}:{address[1]}"
                continue
            assert isinstance(sock, socket.socket)
            try:
                chunk = sock.recv(READ_SIZE)
            except BlockingIOError:
                continue
            if not chunk:
                selector.unregister(sock)
                sock.close()
                del buffers[sock], peers[sock]
                continue
            data = buffers[sock] + chunk if buffers[sock] else chunk
            peer = peers[sock]
            lines = []
            pos = 0
            end = len(data)
            while end - pos >= 4:
                size = unpack(data, pos)[0]
                stop = pos + 4 + size
                if stop > end:
                    break
                d = loads(data[pos + 4 : stop])
                lines.append(
                    dumps(
                        {
                            "ts": d["created"],
                            "level": d["levelname"],
                            "logger": d["name"],
                            "message": d["msg"],
                            "peer": peer,
                        }
                    )
                )
                pos = stop
            buffers[sock] = data[pos:]
            if lines:
                lines.append(b"")
                os.write(out_fd, b"\n".join(lines))
    selector.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()

    listener = socket.create_server((args.host, args.port), backlog=128)
    out_fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    stopping = [False]

    def stop(_signum: int, _frame: object) -> None:
        stopping[0] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.ready_file is not None:
        ports = {"pid": os.getpid(), "log_tcp": listener.getsockname()[1]}
        tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
        tmp.write_text(json.dumps(ports))
        tmp.replace(args.ready_file)
    try:
        serve(listener, out_fd, stopping)
    finally:
        listener.close()
        os.close(out_fd)


if __name__ == "__main__":
    main()
