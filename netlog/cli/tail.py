r"""``netlog tail``: print the records in a log dir, and follow new ones with ``-f``.

Reading: the rotated files oldest first (``records.jsonl.N`` ... ``.1``), then
``records.jsonl``.  ``-n N`` shows the last N records that pass the filters
(found by reading the files backwards, so a large dir costs only what is
shown); ``-n all`` shows every one.

Following (``-f``) polls ``records.jsonl``: new complete lines are printed;
a line still being written is held until its newline arrives; when the
file is replaced (rotation: a new inode) the old one is read to its end
first, along with any rotated file that came and went between two polls,
then the new one from its start; a file that shrank (truncated by hand) is
read again from its start.

Filters, all of which must match:

* ``--level L``: at least this level.  Ranks: trace 5, debug 10, info 20,
  notice 25, warning (warn) 30, error (err) 40, critical (crit, fatal, alert,
  emergency) 50, ``level N`` (a LogRecord's unnamed number) N.  Any other
  level a sender made up ranks as info.
* ``--logger NAME``: the logger is NAME or below it (``app`` matches ``app``
  and ``app.db``, not ``apple``); repeat for either of several.
* ``--grep TEXT``: the message contains TEXT, ignoring case (``--regex``:
  TEXT is a regular expression, searched ignoring case).
* ``--since WHEN``: ``ts`` at or after an RFC 3339 time or a duration ago
  (``30s``, ``10m``, ``2h``, ``1d``, ``1h30m``).
* ``--field KEY=VALUE``: ``fields[KEY]`` (a dotted KEY reaches into nested
  objects; a record key such as ``format`` or ``peer`` when ``fields`` has
  none) equals VALUE, comparing strings as they are and other values as
  their JSON text (``n=5``, ``ok=true``, ``x=null``); repeatable.

Output is the console's pretty rendering (colours on a terminal) with every
control character escaped, where a LogRecord was made shown as ``--src``
says (``short``: ``billing.py:54 in worker``, ``full``, ``off``; default
``NETLOG_CONSOLE_SRC``, as for ``serve``'s console), or ``--json``: the lines
as stored (line breaks and terminal controls that a foreign file may hold raw
are escaped, which leaves the JSON equal).  A line that is not a JSON object
is skipped and counted; the count is printed on stderr at the end.

The log dir is the positional ``LOG_DIR`` or ``--log-dir`` (as ``serve``
spells it), else ``NETLOG_LOG_DIR``, else ``./netlog-data``.

This module is the command line and the printing only: the reading and
following are :mod:`netlog.store.reader`'s, the filters
:mod:`netlog.query.filter`'s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

from netlog.cli.argtypes import accepted
from netlog.levels import known_rank
from netlog.query.filter import Filter, Selector, parse_since
from netlog.settings import (
    DEFAULT_CONSOLE_SRC,
    DEFAULT_LOG_DIR,
    SOURCE_MODES,
    SourceMode,
    env_name,
)
from netlog.sinks.console import ConsoleSink
from netlog.sinks.safe_text import escape_json_text
from netlog.store.reader import Follower, StoreFile, close_files, last_lines, open_files
from netlog.store.records import record_from_json
from netlog.store.writer import FILE_NAME, rotated_paths

__all__ = ["DEFAULT_LINES", "POLL_INTERVAL", "add_tail_parser", "run_tail", "skipped_note"]

DEFAULT_LINES: Final = 10
#: The variable ``serve`` reads for ``--console-src``; tail's ``--src`` honours it too.
SOURCE_ENV: Final = env_name("--console-src")
#: Seconds between looks at the file while following.
POLL_INTERVAL: Final = 0.25


# --- output ----------------------------------------------------------------------


class _Printer:
    """Pretty (the console renderer) or ``--json`` lines; notes a reader that left.

    ``src`` is how the pretty lines show where a LogRecord was made.
    """

    def __init__(
        self,
        stream: TextIO,
        json_lines: bool,
        colors: bool | None,
        src: SourceMode = DEFAULT_CONSOLE_SRC,
    ) -> None:
        self.stream = stream
        self.json_lines = json_lines
        self.console = ConsoleSink("pretty", stream, colors=colors, src=src)
        self.broken = False

    def emit(self, batch: Sequence[tuple[bytes, dict[str, Any]]]) -> None:
        if not batch or self.broken:
            return
        if self.json_lines:
            text = "".join(_safe_json(line) + "\n" for line, _ in batch)
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                self.broken = True
            return
        self.console.write([record_from_json(obj) for _, obj in batch])
        self.console.flush()
        self.broken = self.console.broken


def _safe_json(line: bytes) -> str:
    """A stored line as printed by ``--json``: what a foreign file holds raw, escaped."""
    return escape_json_text(line.rstrip(b"\r").decode("utf-8", "backslashreplace"))


def skipped_note(command: str, bad: int) -> str:
    """The line that says how many lines were not records, in good English."""
    if bad == 1:
        return f"netlog {command}: skipped 1 line that was not a JSON record"
    return f"netlog {command}: skipped {bad} lines that were not JSON records"


# --- the command line ------------------------------------------------------------


def _count(text: str) -> int | None:
    value = text.strip().lower()
    if value == "all":
        return None
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of lines or 'all'") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return number


def _level(text: str) -> int:
    rank = known_rank(text)
    if rank is not None:
        return rank
    names = "debug, info, warning, error, critical"
    raise argparse.ArgumentTypeError(f"{text!r} is not a level ({names}, or a number)")


def _field(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def _source(text: str) -> SourceMode:
    value = text.strip().lower()
    for mode in SOURCE_MODES:
        if value == mode:
            return mode
    raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(SOURCE_MODES)}")


_since = accepted(lambda text: parse_since(text, 0.0), ValueError)


def add_tail_parser(commands: argparse._SubParsersAction[Any]) -> None:
    """``netlog tail``: print (and follow) the records on disk."""
    tail = commands.add_parser(
        "tail",
        help="print the records in the log dir; -f follows new ones",
        description=(
            "Print the records in LOG_DIR (rotated files first), filtered, "
            "and with -f keep printing new ones across rotation."
        ),
    )
    tail.add_argument(
        "log_dir",
        nargs="?",
        type=Path,
        default=None,
        metavar="LOG_DIR",
        help=f"the log dir, or one JSONL file (env NETLOG_LOG_DIR, default {DEFAULT_LOG_DIR})",
    )
    tail.add_argument(
        "--log-dir",
        dest="log_dir_option",
        type=Path,
        default=None,
        metavar="LOG_DIR",
        help="the same, spelled as for serve",
    )
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    tail.add_argument(
        "-n",
        "--lines",
        type=_count,
        default=DEFAULT_LINES,
        metavar="N",
        help=f"start with the last N matching records, or 'all' (default {DEFAULT_LINES})",
    )
    tail.add_argument("--level", type=_level, help="at least this level (debug ... critical)")
    tail.add_argument(
        "--logger",
        action="append",
        default=[],
        help="this logger or below it (app matches app.db, not apple); repeatable",
    )
    tail.add_argument("--grep", metavar="TEXT", help="message contains TEXT (any case)")
    tail.add_argument("--regex", action="store_true", help="--grep TEXT is a regular expression")
    tail.add_argument(
        "--since", type=_since, metavar="WHEN", help="ts at or after WHEN: RFC 3339 or 10m, 2h..."
    )
    tail.add_argument(
        "--field",
        type=_field,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fields[KEY] equals VALUE (JSON text for non-strings); repeatable",
    )
    tail.add_argument("--json", action="store_true", help="print the JSON lines as stored")
    tail.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the pretty output (default auto: on a terminal, unless NO_COLOR)",
    )
    tail.add_argument(
        "--src",
        type=_source,
        default=None,
        metavar="{short,full,off}",
        help="where a LogRecord was made: short (billing.py:54 in worker), the full path with"
        f" thread and pid, or off (env {SOURCE_ENV}, default {DEFAULT_CONSOLE_SRC})",
    )


def _build_filter(args: argparse.Namespace) -> Filter:
    regex = None
    grep = None
    if args.grep is not None:
        if args.regex:
            regex = re.compile(args.grep, re.IGNORECASE)
        else:
            grep = args.grep.lower()
    since = parse_since(args.since, time.time()) if args.since is not None else None
    return Filter(
        min_level=args.level,
        loggers=tuple(args.logger),
        grep=grep,
        regex=regex,
        since=since,
        fields=tuple(args.field),
    )


class _Stop(Exception):  # noqa: N818 - a signal turned into a clean exit, not an error
    """SIGTERM while following."""


def _raise_stop(_signum: int, _frame: object) -> None:
    raise _Stop


def _targets(
    args: argparse.Namespace, env: Mapping[str, str], err: TextIO
) -> tuple[Path, list[Path], bool] | None:
    """The file to follow, the files to read first, and whether they are a log dir's.

    None (after saying why) when there is nothing to read, or the log dir
    was named twice, differently.
    """
    given = [path for path in (args.log_dir, args.log_dir_option) if path is not None]
    if len(set(given)) > 1:
        print(
            f"netlog tail: error: two log dirs: {given[0]} and --log-dir {given[1]}; give one",
            file=err,
        )
        return None
    target = given[0] if given else Path(env.get("NETLOG_LOG_DIR") or DEFAULT_LOG_DIR)
    if target.is_dir():
        return target / FILE_NAME, rotated_paths(target), True
    if target.is_file():
        return target, [target], False
    if args.follow:
        print(f"netlog tail: waiting for {target / FILE_NAME} to appear", file=err)
        return target / FILE_NAME, [], True
    print(f"netlog tail: error: {target} is not a log dir or a file", file=err)
    return None


def run_tail(
    args: argparse.Namespace,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run ``netlog tail``; the exit status (0, or 2 for a bad argument)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        keep = _build_filter(args)
    except re.error as exc:
        print(f"netlog tail: error: --grep is not a valid regular expression: {exc}", file=err)
        return 2
    env = os.environ if environ is None else environ
    src = args.src
    if src is None:
        try:
            src = _source(env.get(SOURCE_ENV) or DEFAULT_CONSOLE_SRC)
        except argparse.ArgumentTypeError as exc:
            print(f"netlog tail: error: environment variable {SOURCE_ENV}: {exc}", file=err)
            return 2
    targets = _targets(args, env, err)
    if targets is None:
        return 2
    current, paths, log_dir = targets
    colors = {"auto": None, "always": True, "never": False}[args.color]
    printer = _Printer(out, args.json, colors, src)
    lines = Selector(keep)
    previous = signal.signal(signal.SIGTERM, _raise_stop) if args.follow else None
    files: list[StoreFile] = []
    follower: Follower | None = None
    try:
        files = open_files(paths, current, log_dir=log_dir)
        printer.emit(last_lines(files, args.lines, lines.parse))
        if args.follow and not printer.broken:
            head = next((item for item in files if item.path == current), None)
            if head is not None:
                files.remove(head)
            follower = Follower(current, *((head.fd, head.end) if head else ()))
            _follow(follower, lines, printer, sleep)
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        close_files(files)
        if follower is not None:
            follower.close()
    if printer.broken and out is sys.stdout:
        _silence_stdout()
    bad = lines.bad + (follower.too_long if follower is not None else 0)
    if bad:
        print(skipped_note("tail", bad), file=err)
    return 0


def _follow(
    follower: Follower, lines: Selector, printer: _Printer, sleep: Callable[[float], None]
) -> None:
    while not printer.broken:
        batch = []
        for line in follower.poll():
            obj = lines.parse(line)
            if obj is not None:
                batch.append((line, obj))
        printer.emit(batch)
        sleep(POLL_INTERVAL)


def _silence_stdout() -> None:
    """The reader went away (``netlog tail | head``): no complaint at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
