"""The ingest driver: N senders push pre-built log records at a sink, as fast as TCP allows.

Everything is built before the clock starts: each sender gets one bytes
object holding its share of the records (``SocketHandler.makePickle`` frames,
or structlog-``JSONRenderer``-like lines), and sending is one ``sendall`` of
it, which spends its time in the kernel with the GIL released.  So the
client core is mostly idle and the sink is what is measured.

Modes:

* ``throughput``: the clock runs from the senders' start until ``--out``
  holds ``--records`` lines (read incrementally, polled every 2 ms).
  Senders close their connections once everything is sent.
* ``drain``: right after the last ``sendall`` returns, SIGTERM goes to
  ``--pid``; the driver prints the moment it sent it (``CLOCK_MONOTONIC``,
  so the harness, which waits for the sink to exit, can subtract).  Senders
  keep their connections open, like a running application's SocketHandler,
  until the sink closes them.

One JSON line on stdout: counts, times and the driver's own CPU time.
Bounded: ``--timeout`` seconds at most for every wait.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import resource
import signal
import socket
import sys
import threading
import time
from pathlib import Path

LEVELS = (logging.DEBUG, logging.INFO, logging.INFO, logging.INFO, logging.WARNING, logging.ERROR)
LOGGERS = ("app.http", "app.db", "app.auth", "worker.jobs")


def pickle_frames(count: int, start: int) -> bytes:
    """``count`` SocketHandler frames, as ``SocketHandler.emit`` would send them."""
    handler = logging.handlers.SocketHandler("127.0.0.1", 0)  # never connects
    frames = []
    for i in range(start, start + count):
        record = logging.LogRecord(
            name=LOGGERS[i % len(LOGGERS)],
            level=LEVELS[i % len(LEVELS)],
            pathname="/srv/app/handlers.py",
            lineno=42 + i % 100,
            msg="request %s handled in %.1f ms for user %s",
            args=(f"GET /api/items/{i}", (i % 1000) / 10, f"user{i % 317}"),
            exc_info=None,
            func="handle",
        )
        record.request_id = f"{i:016x}"
        record.status = 200 if i % 13 else 500
        frames.append(handler.makePickle(record))
    handler.close()
    return b"".join(frames)


def json_lines(count: int, start: int) -> bytes:
    """``count`` lines like structlog's ``JSONRenderer`` output, newline-terminated."""
    t0 = time.time()
    lines = []
    for i in range(start, start + count):
        event = {
            "event": f"request GET /api/items/{i} handled",
            "duration_ms": (i % 1000) / 10,
            "user": f"user{i % 317}",
            "request_id": f"{i:016x}",
            "status": 200 if i % 13 else 500,
            "logger": LOGGERS[i % len(LOGGERS)],
            "level": logging.getLevelName(LEVELS[i % len(LEVELS)]).lower(),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0)) + f".{i % 10**6:06d}Z",
        }
        lines.append(json.dumps(event))
    return ("\n".join(lines) + "\n").encode()


class LineCounter:
    """Counts newlines in a growing file, reading only what was appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = 0
        self._fd: int | None = None

    def poll(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return self.lines
        while True:
            chunk = os.read(self._fd, 1 << 20)
            if not chunk:
                return self.lines
            self.lines += chunk.count(b"\n")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--format", choices=["pickle", "json"], required=True)
    parser.add_argument("--records", type=int, required=True, help="total, over all senders")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--mode", choices=["throughput", "drain"], default="throughput")
    parser.add_argument("--out", type=Path, help="the sink's JSONL file (throughput mode)")
    parser.add_argument("--pid", type=int, help="the sink's pid (drain mode)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument(
        "--handshake",
        action="store_true",
        help="once built and connected, print 'ready' and wait for a line on stdin",
    )
    args = parser.parse_args()
    if args.mode == "throughput" and args.out is None:
        parser.error("--out is needed in throughput mode")
    if args.mode == "drain" and args.pid is None:
        parser.error("--pid is needed in drain mode")

    build = pickle_frames if args.format == "pickle" else json_lines
    share, extra = divmod(args.records, args.senders)
    counts = [share + (1 if k < extra else 0) for k in range(args.senders)]
    starts = [sum(counts[:k]) for k in range(args.senders)]
    blobs = [build(n, s) for n, s in zip(counts, starts, strict=True)]

    socks = []
    for _ in range(args.senders):
        sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
        socks.append(sock)
    barrier = threading.Barrier(args.senders + 1)
    sent_at = [0.0] * args.senders
    errors: list[str] = []

    def send(k: int) -> None:
        barrier.wait()
        try:
            socks[k].sendall(blobs[k])
            sent_at[k] = time.monotonic()
            if args.mode == "throughput":
                socks[k].close()
        except OSError as exc:
            errors.append(f"sender {k}: {exc}")

    if args.handshake:
        print("ready", flush=True)
        sys.stdin.readline()
    threads = [threading.Thread(target=send, args=(k,)) for k in range(args.senders)]
    for thread in threads:
        thread.start()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    barrier.wait()
    deadline = start + args.timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    sent = max(sent_at) if all(sent_at) else None
    result: dict[str, object] = {
        "mode": args.mode,
        "format": args.format,
        "records": args.records,
        "bytes": sum(map(len, blobs)),
        "send_seconds": None if sent is None else sent - start,
        "errors": errors,
    }

    if args.mode == "drain":
        signalled = time.monotonic()
        os.kill(args.pid, signal.SIGTERM)
        result["signal_at"] = signalled
        # Hold the connections like live applications until the sink closes them.
        for sock in socks:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                while sock.recv(65536):
                    pass
            except OSError:
                pass
            sock.close()
    else:
        counter = LineCounter(args.out)
        lines = counter.poll()
        while lines < args.records and time.monotonic() < deadline:
            time.sleep(0.002)
            lines = counter.poll()
        done = time.monotonic()
        counter.close()
        result["lines"] = lines
        result["seconds"] = done - start
        result["timed_out"] = lines < args.records

    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_user"] = cpu1.ru_utime - cpu0.ru_utime
    result["cpu_sys"] = cpu1.ru_stime - cpu0.ru_stime
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
