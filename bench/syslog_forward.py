"""Syslog forwarding figures: the formatter's cost and the destination's rate into a real rsyslogd.

    .venv/bin/python bench/syslog_forward.py [--records 20000] [--batch 1000]

Prints, for stored lines made by the store's own encoder: microseconds of
CPU per record to format (RFC 5424 + octet counting), and sending them
through :class:`~netlog.forward.syslog.SyslogDestination` over TCP to a
real rsyslogd on 127.0.0.1 (the tests' harness): records/s until ``send``
returned (drained to the kernel), the sender's CPU per record, and
records/s until rsyslog had written all of them to its file.  Bounded: one
pass, rsyslog stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

from rsyslogd import Rsyslogd  # noqa: E402

from netlog.forward.rfc5424 import Rfc5424, octet_counted  # noqa: E402
from netlog.forward.syslog import SyslogDestination  # noqa: E402
from netlog.record import Record, new_id  # noqa: E402
from netlog.sinks.encode import encode_line  # noqa: E402

#: Seconds to wait for rsyslog to write everything.
WRITE_LIMIT = 120.0


class Line(NamedTuple):
    id: str
    line: bytes


def lines(count: int) -> list[Line]:
    now = time.time()
    made = []
    for n in range(count):
        record = Record(
            now,
            now,
            "info",
            "shop.orders",
            f"order {n} paid",
            {"order": n, "user": "ann", "tags": ["a", "b"]},
            None,
            "127.0.0.1:40000",
            "json",
            new_id(now),
        )
        made.append(Line(record.id, encode_line(record).rstrip(b"\n")))
    return made


def format_cost(stored: list[Line]) -> float:
    formatter = Rfc5424("bench-host")
    started = time.process_time()
    for item in stored:
        octet_counted(formatter.message(orjson.loads(item.line)))
    return (time.process_time() - started) / len(stored) * 1e6


async def send(destination: SyslogDestination, stored: list[Line], batch: int) -> None:
    try:
        for start in range(0, len(stored), batch):
            await destination.send(stored[start : start + batch])
    finally:
        await destination.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    stored = lines(args.records)
    print(f"format: {format_cost(stored):.1f} us CPU per record")
    with tempfile.TemporaryDirectory() as tmp:
        server = Rsyslogd(Path(tmp)).start()
        try:
            destination = SyslogDestination(f"tcp://127.0.0.1:{server.port}")
            cpu, wall = time.process_time(), time.perf_counter()
            asyncio.run(send(destination, stored, args.batch))
            sent_wall, sent_cpu = time.perf_counter() - wall, time.process_time() - cpu
            deadline = time.monotonic() + WRITE_LIMIT
            while len(server.messages()) < args.records and time.monotonic() < deadline:
                time.sleep(0.05)
            written_wall = time.perf_counter() - wall
            written = len(server.messages())
        finally:
            server.stop()
            server.kill()
    print(
        f"tcp send: {args.records / sent_wall:,.0f} records/s drained to the kernel, "
        f"{sent_cpu / args.records * 1e6:.1f} us CPU per record (batches of {args.batch})"
    )
    print(f"rsyslog wrote {written}/{args.records}: {written / written_wall:,.0f} records/s")


if __name__ == "__main__":
    main()
