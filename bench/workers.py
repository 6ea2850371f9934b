"""``--workers 2`` against ``--workers 1``, side by side in one run, and the serial steps' cost.

Each repetition runs every workload with one worker and then with two, a
fresh server per trial (``bench/harness.py``'s workloads and clients: the
senders pre-render their frames, and their CPU is reported).  One worker runs
as the harness always runs netlog (pinned to one core, the clients on the
other); two workers may use both cores, and so may the clients: on a 2-core
machine they share the cores with the workers, which is what a user gets.

Then the cost per line of the steps that every record takes through one
place (the writer): cutting frames and lines, ``write_lines`` and the write
itself, and a worker's hand-over (frame + ``sendall`` + the writer's read),
measured in this process with real encoded lines; what they bound on 8 and
32 cores is printed with them.  Memory: 1,000 idle log connections per
worker, each process's RSS.

    python bench/workers.py [--reps 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import harness

from netlog.record import Record, new_id
from netlog.sinks.encode import encode_line
from netlog.sinks.handover import LINES, FrameBuffer, lines_frame, split_lines
from netlog.store.writer import JsonlFileSink

#: The harness's workloads, plus ingest from 32 senders: SO_REUSEPORT spreads
#: connections by a hash of their addresses, so 8 connections split 4/4 only
#: 27% of the time (6/2 or worse 29%), and the worker with the larger share
#: sets the pace; with 32 the split is closer to even.
WORKLOADS = (
    "ingest_json",
    "ingest_pickle",
    "ingest_json_32",
    "ingest_pickle_32",
    "echo_1k",
    "udp",
    "udp_8",
)
SPLIT = re.compile(r"records by worker: ([0-9:, ]+)")


def measure_ingest(fmt: str, senders: int) -> Callable[..., harness.Trial]:
    """The harness's ingest with ``senders`` connections; the workers' split in the note."""

    def measure(name: str, workdir: Path, p: harness.Params) -> harness.Trial:
        netlog_args = ("--flush-interval", harness.NETLOG_INGEST_FLUSH)
        with harness.serving(name, workdir, netlog_args) as server:
            assert server.out is not None
            command = harness.ingest(
                "--host", harness.HOST, "--port", server.ports["log_tcp"], "--format", fmt,
                "--records", p.ingest_records, "--senders", senders, "--out", server.out,
                "--timeout", p.timeout, "--handshake",
            )  # fmt: skip
            result = harness.run_client(command, p.timeout + 60, server, handshake=True)
        if result["timed_out"] or result["errors"]:
            return harness.Trial(None, note=f"{result['lines']} lines, {result['errors']}")
        split = SPLIT.search(server.stderr_text)
        return harness.Trial(
            p.ingest_records / result["seconds"],
            harness.cpu_fraction(result, result["seconds"]),
            result["server_share"],
            note=f"split {split.group(1)}" if split else "",
        )

    return measure


MEASURES = {
    "ingest_json": measure_ingest("json", 8),
    "ingest_pickle": measure_ingest("pickle", 8),
    "ingest_json_32": measure_ingest("json", 32),
    "ingest_pickle_32": measure_ingest("pickle", 32),
    "echo_1k": harness.BY_KEY["echo_1k"].measure,
    "udp": harness.BY_KEY["udp"].measure,
    # One client socket is one sender: SO_REUSEPORT sends all its datagrams to
    # one worker.  Eight are eight senders, as probes from a stack arrive.
    "udp_8": harness.measure_udp_from(8),
}
UNITS = {"echo_1k": "req/s", "udp": "replies/s", "udp_8": "replies/s"}


def trial(key: str, workers: int, workdir: Path, params: harness.Params) -> harness.Trial:
    harness.NETLOG_WORKERS = workers
    harness.PIN_CLIENTS = workers == 1
    try:
        return MEASURES[key]("netlog", workdir, params)
    finally:
        harness.NETLOG_WORKERS = 1
        harness.PIN_CLIENTS = True


def side_by_side(reps: int, params: harness.Params) -> dict[str, dict[int, list[harness.Trial]]]:
    results: dict[str, dict[int, list[harness.Trial]]] = {k: {1: [], 2: []} for k in WORKLOADS}
    with tempfile.TemporaryDirectory(prefix="netlog-workers-") as tmp:
        for rep in range(reps):
            for key in WORKLOADS:
                for workers in (1, 2):
                    harness.wait_quiet(params.quiet_wait)
                    workdir = Path(tmp) / f"{key}-w{workers}-{rep}"
                    result = trial(key, workers, workdir, params)
                    harness.log(f"{key} workers={workers} rep {rep}: {result.value} {result.note}")
                    results[key][workers].append(result)
    return results


def med(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def show(results: dict[str, dict[int, list[harness.Trial]]]) -> str:
    rows = [
        "| workload | 1 worker | 2 workers | 2 / 1 | server CPU (cores) 1 / 2 | client CPU 1 / 2 |",
        "|---|---|---|---|---|---|",
    ]
    for key, by in results.items():
        one, two = (med([t.value for t in by[w]]) for w in (1, 2))
        ratio = f"{two / one:.2f}x" if one and two else "n/a"
        cpu = [med([t.server_cpu for t in by[w]]) for w in (1, 2)]
        client = [med([t.client_cpu for t in by[w]]) for w in (1, 2)]
        unit = UNITS.get(key, "rec/s")
        splits = "; ".join(t.note.removeprefix("split ") for t in by[2] if t.note)
        name = f"{key} ({unit})" + (f", split {splits}" if splits else "")
        rows.append(
            f"| {name} | {harness.fmt(one)} | {harness.fmt(two)} | {ratio} | "
            f"{_f(cpu[0])} / {_f(cpu[1])} | {_f(client[0])} / {_f(client[1])} |"
        )
    return "\n".join(rows)


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


# -- the serial steps --------------------------------------------------------------


def sample_lines(count: int) -> list[bytes]:
    """Encoded lines like the ingest workload's (a structlog JSON line, ~300 bytes)."""
    now = time.time()
    lines = []
    for i in range(count):
        record = Record(
            now,
            now,
            "info",
            "app.http",
            f"request GET /api/items/{i} handled in {i % 1000 / 10:.1f} ms for user{i % 317}",
            {"request_id": f"{i:016x}", "status": 200, "user": f"user{i % 317}"},
            None,
            "127.0.0.1:40000",
            "json",
        )
        lines.append(encode_line(record, new_id(now)))
    return lines


