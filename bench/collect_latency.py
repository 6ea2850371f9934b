"""End-to-end latency: a record's receipt at a host to its line in the collector's store.

A real nats-server, one ``netlog serve --nats`` (the host, default flush
interval) and one ``netlog collect``; records are sent to the host's TCP
port at a steady rate, and the collector's ``records.jsonl`` is tailed
every 5 ms: each new line's latency is the time it was seen minus its
``received`` (the host's clock, the same machine).  Prints the median and
p99 after a warm-up.

    python3 bench/collect_latency.py 5000 20     # records/s, seconds
"""

from __future__ import annotations

import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "integration"), str(ROOT)]

from collectproc import start_collect  # noqa: E402
from natscluster import NatsCluster  # noqa: E402

from netlog.decode.normalize import parse_timestamp  # noqa: E402
from netlogproc import start  # noqa: E402

WARM_UP = 3.0
CHUNK = 0.05


def send(address: tuple[str, int], rate: int, seconds: float) -> int:
    """JSON lines at ``rate``/s for ``seconds``, in 50 ms chunks; the count sent."""
    per_chunk = max(1, int(rate * CHUNK))
    sent = 0
    with socket.create_connection(address, timeout=10) as sock:
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            body = b"".join(
                json.dumps({"event": f"r {sent + i}"}).encode() + b"\n" for i in range(per_chunk)
            )
            sock.sendall(body)
            sent += per_chunk
            pause = began + (sent / per_chunk) * CHUNK - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    return sent


def tail(path: Path, latencies: list[float], stop: threading.Event) -> None:
    """Stamp each new complete line of ``path`` with when it was seen."""
    position = 0
    rest = b""
    while not stop.is_set():
        if path.exists():
            with path.open("rb") as handle:
                handle.seek(position)
                data = handle.read()
            now = time.time()
            position += len(data)
            parts = (rest + data).split(b"\n")
            rest = parts.pop()
            for line in parts:
                received = parse_timestamp(json.loads(line)["received"])
                if received is not None:
                    latencies.append(now - received)
        time.sleep(0.005)


def main() -> None:
    rate = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    with tempfile.TemporaryDirectory() as work, NatsCluster(Path(work) / "nats", 1) as cluster:
        host = start(
            Path(work) / "host", "--nats", cluster.urls, "--forward-host", "h1", measured=False
        )
        collector = start_collect(Path(work) / "collect", cluster.urls)
        latencies: list[float] = []
        stop = threading.Event()
        tailer = threading.Thread(
            target=tail, args=(collector.log_dir / "records.jsonl", latencies, stop)
        )
        tailer.start()
        try:
            sent = send(host.address("log_tcp"), rate, seconds)
            deadline = time.monotonic() + 60
            while len(latencies) < sent and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            stop.set()
            tailer.join()
            collector.finish()
            host.finish()
        skip = int(rate * WARM_UP)
        steady = sorted(latencies[skip:])
        p99 = steady[int(len(steady) * 0.99)] if steady else float("nan")
        print(
            f"{rate} rec/s for {seconds:g}s: {len(latencies)}/{sent} at the collector; "
            f"after {WARM_UP:g}s warm-up: median {statistics.median(steady) * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
