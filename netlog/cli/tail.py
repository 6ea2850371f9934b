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
control character escaped, or ``--json``: the lines as stored (line breaks
and terminal controls that a foreign file may hold raw are escaped, which
leaves the JSON equal).  A line that is not a JSON object is skipped and
counted; the count is printed on stderr at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

import orjson

from netlog.decode.normalize import parse_timestamp
from netlog.levels import known_rank, level_rank
from netlog.record import Record
from netlog.sinks.console import ConsoleSink
from netlog.store.writer import FILE_NAME, rotated_paths

__all__ = [
    "DEFAULT_LINES",
    "Filter",
    "Follower",
    "add_tail_parser",
    "last_lines",
    "level_rank",
    "parse_since",
    "record_from_json",
    "run_tail",
]

DEFAULT_LINES: Final = 10
#: Seconds between looks at the file while following.
POLL_INTERVAL: Final = 0.25
_BLOCK: Final = 1 << 16
#: A line still being written may grow to this before it is given up on.
_MAX_PARTIAL: Final = 64 << 20
_DEFAULT_DIR: Final = "./netlog-data"

_DURATION: Final = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TOP_LEVEL: Final = ("level", "logger", "message", "peer", "format", "ts", "received", "exc")
# What a foreign JSONL file may hold raw inside strings and a terminal or a
# line reader would obey; inside JSON strings ``\uXXXX`` is the same text.
_UNSAFE_JSON: Final = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_MISSING: Final = object()


def parse_since(text: str, now: float) -> float:
    """Epoch seconds for ``--since``: an RFC 3339 time, or a duration before ``now``."""
    value = text.strip()
    if _DURATION.fullmatch(value):
        seconds = sum(float(number) * _UNIT[unit] for number, unit in _DURATION_PART.findall(value))
        return now - seconds
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an RFC 3339 time nor a duration like 30s, 10m, 2h, 1d"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _as_text(value: Any) -> str:
    if type(value) is str:
        return value
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return str(value)


def _lookup(obj: dict[str, Any], key: str) -> Any:
    fields = obj.get("fields")
    if isinstance(fields, dict):
        if key in fields:
            return fields[key]
        if "." in key:
            value: Any = fields
            for part in key.split("."):
                if not isinstance(value, dict) or part not in value:
                    break
                value = value[part]
            else:
                return value
    if key in _TOP_LEVEL and key in obj:
        return obj[key]
    return _MISSING


@dataclass(frozen=True, slots=True)
class Filter:
    """The filters of one ``netlog tail``; a record passes when every one matches."""

    min_level: int | None = None
    loggers: tuple[str, ...] = ()
    grep: str | None = None
    """Lower-cased substring of the message."""
    regex: re.Pattern[str] | None = None
    since: float | None = None
    fields: tuple[tuple[str, str], ...] = ()

    def matches(self, obj: dict[str, Any]) -> bool:
        """Whether the record ``obj`` (one parsed JSON line) passes."""
        level = self.min_level
        if level is not None and level_rank(_as_text(obj.get("level", ""))) < level:
            return False
        if self.loggers:
            name = _as_text(obj.get("logger", ""))
            if not any(name == p or name.startswith(p + ".") for p in self.loggers):
                return False
        if (self.grep is not None or self.regex is not None) and not self._message_matches(obj):
            return False
        if self.since is not None:
            ts = parse_timestamp(obj.get("ts"))
            if ts is None or ts < self.since:
                return False
        return all(
            (value := _lookup(obj, key)) is not _MISSING and _as_text(value) == want
            for key, want in self.fields
        )

    def _message_matches(self, obj: dict[str, Any]) -> bool:
        message = _as_text(obj.get("message", ""))
        if self.grep is not None and self.grep not in message.lower():
            return False
        return self.regex is None or self.regex.search(message) is not None


def record_from_json(obj: dict[str, Any]) -> Record:
    """Turn one stored JSON line back into a :class:`Record` for the console."""
    ts = parse_timestamp(obj.get("ts"))
    received = parse_timestamp(obj.get("received"))
    ts_value = ts if ts is not None else (received or 0.0)
    fields = obj.get("fields")
    exc = obj.get("exc")
    return Record(
        ts_value,
        received if received is not None else ts_value,
        _as_text(obj.get("level", "info")),
        _as_text(obj.get("logger") or ""),
        _as_text(obj.get("message") or ""),
        fields if isinstance(fields, dict) else {},
        None if exc is None else _as_text(exc),
        _as_text(obj.get("peer") or ""),
        _as_text(obj.get("format") or ""),
    )