def writer_cost(lines: list[bytes], batch: int) -> dict[str, float]:
    """ns per line of the writer's steps: cut frames and lines, write_lines, the write."""
    frames = b"".join(
        lines_frame(LINES, n, lines[start : start + batch])
        for n, start in enumerate(range(0, len(lines), batch))
    )
    count = len(lines)
    started = time.perf_counter()
    buffer = FrameBuffer()
    cut: list[tuple[bytes, list[bytes]]] = []
    for start in range(0, len(frames), 1 << 20):
        # As the writer does: the lines for the live feed, the batch whole for the file.
        cut.extend(
            (payload, split_lines(payload))
            for _, _, payload in buffer.feed(frames[start : start + (1 << 20)])
        )
    t_cut = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="netlog-writer-") as tmp:
        sink = JsonlFileSink(Path(tmp), max_bytes=1 << 40, backups=1)
        sink.open()
        started = time.perf_counter()
        for payload, batch_lines in cut:
            sink.write_chunk(payload, len(batch_lines))
        t_queue = time.perf_counter() - started
        started = time.perf_counter()
        sink.flush()
        t_write = time.perf_counter() - started
        sink.close()
    return {
        "cut frames and lines": t_cut / count * 1e9,
        "write_lines (queue)": t_queue / count * 1e9,
        "flush (write(2))": t_write / count * 1e9,
    }


