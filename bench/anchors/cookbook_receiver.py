"""The logging cookbook's socket receiver, as the anchor for netlog's SocketHandler ingest.

This is the ``LogRecordStreamHandler`` / ``LogRecordSocketReceiver`` pair from
the Python Logging Cookbook ("Sending and receiving logging events across a
network"), with two changes:

* it reads with ``self.rfile.read(n)`` instead of ``self.connection.recv(4)``:
  ``recv(4)`` may return fewer than 4 bytes when a length prefix straddles two
  TCP segments, and the cookbook then stops reading the connection, losing
  every record after it;
* records go to a JSON-lines file (the same keys netlog writes) instead of
  ``basicConfig``'s stderr, so the two sinks do comparable work.

    python bench/anchors/cookbook_receiver.py --port 0 --out records.jsonl --ready-file FILE

The ready file gets ``{"pid", "log_tcp"}``; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import pickle
import select
import signal
import socketserver
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: Attributes every LogRecord has; anything else came from ``extra=``.
STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "peer"}


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record, with netlog's keys."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": rfc3339(record.created),
            "received": rfc3339(datetime.now(UTC).timestamp()),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "fields": {k: v for k, v in record.__dict__.items() if k not in STANDARD},
        }
        if record.exc_text:
            out["exc"] = record.exc_text
        out["peer"] = getattr(record, "peer", "")
        out["format"] = "pickle"
        return json.dumps(out, default=str, ensure_ascii=False)


class LogRecordStreamHandler(socketserver.StreamRequestHandler):
    """Handler for a streaming logging request (the cookbook's, reading with rfile)."""

    def handle(self) -> None:
        """Handle 4-byte-length-prefixed pickled LogRecord dicts until EOF."""
        peer = "{}:{}".format(*self.client_address[:2])
        while True:
            chunk = self.rfile.read(4)
            if len(chunk) < 4:
                break
            slen = struct.unpack(">L", chunk)[0]
            chunk = self.rfile.read(slen)
            if len(chunk) < slen:
                break
            obj = self.unPickle(chunk)
            record = logging.makeLogRecord(obj)
            record.peer = peer
            self.handleLogRecord(record)

    def unPickle(self, data: bytes) -> Any:  # noqa: N802 - the cookbook's name
        return pickle.loads(data)

    def handleLogRecord(self, record: logging.LogRecord) -> None:  # noqa: N802 - same
        # if a name is specified, we use the named logger rather than the one
        # implied by the record.
        name = self.server.logname if self.server.logname is not None else record.name  # type: ignore[attr-defined]
        logger = logging.getLogger(name)
        # N.B. EVERY record gets logged. This is because Logger.handle
        # is normally called AFTER logger-level filtering.
        logger.handle(record)


class LogRecordSocketReceiver(socketserver.ThreadingTCPServer):
    """Simple TCP socket-based logging receiver suitable for testing."""

    allow_reuse_address = True

    def __init__(
        self,
        host: str = "localhost",
        port: int = logging.handlers.DEFAULT_TCP_LOGGING_PORT,
        handler: type[socketserver.BaseRequestHandler] = LogRecordStreamHandler,
    ) -> None:
        socketserver.ThreadingTCPServer.__init__(self, (host, port), handler)
        self.abort = 0
        self.timeout = 1
        self.logname = None

    def serve_until_stopped(self) -> None:
        abort = 0
        while not abort:
            rd, _wr, _ex = select.select([self.socket.fileno()], [], [], self.timeout)
            if rd:
                self.handle_request()
            abort = self.abort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()

    handler = logging.FileHandler(args.out, encoding="utf-8")
    handler.setFormatter(JsonLinesFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)

    tcpserver = LogRecordSocketReceiver(args.host, args.port)

    def stop(_signum: int, _frame: object) -> None:
        tcpserver.abort = 1

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.ready_file is not None:
        ports = {"pid": os.getpid(), "log_tcp": tcpserver.server_address[1]}
        tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
        tmp.write_text(json.dumps(ports))
        tmp.replace(args.ready_file)
    tcpserver.serve_until_stopped()
    tcpserver.server_close()
    logging.shutdown()


if __name__ == "__main__":
    main()