# --- reading files -------------------------------------------------------------


class _Lines:
    """Parses lines and counts the ones that are not JSON objects."""

    def __init__(self, keep: Filter) -> None:
        self.filter = keep
        self.bad = 0

    def parse(self, line: bytes) -> dict[str, Any] | None:
        """The record on ``line`` if it passes the filter; blank and bad lines give None."""
        if not line.strip():
            return None
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.bad += 1
            return None
        if type(obj) is not dict:
            self.bad += 1
            return None
        return obj if self.filter.matches(obj) else None


def _complete_end(fd: int) -> int:
    """Offset just past the file's last newline: what a reader may take as whole."""
    position = os.fstat(fd).st_size
    while position > 0:
        start = max(0, position - _BLOCK)
        newline = os.pread(fd, position - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def _backwards(fd: int, end: int) -> Iterator[bytes]:
    """The lines before ``end``, last first."""
    position = end
    head = b""
    while position > 0:
        start = max(0, position - _BLOCK)
        parts = (os.pread(fd, position - start, start) + head).split(b"\n")
        position = start
        head = parts[0]
        yield from reversed(parts[1:])
    yield head


def _forwards(fd: int, start: int, end: int | None) -> Iterator[bytes]:
    """The lines from ``start`` to ``end`` (or the end of the file), first first.

    A last line without its newline is yielded too: callers pass an ``end``
    at a newline when a line may still be being written.
    """
    position = start
    rest = b""
    while end is None or position < end:
        size = _BLOCK if end is None else min(_BLOCK, end - position)
        data = os.pread(fd, size, position)
        if not data:
            break
        position += len(data)
        parts = (rest + data).split(b"\n")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


@dataclass(slots=True)
class _Open:
    fd: int
    path: Path
    end: int


def _open_files(paths: Sequence[Path], current: Path, *, log_dir: bool) -> list[_Open]:
    """Open ``paths``, retrying while a rotation renames them under us.

    ``log_dir`` says ``paths`` are a log dir's files (``current`` being its
    ``records.jsonl``), not one named file.  The names are listed before
    they are opened; if the sink rotates in
    between, a name may already mean a newer file, or a new rotated file
    may be missing from the list.  So after opening, the names are listed
    again and each open file is checked against its name; when anything
    moved, it all starts again, and the reader never skips or repeats a
    rotated file.
    """
    for _attempt in range(10):
        opened = _open_listed(paths, current)
        listed_again = rotated_paths(current.parent) if log_dir else list(paths)
        if listed_again == list(paths) and all(_same_file(item) for item in opened):
            return opened
        _close_all(opened)
        paths = listed_again
    return _open_listed(paths, current)  # rotating non-stop: take what we get


def _open_listed(paths: Sequence[Path], current: Path) -> list[_Open]:
    opened = []
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # rotated away while listing
        end = _complete_end(fd) if path == current else os.fstat(fd).st_size
        opened.append(_Open(fd, path, end))
    return opened


def _same_file(item: _Open) -> bool:
    try:
        st = item.path.stat()
    except FileNotFoundError:
        return False
    own = os.fstat(item.fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _close_all(files: Sequence[_Open]) -> None:
    for item in files:
        with contextlib.suppress(OSError):
            os.close(item.fd)


def last_lines(
    files: Sequence[_Open], count: int | None, lines: _Lines
) -> list[tuple[bytes, dict[str, Any]]]:
    """The last ``count`` passing records of ``files`` (all with ``None``), oldest first."""
    if count is None:
        out = []
        for item in files:
            for line in _forwards(item.fd, 0, item.end):
                obj = lines.parse(line)
                if obj is not None:
                    out.append((line, obj))
        return out
    found: list[tuple[bytes, dict[str, Any]]] = []
    if count <= 0:
        return found
    for item in reversed(files):
        for line in _backwards(item.fd, item.end):
            obj = lines.parse(line)
            if obj is not None:
                found.append((line, obj))
                if len(found) >= count:
                    found.reverse()
                    return found
    found.reverse()
    return found


class Follower:
    """Reads what is appended to one file, across rotation and truncation.

    ``poll()`` returns the complete lines that arrived since the last call,
    in order.  It never blocks; the caller sleeps between polls.
    """

    def __init__(self, path: Path, fd: int | None = None, position: int = 0) -> None:
        self.path = path
        self._fd = fd
        self._position = position
        self._partial = b""
        self._identity: tuple[int, int] | None = None
        self.too_long = 0
        """Lines given up on because they grew past the limit without a newline."""
        if fd is not None:
            st = os.fstat(fd)
            self._identity = (st.st_dev, st.st_ino)

    def close(self) -> None:
        """Close the file being followed."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def poll(self) -> list[bytes]:
        """Complete lines that arrived since the last poll."""
        out = self._read()
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return out  # between a rename and the new file: look again later
        identity = (st.st_dev, st.st_ino)
        if self._fd is None or identity != self._identity:
            # Rotated (or first seen): finish the old file, then anything
            # rotated in between, then start the new one from its beginning.
            out += self._read()
            self._partial = b""
            out += self._missed_rotations()
            self.close()
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return out
            self._fd, self._position = fd, 0
            st = os.fstat(fd)
            self._identity = (st.st_dev, st.st_ino)
            out += self._read()
        elif st.st_size < self._position:
            self._position, self._partial = 0, b""  # truncated: read it again
            out += self._read()
        return out

    def _read(self) -> list[bytes]:
        fd = self._fd
        if fd is None:
            return []
        out: list[bytes] = []
        while True:
            data = os.pread(fd, _BLOCK * 16, self._position)
            if not data:
                return out
            self._position += len(data)
            parts = (self._partial + data).split(b"\n")
            self._partial = parts.pop()
            out += parts
            if len(self._partial) > _MAX_PARTIAL:
                self._partial = b""
                self.too_long += 1

    def _missed_rotations(self) -> list[bytes]:
        """Lines of rotated files newer than the one we were reading (two rotations in a poll)."""
        if self._identity is None or self.path.name != FILE_NAME:
            return []
        rotated = [p for p in rotated_paths(self.path.parent) if p != self.path]
        identities: list[tuple[int, int] | None] = []
        for path in rotated:
            try:
                st = path.stat()
            except FileNotFoundError:
                identities.append(None)
                continue
            identities.append((st.st_dev, st.st_ino))
        if self._identity not in identities:
            return []
        out: list[bytes] = []
        for path in rotated[identities.index(self._identity) + 1 :]:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                out += _forwards(fd, 0, None)
            finally:
                os.close(fd)
        return out


# --- output ----------------------------------------------------------------------


class _Printer:
    """Pretty (the console renderer) or ``--json`` lines; notes a reader that left."""

    def __init__(self, stream: TextIO, json_lines: bool, colors: bool | None) -> None:
        self.stream = stream
        self.json_lines = json_lines
        self.console = ConsoleSink("pretty", stream, colors=colors)
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
    text = line.rstrip(b"\r").decode("utf-8", "backslashreplace")
    if text.isascii():
        return text
    return _UNSAFE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


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


def _since(text: str) -> str:
    try:
        parse_since(text, 0.0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


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
        help=f"the log dir, or one JSONL file (env NETLOG_LOG_DIR, default {_DEFAULT_DIR})",
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

    None (after saying why) when there is nothing to read.
    """
    target = args.log_dir
    if target is None:
        target = Path(env.get("NETLOG_LOG_DIR") or _DEFAULT_DIR)
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
    targets = _targets(args, os.environ if environ is None else environ, err)
    if targets is None:
        return 2
    current, paths, log_dir = targets
    printer = _Printer(out, args.json, {"auto": None, "always": True, "never": False}[args.color])
    lines = _Lines(keep)
    previous = signal.signal(signal.SIGTERM, _raise_stop) if args.follow else None
    files: list[_Open] = []
    follower: Follower | None = None
    try:
        files = _open_files(paths, current, log_dir=log_dir)
        printer.emit(last_lines(files, args.lines, lines))
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
        _close_all(files)
        if follower is not None:
            follower.close()
    if printer.broken and out is sys.stdout:
        _silence_stdout()
    bad = lines.bad + (follower.too_long if follower is not None else 0)
    if bad:
        noun = "line" if bad == 1 else "lines"
        print(f"netlog tail: skipped {bad} {noun} that were not JSON records", file=err)
    return 0


def _follow(
    follower: Follower, lines: _Lines, printer: _Printer, sleep: Callable[[float], None]
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
