"""History search, measured: ``netlog query``'s engine against ``netlog tail -n 100 --grep``.

Builds a store of N records (JSONL written directly, not through a server:
generation must not be the bottleneck) rotated into 100 MiB files the way
the server rotates them, then times, on the same files, side by side:

* a text search (a word present in 1 record in 1000), first page;
* a ``key=value`` search (``user=u4242``), first page;
* the histogram of the whole range by level (60 buckets);
* the facet ``logger`` (top 10);
* ``netlog tail -n 100 --grep WORD`` (today's way), same word.

    .venv/bin/python bench/query.py 1000000            # 1M records
    .venv/bin/python bench/query.py 1000000,3000000 --keep /tmp/stores

Each timing is the median of ``--reps`` runs in a fresh process per tool
run (the engine's first query in a process pays DuckDB's start, which is
what a CLI user pays; the server keeps its engine, see ``--warm``).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import orjson

ROOT: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netlog.record import new_id  # noqa: E402 - after the path fix
from netlog.sinks.encode import format_time  # noqa: E402
from netlog.store.writer import backup_name  # noqa: E402

ROTATE_BYTES: Final = 100 << 20
LOGGERS: Final = ("app", "app.db", "app.http", "worker", "worker.jobs", "auth", "billing")
LEVELS: Final = ("debug", "info", "info", "info", "info", "warning", "error")
MESSAGES: Final = (
    "GET /api/items/{n} 200 in {ms}ms",
    "POST /api/orders 201 in {ms}ms",
    "cache miss for key items:{n}",
    "job {n} finished in {ms}ms",
    "slow query on items: {ms}ms",
    "user {n} logged in",
)
#: The word the text search looks for: in one record of every RARE.
RARE_WORD: Final = "kaboomtimeout"
RARE: Final = 1000
#: A word in one record of every RAREST: tail --grep must read every file for 100 of them.
RAREST_WORD: Final = "zebracorn"
RAREST: Final = 100_000


def generate(log_dir: Path, count: int, span: float = 7 * 86400.0) -> None:
    """Write ``count`` records received over the last ``span`` seconds into ``log_dir``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(16)
    start = time.time() - span
    step = span / count
    seq = 1
    out = (log_dir / "records.jsonl").open("wb")
    size = 0
    chunk: list[bytes] = []
    for i in range(count):
        received = start + i * step
        n = rng.randrange(100_000)
        ms = rng.randrange(1, 900)
        message = MESSAGES[i % len(MESSAGES)].format(n=n, ms=ms)
        obj: dict[str, object] = {
            "ts": format_time(received - 0.001),
            "received": format_time(received),
            "level": LEVELS[rng.randrange(len(LEVELS))],
            "logger": LOGGERS[rng.randrange(len(LOGGERS))],
            "message": message if i % RARE else f"{message} {RARE_WORD} after 30s",
            "fields": {
                "user": f"u{n % 10000}",
                "status": 200 if i % 17 else 500,
                "duration_ms": ms,
                "request_id": f"{rng.getrandbits(64):016x}",
                "path": f"/api/items/{n}",
            },
            "peer": f"10.0.{n % 256}.{i % 256}:{40000 + n % 20000}",
            "format": "json",
        }
        if i % RAREST == RAREST // 2:
            obj["fields"]["note"] = f"{RAREST_WORD} sighted"  # type: ignore[index]
        if i % 97 == 0:
            obj["exc"] = 'Traceback (most recent call last):\n  File "app.py", line 12\nValueError'
        obj["id"] = new_id(received)
        line = orjson.dumps(obj) + b"\n"
        chunk.append(line)
        size += len(line)
        if len(chunk) >= 4096:
            out.write(b"".join(chunk))
            chunk.clear()
        if size >= ROTATE_BYTES:
            out.write(b"".join(chunk))
            chunk.clear()
            out.close()
            (log_dir / "records.jsonl").rename(log_dir / backup_name(seq))
            seq += 1
            out = (log_dir / "records.jsonl").open("wb")
            size = 0
    out.write(b"".join(chunk))
    out.close()


