"""History search, measured: the engine on JSONL, on Parquet-compacted files, and ``tail --grep``.

Builds a store of N records (JSONL written directly, not through a server:
generation must not be the bottleneck) rotated into 100 MiB files the way
the server rotates them, compacts its rotated files into Parquet and the
live file into segments the way the server does (timed: the compaction's own
cost per 1M records, the segments' per MiB), then times, on the same files,
side by side:

* a text search (a word present in 1 record in 1000), first page;
* a ``key=value`` search (``user=u4242``), first page;
* the histogram of the whole range by level (60 buckets);
* the facet ``logger`` (top 10);
* a rare word (1 record in 100,000: every file is read), first page;
* ``netlog tail -n 100 --grep WORD`` (today's way), the same two words;

each with the JSONL-only engine (``Engine(use_parquet=False)``), with the
rotated files' Parquet but the whole live file as JSONL
(``use_segments=False``) and with the live file's segments too, in a fresh
process per run (what a ``netlog query`` user
pays: Python, DuckDB's start, the query) and on one engine kept open (as the
server runs them).

    .venv/bin/python bench/query.py 1000000            # 1M records
    .venv/bin/python bench/query.py 1000000,3000000,10000000 --keep /tmp/stores

Each timing is the median of ``--reps`` runs; the load average is printed
with each store (the machine is shared).
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
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import orjson

ROOT: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netlog.record import new_id  # noqa: E402 - after the path fix
from netlog.sinks.encode import format_time  # noqa: E402
from netlog.store.writer import FILE_NAME, backup_name, rotated_paths  # noqa: E402

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


def cases(engine: Any) -> dict[str, Callable[[], object]]:
    """The questions, on one engine."""
    return {
        "text": lambda: engine.records(RARE_WORD, limit=100),
        "key=value": lambda: engine.records("user=u4242", limit=100),
        "histogram": lambda: engine.histogram("", since=0.0, until=time.time()),
        "facet": lambda: engine.facets("", since=0.0, until=time.time(), field="logger"),
        "rare word": lambda: engine.records(RAREST_WORD, limit=100),
        "text+level": lambda: engine.records(f"level>=error {RARE_WORD}", limit=100),
    }


#: The engines compared: JSONL only, Parquet for rotated files, and segments of the live file too.
MODES: Final = {
    "jsonl": {"use_parquet": False},
    "parquet": {"use_segments": False},
    "segments": {},
}


def one(log_dir: Path, case: str, *, mode: str) -> None:
    """Run one question once (in a fresh process: ``--one``) and print its answer's size."""
    from netlog.query.engine import Engine  # noqa: PLC0415 - the fresh process pays for it

    engine = Engine(log_dir, **MODES[mode])
    answer = cases(engine)[case]()
    print(len(orjson.dumps(answer)))


def warm(log_dir: Path, reps: int, *, mode: str) -> dict[str, float]:
    """The same queries on one engine kept open, as the server runs them."""
    from netlog.query.engine import Engine  # noqa: PLC0415

    engine = Engine(log_dir, **MODES[mode])
    files = engine._files()  # noqa: SLF001
    if mode != "jsonl":
        assert all(f.parquet is not None for f in files[:-1]), "not all compacted"
    assert any(f.segment for f in files) == (mode == "segments"), "segments"
    out = {}
    for name, case in cases(engine).items():
        times = []
        for _ in range(reps):
            begin = time.perf_counter()
            case()
            times.append(time.perf_counter() - begin)
        out[name] = statistics.median(times)
    engine.close()
    return out


def interleaved(log_dir: Path, rounds: int, tail_command: list[str]) -> dict[str, float]:
    """The common word's first page, every way in turn each round: the load falls on all alike.

    ``tail --grep`` and a fresh process with segments (subprocesses), and an
    open engine of each mode; medians in seconds.
    """
    from netlog.query.engine import Engine  # noqa: PLC0415

    engines = {mode: Engine(log_dir, **options) for mode, options in MODES.items()}
    me = [sys.executable, str(Path(__file__).resolve()), str(log_dir), "--one", "text"]
    runs: dict[str, Callable[[], object]] = {
        "tail --grep": lambda: subprocess.run(tail_command, capture_output=True, check=True),
        "segments fresh": lambda: subprocess.run([*me], capture_output=True, check=True),
        "parquet fresh": lambda: subprocess.run(
            [*me, "--mode", "parquet"], capture_output=True, check=True
        ),
    }
    for mode, engine in engines.items():
        engine.records(RARE_WORD, limit=100)  # warm: the file spans and metadata read once
        runs[f"{mode} open"] = lambda engine=engine: engine.records(RARE_WORD, limit=100)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            begin = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - begin)
    for engine in engines.values():
        engine.close()
    return {name: statistics.median(values) for name, values in times.items()}


