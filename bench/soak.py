"""Soak test (issue 6, scenario 28): steady load for minutes, zero loss, flat memory.

Not part of CI.  Starts a real ``python -m servers`` on 127.0.0.1 with
ephemeral ports (``harness.start_server``, unpinned), then 100
connections send sequence-numbered SocketHandler frames at 5,000 records/s
in total for 5 minutes, paced against the clock.  Every ``--sample`` seconds
it records the sink's RSS and CPU and how many lines are on disk.  At the end
it sends SIGTERM and checks, over ``records.jsonl`` and its rotated files,
that every connection's records are exactly 0..n-1: no loss, no duplicate.

    .venv/bin/python bench/soak.py                       # 5 minutes
    .venv/bin/python bench/soak.py --seconds 30          # a quick look

One JSON object is printed at the end (and written to ``--out``); exit
status 0 only if nothing was lost, duplicated or torn and RSS stayed flat.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import harness
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netlog.store.writer import rotated_paths  # noqa: E402 - after the path set-up

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: RSS may rise this much between the first sample after warm-up and the last.
FLAT_KIB = 8 * 1024


def make_frame(conn: int, seq: int) -> bytes:
    """What a real SocketHandler sends for an ordinary application record."""
    record = logging.makeLogRecord(
        {
            "name": "soak.app",
            "msg": "request handled",
            "levelname": "INFO",
            "levelno": logging.INFO,
            "pathname": "/srv/app/handlers.py",
            "lineno": 42,
            "funcName": "handle",
        }
    )
    record.conn = conn
    record.seq = seq
    record.path = "/api/items"
    record.status = 200
    return logging.handlers.SocketHandler("127.0.0.1", 1).makePickle(record)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class LineCounter:
    """Counts complete lines in the log dir incrementally, across rotations."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def count(self) -> int:
        total = 0
        for path in rotated_paths(self.directory):
            try:
                with path.open("rb") as handle:
                    total += sum(
                        chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")
                    )
            except FileNotFoundError:
                continue  # rotated away between the listing and the open
        return total


class SenderGroup(threading.Thread):
    """A thread that paces its share of the connections against the clock."""

    def __init__(self, address, conns: list[int], per_conn_rate: float, until: float) -> None:
        super().__init__(daemon=True)
        self.socks = {conn: socket.create_connection(address, timeout=30) for conn in conns}
        self.interval = 1.0 / per_conn_rate
        self.until = until
        self.sent = dict.fromkeys(conns, 0)
        self.error: str | None = None

    def run(self) -> None:
        started = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                if now >= self.until:
                    break
                due = int((now - started) / self.interval) + 1
                for conn, sock in self.socks.items():
                    seq = self.sent[conn]
                    if seq < due:
                        sock.sendall(b"".join(make_frame(conn, s) for s in range(seq, due)))
                        self.sent[conn] = due
                time.sleep(max(0.0, started + due * self.interval - time.monotonic()))
        except OSError as exc:
            self.error = repr(exc)

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()


def verify(directory: Path, sent: dict[int, int]) -> dict:
    """Check every connection's records are exactly 0..n-1; counts of problems."""
    seen: dict[int, list[int]] = {conn: [] for conn in sent}
    torn = 0
    for path in rotated_paths(directory):
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            torn += 1
        for line in data.split(b"\n"):
            if not line:
                continue
            fields = orjson.loads(line)["fields"]
            seen.setdefault(fields["conn"], []).append(fields["seq"])
    lost = duplicated = out_of_order = 0
    for conn, count in sent.items():
        seqs = seen.get(conn, [])
        unique = set(seqs)
        duplicated += len(seqs) - len(unique)
        lost += count - len(unique & set(range(count)))
        out_of_order += int(seqs != sorted(seqs))
    return {
        "lost": lost,
        "duplicated": duplicated,
        "connections_out_of_order": out_of_order,
        "torn_files": torn,
        "files": len(rotated_paths(directory)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5000.0, help="records/s, all connections")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=30.0, help="RSS baseline taken after this")
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    parser.add_argument("--out", type=Path, help="also write the result here")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="netlog-soak-"))
    server = harness.start_server(
        "netlog",
        workdir,
        (
            "--echo-port", "-1",
            "--responder-port", "-1",
            "--log-udp-port", "-1",
            "--flush-interval", "1",
            "--backups", "100",
            "--max-connections", str(args.connections + 10),
        ),
        pinned=False,
    )  # fmt: skip
    assert server.out is not None
    log_dir = server.out.parent
    address = (harness.HOST, server.ports["log_tcp"])
    conns = list(range(args.connections))
    begin = time.monotonic()
    until = begin + args.seconds
    per_conn = args.rate / args.connections
    groups = [
        SenderGroup(address, conns[i :: args.threads], per_conn, until) for i in range(args.threads)
    ]
    counter = LineCounter(log_dir)
    samples = []
    cpu_before = cpu_seconds(server.pid)
    for group in groups:
        group.start()
    try:
        next_sample = begin
        while any(group.is_alive() for group in groups):
            now = time.monotonic()
            if now >= next_sample:
                sent = sum(sum(g.sent.values()) for g in groups)
                samples.append(
                    {
                        "t": round(now - begin, 1),
                        "rss_kib": rss_kib(server.pid),
                        "cpu_s": round(cpu_seconds(server.pid) - cpu_before, 2),
                        "sent": sent,
                        "on_disk": counter.count(),
                    }
                )
                print(json.dumps(samples[-1]), flush=True)
                next_sample += args.sample
            time.sleep(0.2)
        for group in groups:
            group.join()
        took = time.monotonic() - begin
        sent_by_conn = {conn: n for group in groups for conn, n in group.sent.items()}
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        status = server.proc.wait(timeout=60)
        exit_seconds = time.monotonic() - signalled
    finally:
        for group in groups:
            group.close()
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=10)
    total = sum(sent_by_conn.values())
    check = verify(log_dir, sent_by_conn)
    after_warmup = [s for s in samples if s["t"] >= args.warmup] or samples
    rss_growth = after_warmup[-1]["rss_kib"] - after_warmup[0]["rss_kib"]
    result = {
        "rate_target": args.rate,
        "rate_achieved": round(total / took, 1),
        "connections": args.connections,
        "seconds": round(took, 1),
        "records_sent": total,
        **check,
        "rss_start_mib": round(samples[0]["rss_kib"] / 1024, 1),
        "rss_after_warmup_mib": round(after_warmup[0]["rss_kib"] / 1024, 1),
        "rss_end_mib": round(samples[-1]["rss_kib"] / 1024, 1),
        "rss_max_mib": round(max(s["rss_kib"] for s in samples) / 1024, 1),
        "rss_growth_after_warmup_kib": rss_growth,
        "server_cpu_percent": round(100 * samples[-1]["cpu_s"] / max(samples[-1]["t"], 1e-9), 1),
        "exit_status": status,
        "exit_seconds": round(exit_seconds, 2),
        "sender_errors": [g.error for g in groups if g.error],
        "summary_line": harness.last_line(workdir / "stderr.txt"),
        "workdir": str(workdir),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"samples": samples, "result": result}, indent=2))
    ok = (
        status == 0
        and check["lost"] == 0
        and check["duplicated"] == 0
        and check["torn_files"] == 0
        and not result["sender_errors"]
        and rss_growth < FLAT_KIB
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