def timed(command: list[str], reps: int) -> tuple[float, str]:
    """Median wall seconds of ``command`` over ``reps`` runs, and its last output's head."""
    times = []
    output = ""
    for _ in range(reps):
        begin = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=True, text=True)
        times.append(time.perf_counter() - begin)
        output = done.stdout
    return statistics.median(times), output


def warm(log_dir: Path, reps: int) -> dict[str, float]:
    """The same queries on one engine kept open, as the server runs them."""
    from netlog.query.engine import Engine  # noqa: PLC0415

    engine = Engine(log_dir)
    cases = {
        "text": lambda: engine.records(RARE_WORD, limit=100),
        "key=value": lambda: engine.records("user=u4242", limit=100),
        "histogram": lambda: engine.histogram("", since=0.0, until=time.time()),
        "facet": lambda: engine.facets("", since=0.0, until=time.time(), field="logger"),
        "text+level": lambda: engine.records(f"level>=error {RARE_WORD}", limit=100),
        "rare word": lambda: engine.records(RAREST_WORD, limit=100),
    }
    out = {}
    for name, case in cases.items():
        times = []
        for _ in range(reps):
            begin = time.perf_counter()
            case()
            times.append(time.perf_counter() - begin)
        out[name] = statistics.median(times)
    return out


def main() -> None:
    """Build each store, time each case, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("counts", help="comma-separated record counts, e.g. 1000000,3000000")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the stores here")
    args = parser.parse_args()
    python = [sys.executable, "-m", "netlog.cli"]
    env_root = args.keep or Path(tempfile.mkdtemp(prefix="netlog-query-bench-"))
    for count in (int(c) for c in args.counts.split(",")):
        log_dir = env_root / f"store-{count}"
        if not (log_dir / "records.jsonl").exists():
            begin = time.perf_counter()
            generate(log_dir, count)
            print(f"generated {count:,} records in {time.perf_counter() - begin:.1f} s")
        size = sum(p.stat().st_size for p in log_dir.glob("records.jsonl*"))
        files = len(list(log_dir.glob("records.jsonl*")))
        print(f"\n{count:,} records, {size / 2**20:.0f} MiB in {files} files")
        since = ["--since", "30d"]
        cases = {
            "text (first page)": [*python, "query", RARE_WORD, *since, "--log-dir", str(log_dir)],
            "key=value (first page)": [
                *python,
                "query",
                "user=u4242",
                *since,
                "--log-dir",
                str(log_dir),
            ],
            "histogram": [*python, "query", "", "--histogram", *since, "--log-dir", str(log_dir)],
            "facet logger": [
                *python,
                "query",
                "",
                "--facet",
                "logger",
                *since,
                "--log-dir",
                str(log_dir),
            ],
            "tail -n 100 --grep": [*python, "tail", "-n", "100", "--grep", RARE_WORD, str(log_dir)],
            "rare word (first page)": [*python, "query", RAREST_WORD, "--log-dir", str(log_dir)],
            "tail -n 100 --grep rare": [
                *python,
                "tail",
                "-n",
                "100",
                "--grep",
                RAREST_WORD,
                str(log_dir),
            ],
        }
        results = {}
        for name, command in cases.items():
            seconds, _ = timed(command, args.reps)
            results[name] = seconds
            print(f"  {name:<26} {seconds:7.3f} s   (CLI, fresh process)")
        for ours, theirs in (
            ("text (first page)", "tail -n 100 --grep"),
            ("rare word (first page)", "tail -n 100 --grep rare"),
        ):
            print(f"  {ours}: {results[theirs] / results[ours]:.1f}x as fast as {theirs}")
        for name, seconds in warm(log_dir, args.reps).items():
            print(f"  {name:<26} {seconds:7.3f} s   (engine kept open, as in the server)")
    os.sync()


if __name__ == "__main__":
    main()