def segment_all(log_dir: Path) -> tuple[float, int, int]:
    """The live file's segments written afresh, as the server does: seconds, count, bytes."""
    import duckdb  # noqa: PLC0415

    from netlog.query.engine import COMPACT_MEMORY, COMPACT_THREADS  # noqa: PLC0415
    from netlog.store import segments  # noqa: PLC0415

    for paths in segments.listed(log_dir).values():
        for path in paths:
            path.unlink()
    db = duckdb.connect(
        ":memory:", config={"threads": COMPACT_THREADS, "memory_limit": COMPACT_MEMORY}
    )
    begin = time.perf_counter()
    written = segments.extend(db, log_dir / FILE_NAME)
    seconds = time.perf_counter() - begin
    covered = sum(s.end - s.start for s in (segments.read(db, p) for p in written) if s)
    db.close()
    return seconds, len(written), covered


def compact_all(log_dir: Path) -> tuple[float, int, int]:
    """Compact every rotated file afresh, as the server does: seconds, records in them, bytes."""
    from netlog.query.engine import Engine  # noqa: PLC0415
    from netlog.store.compact import parquet_path  # noqa: PLC0415

    rotated = [p for p in rotated_paths(log_dir) if p.name != FILE_NAME]
    for path in rotated:
        parquet_path(path).unlink(missing_ok=True)
    records = 0
    for path in rotated:
        with path.open("rb") as f:
            records += sum(block.count(b"\n") for block in iter(lambda f=f: f.read(1 << 24), b""))
    engine = Engine(log_dir)
    begin = time.perf_counter()
    written = engine.compact(segment_bytes=1 << 40)  # rotated files only: segments timed apart
    seconds = time.perf_counter() - begin
    engine.close()
    assert len(written) == len(rotated)
    return seconds, records, sum(p.stat().st_size for p in written)


def main() -> None:
    """Build each store, time each case, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("counts", help="comma-separated record counts, e.g. 1000000,3000000")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the stores here")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved common-word rounds")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="segments", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(Path(args.counts), args.one, mode=args.mode)
        return
    python = [sys.executable, "-m", "netlog.cli"]
    env_root = args.keep or Path(tempfile.mkdtemp(prefix="netlog-query-bench-"))
    for count in (int(c) for c in args.counts.split(",")):
        log_dir = env_root / f"store-{count}"
        if not (log_dir / "records.jsonl").exists():
            begin = time.perf_counter()
            generate(log_dir, count)
            print(f"generated {count:,} records in {time.perf_counter() - begin:.1f} s")
        jsonl = rotated_paths(log_dir)
        size = sum(p.stat().st_size for p in jsonl)
        print(f"\n{count:,} records, {size / 2**20:.0f} MiB in {len(jsonl)} files")
        print("  load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        seconds, records, parquet_bytes = compact_all(log_dir)
        print(
            f"  compaction: {seconds:.1f} s for {records:,} records in {len(jsonl) - 1} files "
            f"({seconds / records * 1e6:.1f} s per 1M), Parquet {parquet_bytes / 2**20:.0f} MiB"
        )
        seconds, count_written, covered = segment_all(log_dir)
        print(
            f"  live file segments: {seconds:.2f} s for {count_written} covering "
            f"{covered / 2**20:.0f} MiB ({seconds / max(covered, 1) * 2**20 * 1000:.0f} ms per MiB)"
        )
        tails = {
            "text": [*python, "tail", "-n", "100", "--grep", RARE_WORD, str(log_dir)],
            "rare word": [*python, "tail", "-n", "100", "--grep", RAREST_WORD, str(log_dir)],
        }
        tail = {name: timed(command, args.reps)[0] for name, command in tails.items()}
        fresh: dict[str, dict[str, float]] = {mode: {} for mode in MODES}
        me = [sys.executable, str(Path(__file__).resolve()), str(log_dir)]
        for name in cases(None):
            for mode in MODES:  # alternating: the machine's noise falls on all alike
                fresh[mode][name] = timed([*me, "--one", name, "--mode", mode], args.reps)[0]
        kept = {mode: warm(log_dir, args.reps, mode=mode) for mode in MODES}
        print(
            f"  {'question':<12} {'JSONL':>7} {'Parquet':>7} {'Segs':>7} {'JSONL open':>10} "
            f"{'Pq open':>8} {'Segs open':>9} {'tail':>7} {'tail/Segs':>9} {'tail/Segs open':>14}"
        )
        for name in fresh["jsonl"]:
            ratio = f"{tail[name] / fresh['segments'][name]:.1f}x" if name in tail else ""
            ratio_open = f"{tail[name] / kept['segments'][name]:.1f}x" if name in tail else ""
            tail_text = f"{tail[name]:.3f}" if name in tail else ""
            print(
                f"  {name:<12} {fresh['jsonl'][name]:7.3f} {fresh['parquet'][name]:7.3f} "
                f"{fresh['segments'][name]:7.3f} {kept['jsonl'][name]:10.3f} "
                f"{kept['parquet'][name]:8.3f} {kept['segments'][name]:9.3f} "
                f"{tail_text:>7} {ratio:>9} {ratio_open:>14}"
            )
        print("  load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        medians = interleaved(log_dir, args.rounds, tails["text"])
        print(f"  common word, {args.rounds} rounds interleaved (median s, tail --grep / each):")
        for name, seconds in medians.items():
            print(f"    {name:<15} {seconds:6.3f}  {medians['tail --grep'] / seconds:5.1f}x")
        print("  load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    os.sync()


if __name__ == "__main__":
    main()
