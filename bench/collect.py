"""How fast ``netlog collect`` drains a backlog from JetStream into its store.

A real nats-server (one node, R1; or three, R3), N records published first
as a forwarder publishes them (the stored line, ``Nats-Msg-Id`` = its id),
then one collector started: the time until all N are in its store, and the
collector's CPU per record.  This is the rate that bounds the id memory's
reach (netlog/forward/collector.py: MAX_ACK_PENDING + rate x ack_wait).

    python3 bench/collect.py 20000 1     # records, nodes
    python3 bench/collect.py 20000 3
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "integration"), str(ROOT)]

from collectproc import make_records, publish, start_collect  # noqa: E402
from natscluster import NatsCluster  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lines(log_dir: Path) -> int:
    """Complete lines in the store's current file."""
    path = log_dir / "records.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    nodes = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with tempfile.TemporaryDirectory() as work, NatsCluster(Path(work) / "nats", nodes) as cluster:
        items = make_records("bench", count)
        started = time.perf_counter()
        publish(cluster.urls, items, replicas=nodes)
        published = time.perf_counter() - started
        collector = start_collect(Path(work) / "collect", cluster.urls, "--max-bytes", "1GB")
        try:
            cpu0 = cpu_seconds(collector.pid)
            started = time.perf_counter()
            deadline = started + 600
            while lines(collector.log_dir) < count and time.perf_counter() < deadline:
                time.sleep(0.02)
            took = time.perf_counter() - started
            cpu = cpu_seconds(collector.pid) - cpu0
        finally:
            collector.finish()
        done = lines(collector.log_dir)
        print(
            f"R{nodes}: {done}/{count} records collected in {took:.2f}s "
            f"= {done / took:,.0f} rec/s; "
            f"collector CPU {cpu * 1e6 / max(done, 1):.0f} us/record; "
            f"(publishing them with acks, one at a time: {count / published:,.0f} rec/s)"
        )


if __name__ == "__main__":
    main()
