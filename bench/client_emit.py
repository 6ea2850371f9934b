"""Cost of ``logger.info()`` in the application: SinkHandler vs the stdlib SocketHandler.

Two situations, measured side by side in one run:

- sink up: a real ``netlog serve`` on 127.0.0.1 (console off);
- sink down: a black-holed address on 127.0.0.1 (a listener whose accept
  queue is full, so connection attempts hang until their timeout, as they do
  for a host that drops packets).

Reports the mean and worst single ``emit`` per handler and their ratio.
Usage: ``.venv/bin/python bench/client_emit.py [--records N] [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import logging.handlers
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netlog.client import SinkHandler  # noqa: E402
from netlog.settings import PORT_FLAGS  # noqa: E402


def start_sink(workdir: Path) -> tuple[subprocess.Popen, int]:
    ready = workdir / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "servers",
            "--host",
            "127.0.0.1",
            *[arg for flag in PORT_FLAGS for arg in (flag, "-1")],
            "--log-tcp-port",
            "0",
            "--log-dir",
            str(workdir / "data"),
            "--console",
            "off",
            "--ready-file",
            str(ready),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if ready.exists():
            return proc, json.loads(ready.read_text())["log_tcp"]
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("sink did not start")


def black_hole() -> tuple[socket.socket, list[socket.socket], int]:
    """A 127.0.0.1 port whose accept queue is full: new SYNs are dropped."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)  # noqa: FBT003 - the stdlib's own signature
        with contextlib.suppress(BlockingIOError):
            s.connect(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.2)
    return listener, fillers, port


def measure(handler: logging.Handler, count: int) -> dict[str, float]:
    logger = logging.Logger("bench", logging.INFO)  # noqa: LOG001 - private, unregistered
    logger.addHandler(handler)
    times = []
    clock = time.perf_counter
    for i in range(count):
        t0 = clock()
        logger.info("request %d handled", i, extra={"user": "ada", "status": 200})
        times.append(clock() - t0)
    started = clock()
    handler.close()
    close_time = clock() - started
    return {
        "mean_us": statistics.fmean(times) * 1e6,
        "p99_us": sorted(times)[int(len(times) * 0.99)] * 1e6,
        "max_ms": max(times) * 1e3,
        "close_s": close_time,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few records")
    args = parser.parse_args()
    count = 500 if args.quick else args.records
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_sink(Path(tmp))
        try:
            runs: dict[str, list[dict[str, float]]] = {}
            for _ in range(1 if args.quick else 3):  # A B A B A B, the median run kept
                runs.setdefault("up/SocketHandler", []).append(
                    measure(logging.handlers.SocketHandler("127.0.0.1", port), count)
                )
                runs.setdefault("up/SinkHandler", []).append(
                    measure(SinkHandler("127.0.0.1", port), count)
                )
            for key, rs in runs.items():
                results[key] = sorted(rs, key=lambda r: r["mean_us"])[len(rs) // 2]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    listener, fillers, port = black_hole()
    try:
        down_count = min(count, 2000)
        results["down/SocketHandler"] = measure(
            logging.handlers.SocketHandler("127.0.0.1", port), down_count
        )
        sink = SinkHandler("127.0.0.1", port, close_timeout=0.5, warn_undelivered=False)
        results["down/SinkHandler"] = measure(sink, down_count)
    finally:
        for s in [listener, *fillers]:
            s.close()
    print(f"{'situation':<22}{'mean µs':>10}{'p99 µs':>10}{'max ms':>10}{'close s':>10}")
    for key, r in results.items():
        print(
            f"{key:<22}{r['mean_us']:>10.2f}{r['p99_us']:>10.2f}{r['max_ms']:>10.2f}{r['close_s']:>10.2f}"
        )
    up = results["up/SocketHandler"]["mean_us"] / results["up/SinkHandler"]["mean_us"]
    down = results["down/SocketHandler"]["mean_us"] / results["down/SinkHandler"]["mean_us"]
    print(f"sink up:   SinkHandler is {up:.2f}x the speed of SocketHandler per emit")
    print(
        f"sink down: SinkHandler is {down:.0f}x the speed of SocketHandler per emit; "
        f"worst emit {results['down/SinkHandler']['max_ms']:.2f} ms vs "
        f"{results['down/SocketHandler']['max_ms']:.0f} ms"
    )


if __name__ == "__main__":
    main()
