"""``netlog query``: search every stored record, from the command line.

``netlog query 'level>=error timeout' --since 2h`` prints the matching
records oldest first, the way ``netlog tail`` prints them (its printer:
pretty, or ``--json`` lines); ``-n N`` the newest N (default 100), ``-n all``
every one.  ``--count`` prints a number, ``--histogram`` a small text
histogram by level, ``--facet FIELD`` the commonest values of a field.  The
query language, the engine and its bounds are :mod:`netlog.query`'s; this
module is the command line and the printing only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

import orjson

from netlog.cli.argtypes import accepted
from netlog.cli.tail import _Printer
from netlog.query.language import QueryError
from netlog.query.times import parse_time
from netlog.settings import DEFAULT_LOG_DIR

if TYPE_CHECKING:
    from netlog.query.engine import Engine

__all__ = ["DEFAULT_COUNT", "add_query_parser", "run_query"]

DEFAULT_COUNT: Final = 100
#: Width of the longest bar of ``--histogram``.
_BAR: Final = 40
_HISTOGRAM_BUCKETS: Final = 20


def _count(text: str) -> int | None:
    value = text.strip().lower()
    if value == "all":
        return None
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of records or 'all'") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return number


_when = accepted(lambda text: parse_time(text, 0.0), QueryError)


def add_query_parser(commands: argparse._SubParsersAction[Any]) -> None:
    """``netlog query``: search the stored records."""
    query = commands.add_parser(
        "query",
        help="search every stored record (the viewer's query language)",
        description=(
            "Print the stored records that match QUERY, oldest first. Terms: word, "
            '"a phrase", key=value, key!=value, key>N (>=, <, <=), level>=warning, '
            "logger=app (and app.*), has:key, -term to negate."
        ),
    )
    query.add_argument("query", nargs="?", default="", metavar="QUERY", help="the query ('' = all)")
    query.add_argument("--since", type=_when, metavar="WHEN", help="received at or after WHEN")
    query.add_argument("--until", type=_when, metavar="WHEN", help="received before WHEN")
    query.add_argument(
        "-n",
        "--lines",
        type=_count,
        default=DEFAULT_COUNT,
        metavar="N",
        help=f"the newest N matching records, or 'all' (default {DEFAULT_COUNT})",
    )
    query.add_argument("--json", action="store_true", help="print the JSON lines as stored")
    shown = query.add_mutually_exclusive_group()
    shown.add_argument("--count", action="store_true", help="print how many records match")
    shown.add_argument("--histogram", action="store_true", help="counts by level over the range")
    shown.add_argument("--facet", metavar="FIELD", help="the commonest values of FIELD")
    query.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help=f"the log dir (env NETLOG_LOG_DIR, default {DEFAULT_LOG_DIR})",
    )
    query.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the pretty output (default auto: on a terminal, unless NO_COLOR)",
    )


def run_query(
    args: argparse.Namespace,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run ``netlog query``; the exit status (0, or 2 for a bad query or log dir)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    env = os.environ if environ is None else environ
    log_dir = args.log_dir or Path(env.get("NETLOG_LOG_DIR") or DEFAULT_LOG_DIR)
    if not log_dir.is_dir():
        print(f"netlog query: error: {log_dir} is not a log dir", file=err)
        return 2
    now = time.time()
    # Imported here: DuckDB costs every process that imports the command line
    # (``python -m servers`` does) ~16 MiB of RSS, and only ``query`` needs it.
    from netlog.query.engine import Engine  # noqa: PLC0415

    engine = Engine(log_dir)
    try:
        since = parse_time(args.since, now, what="since") if args.since else None
        until = parse_time(args.until, now, what="until") if args.until else None
        if args.count:
            print(engine.count(args.query, since, until), file=out)
        elif args.histogram:
            _print_histogram(engine.histogram(args.query, since, until, _HISTOGRAM_BUCKETS), out)
        elif args.facet is not None:
            _print_facets(engine.facets(args.query, since, until, args.facet), out)
        else:
            colors = {"auto": None, "always": True, "never": False}[args.color]
            records = _newest(engine, args.query, since, until, args.lines)
            printer = _Printer(out, args.json, colors)
            printer.emit([(orjson.dumps(obj), obj) for obj in reversed(records)])
    except QueryError as exc:
        print(f"netlog query: error: {exc}", file=err)
        return 2
    except BrokenPipeError:
        _silence(out)  # the reader left (netlog query --histogram | head): no complaint
    finally:
        engine.close()
    return 0


def _newest(
    engine: Engine, q: str, since: float | None, until: float | None, count: int | None
) -> list[dict[str, Any]]:
    """The newest ``count`` matching records (all with None), newest first, page by page."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while count is None or len(found) < count:
        want = engine.max_limit if count is None else min(engine.max_limit, count - len(found))
        page = engine.records(q, since, until, limit=want, before=cursor)
        found += page["records"]
        cursor = page["next"]
        if cursor is None:
            break
    return found


def _print_histogram(result: dict[str, Any], out: TextIO) -> None:
    """One line per bucket: its start, a bar, the total and the counts by level."""
    totals = [sum(bucket["counts"].values()) for bucket in result["buckets"]]
    peak = max(totals, default=0) or 1
    for bucket, total in zip(result["buckets"], totals, strict=True):
        bar = "#" * round(total / peak * _BAR)
        levels = " ".join(f"{k}={v}" for k, v in sorted(bucket["counts"].items()))
        print(f"{bucket['start'][:19]}Z {bar:<{_BAR}} {total:>8} {levels}".rstrip(), file=out)


def _print_facets(result: dict[str, Any], out: TextIO) -> None:
    """One line per value, commonest first, then the count of the rest."""
    for item in result["values"]:
        print(f"{item['count']:>10} {item['value']}", file=out)
    if result["other"]:
        print(f"{result['other']:>10} (other values)", file=out)


def _silence(out: TextIO) -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not complain."""
    if out is not sys.stdout:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
