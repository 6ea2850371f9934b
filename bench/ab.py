"""Old against new: netlog from two (or more) source trees, alternating, one C client.

The harness compares netlog with other servers; this compares netlog with
itself, to decide whether a change to a hot path pays.  Each tree is a
checkout (``git worktree add /tmp/old HEAD~1``); its ``servers`` package is
run with the project venv's interpreter from inside the tree, so the tree's
own code is what runs.  Trees alternate A B A B, server on core 0, client on
core 1, a fresh process per trial; medians and ratios to the first tree.

    python3 bench/ab.py /tmp/old,. 5 tcp 10 65536 3 0.5
    python3 bench/ab.py /tmp/old,. 7 udp 64 64 2 0.5
    python3 bench/ab.py /tmp/old,. 5 ingest json

The client arguments are those of ``bench/build/load`` after HOST and PORT,
or ``ingest pickle|json``: the harness's ingest workload (160,000 records,
8 senders), records per second.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import harness


def trial(tree: Path, client: list[str]) -> dict[str, Any]:
    """One netlog from ``tree``, one client run against it; the client's JSON."""
    if client[0] == "ingest":
        with tempfile.TemporaryDirectory() as work:
            measure = harness.measure_ingest(client[1])
            result = measure("netlog", Path(work), harness.FULL, tree=tree)
        if result.value is None:
            raise SystemExit(f"ingest trial failed: {result.note}")
        return {"ops": result.value, "seconds": 1.0}
    with (
        tempfile.TemporaryDirectory() as work,
        harness.serving("netlog", Path(work), tree=tree) as server,
    ):
        port = server.ports["responder" if client[0] == "udp" else "echo"]
        return harness.run_client(
            harness.load(client[0], harness.HOST, port, *client[1:]), 300, server
        )


def value(client: list[str], result: dict[str, Any]) -> float:
    """Replies or round trips a second, or MB/s for the byte-heavy modes."""
    kind = client[0]
    seconds = float(result["seconds"])
    if kind == "stream":
        return int(client[1]) / seconds / 1e6
    if kind == "tcp" and int(client[2]) > 4096:
        return float(result["bytes"]) / seconds / 1e6
    return float(result["ops"]) / seconds


def cpu_per_op(result: dict[str, Any], rate: float) -> float | None:
    """The server's CPU time per unit of ``rate`` (µs), or ``None`` when not measured.

    Where the client is the limit (64 KiB echo) the rate says little about
    the server, and this says what a change saved there.  Where the server is
    at 100% of its core it is just the rate's inverse.
    """
    share = result.get("server_share")
    return None if share is None or rate <= 0 else share / rate * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", help="comma-separated source trees; the first is the base")
    parser.add_argument("reps", type=int)
    parser.add_argument("client", nargs="+", help="load client mode and its arguments")
    args = parser.parse_args()
    trees = [Path(t).resolve() for t in args.trees.split(",")]
    values: dict[Path, list[float]] = {t: [] for t in trees}
    costs: dict[Path, list[float]] = {t: [] for t in trees}
    for _ in range(args.reps):
        for tree in trees:
            result = trial(tree, args.client)
            rate = value(args.client, result)
            values[tree].append(rate)
            cost = cpu_per_op(result, rate)
            if cost is not None:
                costs[tree].append(cost)
    base = statistics.median(values[trees[0]])
    base_cost = statistics.median(costs[trees[0]]) if costs[trees[0]] else None
    for tree in trees:
        median = statistics.median(values[tree])
        trials = ", ".join(f"{v:,.0f}" for v in values[tree])
        print(f"{tree}: median {median:,.0f} ({median / base:.3f}x)  trials {trials}")
        if costs[tree] and base_cost:
            cost = statistics.median(costs[tree])
            each = ", ".join(f"{c:.3f}" for c in costs[tree])
            print(f"  server CPU per unit: median {cost:.3f} µs ({cost / base_cost:.3f}x)  {each}")


if __name__ == "__main__":
    main()