def handover_cost(lines: list[bytes], batch: int) -> dict[str, float]:
    """ns per line of a worker's hand-over: frame + ``sendall``, and the writer's ``recv``."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    batches = [lines[start : start + batch] for start in range(0, len(lines), batch)]
    total = sum(map(len, lines)) + 13 * len(batches)
    reader_cpu = [0.0]

    def drain() -> None:
        cpu = time.thread_time()
        got = 0
        while got < total:
            data = theirs.recv(1 << 20)
            if not data:
                break
            got += len(data)
        reader_cpu[0] = time.thread_time() - cpu

    reader = threading.Thread(target=drain)
    reader.start()
    cpu = time.thread_time()
    for n, chunk in enumerate(batches):
        mine.sendall(lines_frame(LINES, n, chunk))
    sender = time.thread_time() - cpu
    reader.join(60)
    mine.close()
    theirs.close()
    return {
        "hand-over in the worker (frame, sendall)": sender / len(lines) * 1e9,
        "hand-over in the writer (recv)": reader_cpu[0] / len(lines) * 1e9,
    }


def idle_memory(conns: int) -> str:
    """RSS of the writer and each worker with ``conns`` idle log connections per worker."""
    with tempfile.TemporaryDirectory(prefix="netlog-idle-") as tmp:
        harness.NETLOG_WORKERS = 2
        try:
            server = harness.start_server("netlog", Path(tmp) / "w2")
        finally:
            harness.NETLOG_WORKERS = 1
        try:
            time.sleep(0.5)
            before = _rss_all(server.pid)
            sockets = []
            for _ in range(conns * 2):
                sock = socket.create_connection((harness.HOST, server.ports["log_tcp"]), timeout=10)
                sock.sendall(b'{"event": "hello"}\n')
                sockets.append(sock)
            time.sleep(1.0)
            after = _rss_all(server.pid)
            for sock in sockets:
                sock.close()
        finally:
            harness.stop_server(server)
    return (
        f"RSS MiB before -> with {conns} idle log connections per worker "
        f"(x2 workers): "
        + ", ".join(f"{name} {before[name]:.1f} -> {after.get(name, 0):.1f}" for name in before)
    )


def _rss_all(pid: int) -> dict[str, float]:
    out = {"writer": _rss(pid)}
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for n, child in enumerate(children, 1):
        out[f"worker {n}"] = _rss(int(child))
    return out


def _rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-side-by-side", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    params = harness.QUICK if args.quick else harness.FULL
    out = []
    if not args.skip_side_by_side:
        results = side_by_side(1 if args.quick else args.reps, params)
        out.append(show(results))
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        k: {w: [t.__dict__ for t in ts] for w, ts in v.items()}
                        for k, v in results.items()
                    },
                    indent=1,
                )
            )
    lines = sample_lines(50_000 if args.quick else 400_000)
    batch = 256 * 1024 // (sum(map(len, lines[:100])) // 100)
    # The best of three: the first run also pays for the allocator's first
    # page faults, and the machine is shared.
    runs = [{**writer_cost(lines, batch), **handover_cost(lines, batch)} for _ in range(3)]
    costs = {key: min(run[key] for run in runs) for key in runs[0]}
    serial = sum(v for k, v in costs.items() if "in the worker" not in k)
    out.append(
        f"per line ({sum(map(len, lines)) // len(lines)} B, batches of {batch}): "
        + ", ".join(f"{k} {v:.0f} ns" for k, v in costs.items())
    )
    out.append(
        f"the writer's serial work: about {serial:.0f} ns/line, so one writer core "
        f"bounds ingest near {1e9 / serial:,.0f} lines/s whatever the workers"
    )
    out.append(idle_memory(50 if args.quick else 1000))
    print("\n\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
