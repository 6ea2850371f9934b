"""JSON-line decoding speed, old tree against new: ``json_or_text`` on each logger's lines.

``bench/ab.py`` times the whole server; this times the one function every
JSON line goes through (``netlog.decode.formats.json_or_text``: orjson,
then ``normalize.from_json``), so a change to the key mapping shows up
without the noise of sockets and disk.  Each tree is a source checkout
(``git archive HEAD~1 | tar -x -C /tmp/old``); trials alternate A B A B,
each a fresh interpreter with that tree first on ``sys.path``; the
medians and the best of lines a CPU second, and their ratios to the first
tree, are printed.

    python3 bench/json_lines.py /tmp/old,. --trials 7

Bounded: ``--lines`` lines a kind, ``--trials`` trials a tree, 60 s a trial.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: One line a kind, varied per line (a counter) so no cache helps.
KINDS = {
    # bench/ingest.py's structlog JSONRenderer-like line: the common one.
    "structlog": (
        '{{"event":"request GET /api/items/{i} handled","duration_ms":{d},"user":"user{u}",'
        '"request_id":"{i:016x}","status":200,"logger":"app.http","level":"info",'
        '"timestamp":"2024-05-01T12:00:00.{i:06d}Z"}}'
    ),
    "python_json_logger": (
        '{{"asctime":"2024-05-01 12:00:00,123","levelname":"INFO","name":"app.http",'
        '"message":"request {i} handled","user":"user{u}"}}'
    ),
    "pino": (
        '{{"level":30,"time":{ms},"pid":657,"hostname":"web-1","msg":"request {i} handled",'
        '"user":"user{u}"}}'
    ),
    "zap": (
        '{{"level":"info","ts":{s}.123,"logger":"http","caller":"srv/main.go:42",'
        '"msg":"request {i} handled","user":"user{u}"}}'
    ),
    "clef": (
        '{{"@t":"2024-05-01T12:00:00.1234567Z","@mt":"Request {{Id}} handled for {{User}}",'
        '"Id":{i},"User":"user{u}","SourceContext":"App.Http"}}'
    ),
}


def lines(kind: str, count: int) -> list[bytes]:
    """``count`` lines of one kind."""
    template = KINDS[kind]
    return [
        template.format(
            i=i, d=(i % 1000) / 10, u=i % 317, ms=1714564800000 + i, s=1714564800 + i
        ).encode()
        for i in range(count)
    ]


def run_trial(count: int) -> dict[str, float]:
    """In this interpreter: lines a CPU second of each kind, best of 3 passes.

    CPU time, not wall time: the machine is shared, and what a line costs
    is the question, not how often this process was scheduled.
    """
    import collections  # noqa: PLC0415 - only the child needs it

    from netlog.decode.formats import json_or_text  # noqa: PLC0415 - the tree's own

    result = {}
    for kind in KINDS:
        batch = lines(kind, count)
        best = float("inf")
        for _ in range(3):
            notes: collections.Counter[str] = collections.Counter()
            start = time.process_time()
            for line in batch:
                json_or_text(line, "127.0.0.1:5", 1.0, notes)
            best = min(best, time.process_time() - start)
        result[kind] = count / best
    return result


def trial(tree: Path, count: int) -> dict[str, float]:
    """One fresh interpreter with ``tree`` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(count)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def main() -> None:
    """Alternate the trees, print medians and ratios to the first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="?", default=".", help="comma-separated source trees")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_trial(args.child)))
        return
    trees = [Path(tree) for tree in args.trees.split(",")]
    seen: dict[Path, list[dict[str, float]]] = {tree: [] for tree in trees}
    for _ in range(args.trials):
        for tree in trees:
            seen[tree].append(trial(tree, args.lines))
    first = trees[0]
    for kind in KINDS:
        base = statistics.median(result[kind] for result in seen[first])
        top = max(result[kind] for result in seen[first])
        cells = []
        for tree in trees:
            median = statistics.median(result[kind] for result in seen[tree])
            best = max(result[kind] for result in seen[tree])
            cells.append(
                f"{tree}: median {median:,.0f}/s ({median / base:.3f}), "
                f"best {best:,.0f}/s ({best / top:.3f})"
            )
        print(f"{kind:20} " + "  ".join(cells))


if __name__ == "__main__":
    main()
