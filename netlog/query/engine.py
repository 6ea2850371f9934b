"""The history search: DuckDB over the store's JSONL files, as they are.

:class:`Engine` answers the HTTP API's four questions (records, histogram,
facets, one record) and ``netlog query``'s.  Its design:

* **The files as they are.**  ``records.jsonl`` and its rotated files
  (:func:`netlog.store.writer.rotated_paths`, nothing else: no path a user
  gives ever reaches DuckDB, and symlinks are skipped) are read with
  ``read_ndjson_objects(..., ignore_errors=true)``: a torn or corrupt line,
  or one that is JSON but not an object, becomes a NULL row
  (:data:`netlog.store.compact.OBJECTS`), which is skipped and counted (``skipped`` in the
  histogram and facets), never an error for the whole query.  Measured on
  1M records, reading the raw line and extracting only what a term needs
  beat ``read_json``'s typed columns, and lets a term prefilter on the raw
  text (see :mod:`netlog.query.sql`).
* **Only the files a question needs.**  Each file's first and last
  ``received`` are read once (two small reads, cached by inode and size);
  files outside the time range are not opened by DuckDB, and the first page
  of records reads the newest file first and goes to older ones only while
  the page is not full (rotation keeps files in receive order), each next
  scan as large as the matches so far say the page still needs.
* **Bound.**  One in-process DuckDB database for the engine, ``threads``
  worker threads (default 2) and ``memory_limit`` (default 512MB) for all
  queries together; each call takes its own cursor, so calls from several
  threads are safe.  DuckDB runs outside the GIL, so a query on a worker
  thread does not stop the server's event loop.
  Compaction (:meth:`Engine.compact`, called only by the server) has a
  database of its own: 1 thread and 256 MB.
* **Parquet where it exists.**  A rotated file compacted by
  :mod:`netlog.store.compact` is read from its Parquet copy, the other files
  from their JSONL, in one ``UNION ALL`` query with the same columns and the
  same tests (:func:`netlog.query.sql.where` has a form for each); a page
  then reads the raw lines of its compacted matches alone, by row number.
  A missing, stale or unreadable Parquet file means the JSONL: a copy whose
  metadata does not match is never used, and one that fails a query is
  distrusted from then on (``parquet_failures``) and the query runs again.
* **The live file in segments.**  A file with no full Parquet copy (the
  live one, or one rotated since) is read as its chain of segments from
  byte 0 (:mod:`netlog.store.segments`) and its uncovered tail, read from
  a private temporary copy (DuckDB reads whole files only; deleted when the
  question is answered).  Each is a source of its own: a page reads the
  tail first and then the segments newest first, so a common word stops
  after a few MiB instead of the whole live file.  Groups are merged by
  ``(received, id)``, and an older group is skipped only when its newest
  ``received`` is before the page's end, so a time shared across a
  boundary orders as in one scan.
* **Parameters only.**  The SQL is built from parsed terms
  (:mod:`netlog.query.language`) with every value and JSON path bound.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

import duckdb
import orjson

from netlog.query.language import QueryError, parse_field, parse_query
from netlog.query.sql import LEVEL_RANK_MACRO, json_path, value, where
from netlog.query.times import stored_time
from netlog.record import ID_LENGTH, id_time
from netlog.store import compact, segments
from netlog.store.lines import complete_end
from netlog.store.reader import lines_backwards
from netlog.store.writer import FILE_NAME, rotated_paths

__all__ = ["MAX_BUCKETS", "MAX_LIMIT", "Engine", "QueryError"]

#: Most records one page may ask for.
MAX_LIMIT: Final = 1000
#: Most histogram buckets.
MAX_BUCKETS: Final = 1000
#: Most facet values.
MAX_TOP: Final = 100
#: The histogram's and facets' range when none is given: the last hour.
DEFAULT_RANGE: Final = 3600.0
#: Compaction's DuckDB (see :meth:`Engine.compact`): threads and memory, apart from the queries'.
COMPACT_THREADS: Final = 1
COMPACT_MEMORY: Final = "256MB"
#: The longest uncovered tail read from a copy; a longer one (segments not
#: written for a while: no query, so no compaction) means the whole file is
#: read as JSONL instead: copying it would cost more than the scan saves,
#: and the copy is in the temp dir (memory, where that is tmpfs).
_MAX_TAIL: Final = 4 * segments.SEGMENT_BYTES
#: Longest cursor accepted (a received time and an id, in base64).
_MAX_CURSOR: Final = 200
_SOURCE: Final = compact.OBJECTS
#: A compacted file (netlog.store.compact); ``filename`` and ``file_row_number``
#: let a page fetch the raw lines of its matches alone (see :meth:`Engine._fetch`).
_PARQUET: Final = "read_parquet(?, filename=true, file_row_number=true)"
#: A legacy line (written before ids) gets this id: stable, from its bytes.
_LEGACY_ID: Final = "coalesce(json->>'$.id', 'L' || substr(md5(json), 1, 25))"
_RECEIVED: Final = "coalesce(json->>'$.received', '')"
#: The upper bound when there is none: after every RFC 3339 time.
_OPEN_END: Final = "\uffff"


class _FileSpan:
    """A source of records: a store file, one of its segments or its uncovered tail.

    With its first and last ``received`` (text, as stored; ``""``: unknown)
    and, when compacted, the Parquet file to read instead of the JSONL.
    """

    __slots__ = ("copy", "first", "ino", "last", "parquet", "path", "segment", "size", "tail")

    def __init__(
        self,
        path: Path,
        first: str,
        last: str,
        parquet: Path | None = None,
        *,
        segment: tuple[str, int, int, int] | None = None,
        tail: int | None = None,
        ino: int = 0,
        size: int = 1,
    ) -> None:
        self.path = path
        self.size = max(1, size)
        """Its bytes of JSONL: how much of the store a scan of it covers."""
        self.first = first
        self.last = last
        self.parquet = parquet
        """The file's compacted copy (or this segment) when complete and current."""
        self.segment = segment
        """A segment's key in the engine's cache of checked segments."""
        self.tail = tail
        """The offset of the file (inode ``ino``) this source starts at: read from a copy."""
        self.ino = ino
        self.copy: Path | None = None
        """The private copy of the tail, made when a query first needs it."""


def _union(parts: Sequence[tuple[str, list[object]]]) -> tuple[str, list[object]]:
    """``UNION ALL`` of the non-empty branches (a branch is ``""`` when it has no files)."""
    sql = " UNION ALL ".join(f"({text})" for text, _ in parts if text)
    params = [p for text, branch in parts if text for p in branch]
    return sql, params


def _received_of(line: bytes) -> str | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    value = obj.get("received") if type(obj) is dict else None
    return value if type(value) is str else None


def _first_received(fd: int, end: int) -> str:
    position = 0
    while position < end:
        block = os.pread(fd, min(1 << 16, end - position), position)
        if not block:
            break
        for line in block.split(b"\n")[:-1]:
            found = _received_of(line)
            if found is not None:
                return found
        position += max(1, block.rfind(b"\n") + 1)
        if len(block) < (1 << 16):
            break
    return ""


def _last_received(fd: int, end: int) -> str:
    for count, line in enumerate(lines_backwards(fd, end)):
        found = _received_of(line)
        if found is not None:
            return found
        if count > 1000:
            break
    return _OPEN_END


class _FilesMovedError(Exception):
    """A listed file was gone when DuckDB opened it: list the store again."""


_T = TypeVar("_T")


def _again(run: Callable[[], _T]) -> _T:
    """``run()``, once more if the store's files moved under it; then a QueryError."""
    try:
        return run()
    except _FilesMovedError:
        pass
    try:
        return run()
    except _FilesMovedError:
        raise QueryError("the store's files kept changing during the query; try again") from None


def _next_group(rest: list[_FileSpan], found: int, want: int, scanned: int) -> list[_FileSpan]:
    """The next sources to scan for a page (taken from ``rest``, newest first).

    The first scan is the newest source alone: most pages are found there.
    Then as many bytes as the matches so far say the page still needs (a
    quarter more), or, with none yet, twice the bytes scanned so far: a
    common word stops after one or two scans, and a rare match that needs
    every file still costs few, each over several files that DuckDB spreads
    over its threads.
    """
    if not scanned:
        bytes_wanted = 1
    elif found:
        bytes_wanted = int(max(0, want - found) * scanned / found * 1.25)
    else:
        bytes_wanted = 2 * scanned
    group = [rest.pop(0)]
    total = group[0].size
    while rest and total < bytes_wanted:
        group.append(rest.pop(0))
        total += group[-1].size
    return group


def _page_is_full(
    found: Sequence[tuple[Any, str, str, Any, Any]], limit: int, group: Sequence[_FileSpan]
) -> bool:
    """Whether ``found`` (newest first) holds the page and the next one's first record for sure.

    The older ``group`` cannot change it when its newest ``received`` is
    before the ``limit + 1``-th record's (rotation and segments keep receive
    order); an equal one may sort before it by id, so that group is read.
    """
    if len(found) <= limit:
        return False
    newest = max((f.last or _OPEN_END for f in group), default=_OPEN_END)
    return newest < found[limit][1]


def _encode_cursor(received: str, record_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([received, record_id])).decode().rstrip("=")


def _decode_cursor(text: str) -> tuple[str, str]:
    bad = QueryError("before: not a cursor this server gave (use the 'next' of a page)")
    if not text or len(text) > _MAX_CURSOR or not text.isascii():
        raise bad
    try:
        value = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        raise bad from None
    if (
        type(value) is not list
        or len(value) != 2
        or not all(type(v) is str and len(v) <= 64 for v in value)
    ):
        raise bad
    return value[0], value[1]


class Engine:
    """Queries over one log dir's stored records; thread-safe, bounded (see the module)."""

    max_limit: Final = MAX_LIMIT
    """The most records one page may ask for."""

    def __init__(
        self,
        log_dir: Path,
        *,
        threads: int = 2,
        memory_limit: str = "512MB",
        use_parquet: bool = True,
        use_segments: bool = True,
    ) -> None:
        self.log_dir = Path(log_dir)
        self._db = duckdb.connect(
            ":memory:", config={"threads": threads, "memory_limit": memory_limit}
        )
        self._db.execute(LEVEL_RANK_MACRO)
        self._db.execute("SET enable_progress_bar = false")
        self._use_parquet = use_parquet
        self._use_segments = use_parquet and use_segments
        # A segment file checked (by its name and stat): what it covers, or None (unusable).
        self._segments: dict[tuple[str, int, int, int], segments.Segment | None] = {}
        # The tail copies the current question on this thread made (deleted after it).
        self._local = threading.local()
        self.tail_copy_failed = False
        """A tail could not be copied to the temp dir: segments are not read from then on."""
        self._compact_db: duckdb.DuckDBPyConnection | None = None
        self._spans: dict[tuple[str, int, int, int], tuple[str, str]] = {}
        # A Parquet file checked (by its JSONL's key and its own stat): usable or not.
        self._checked: dict[tuple[tuple[str, int, int, int], int, int, int], bool] = {}
        self.parquet_failures = 0
        """Parquet files a query could not read (each then read as JSONL), in total."""
        self.compact_failures = 0
        """Files (rotated, or the live file's segments) a compaction pass could not
        compact (the JSONL then serves), in total."""
        self._lock = threading.Lock()
        self.skipped = 0
        """Lines found not to be JSON records by the scans that count them, in total."""

    def close(self) -> None:
        """Release DuckDB's memory and threads."""
        with contextlib.suppress(Exception):
            self._db.close()
        if self._compact_db is not None:
            with contextlib.suppress(Exception):
                self._compact_db.close()

    # -- the files --------------------------------------------------------

    def _files(self) -> list[_FileSpan]:
        """The store's sources oldest first, each with its first and last ``received``.

        A file without its full Parquet copy but with segments
        (:mod:`netlog.store.segments`) is its usable segments and then its
        uncovered tail.
        """
        out: list[_FileSpan] = []
        seen = set()
        use = self._use_segments and not self.tail_copy_failed
        listing = segments.listed(self.log_dir) if use else {}
        for path in rotated_paths(self.log_dir):
            if path.is_symlink():
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue  # rotated away or unreadable since listing
            try:
                st = os.fstat(fd)
                key = (path.name, st.st_ino, st.st_size, st.st_mtime_ns)
                seen.add(key)
                span = self._spans.get(key)
                if span is None:
                    end = complete_end(fd)
                    span = (_first_received(fd, end), _last_received(fd, end))
                    with self._lock:
                        self._spans[key] = span
                parquet = self._parquet_of(path, st, key) if self._use_parquet else None
                pieces = [] if parquet else self._segments_of(fd, st, listing.get(st.st_ino, []))
            finally:
                os.close(fd)
            if pieces and st.st_size - pieces[-1][0].end > _MAX_TAIL:
                pieces = []
            if not pieces:
                out.append(_FileSpan(path, *span, parquet, size=st.st_size))
                continue
            for seg, seg_key in pieces:
                piece = _FileSpan(path, seg.first, seg.last, seg.path, segment=seg_key)
                piece.size = seg.end - seg.start
                out.append(piece)
            covered = pieces[-1][0].end
            if covered < st.st_size:
                size = st.st_size - covered
                out.append(_FileSpan(path, "", span[1], tail=covered, ino=st.st_ino, size=size))
        names = {segment.name for paths in listing.values() for segment in paths}
        with self._lock:
            for key in [k for k in self._spans if k not in seen]:
                del self._spans[key]
            for checked in [k for k in self._checked if k[0] not in seen]:
                del self._checked[checked]
            for gone in [k for k in self._segments if k[0] not in names]:
                del self._segments[gone]
        return out

    def _segments_of(
        self, fd: int, st: os.stat_result, paths: list[Path]
    ) -> list[tuple[segments.Segment, tuple[str, int, int, int]]]:
        """The usable chain of the file open as ``fd`` among ``paths`` (metadata read once)."""
        found = []
        for path in paths:
            try:
                sst = path.stat(follow_symlinks=False)
            except OSError:
                continue
            segment_key = (path.name, sst.st_ino, sst.st_size, sst.st_mtime_ns)
            if segment_key not in self._segments:
                cursor = self._cursor()
                try:
                    read = segments.read(cursor, path)
                finally:
                    cursor.close()
                with self._lock:
                    self._segments[segment_key] = read
            segment = self._segments.get(segment_key)
            if segment is not None:
                found.append((segment, segment_key))
        keys = {s.path: k for s, k in found}
        return [(s, keys[s.path]) for s in segments.chain(fd, st, [s for s, _ in found])]

    def _split(self, files: Sequence[_FileSpan]) -> tuple[list[str], list[str]]:
        """The Parquet files and the JSONL files to read for ``files`` (tails: their copies)."""
        parquet = [str(f.parquet) for f in files if f.parquet is not None]
        jsonl = [str(self._jsonl_of(f)) for f in files if f.parquet is None]
        return parquet, jsonl

    def _jsonl_of(self, span: _FileSpan) -> Path:
        """The JSONL to read for ``span``: its file, or a private copy of its tail."""
        if span.tail is None:
            return span.path
        if span.copy is None:
            temps: list[Path] | None = getattr(self._local, "temps", None)
            if temps is None:
                raise RuntimeError("a tail is read only within a question")
            try:
                fd = os.open(span.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                raise _FilesMovedError from None
            try:
                if os.fstat(fd).st_ino != span.ino:
                    raise _FilesMovedError  # rotated since listing: list again
                try:
                    span.copy = segments.copy_range(fd, span.tail)
                except OSError:
                    # No room or no temp dir: read whole files, as without segments.
                    self.tail_copy_failed = True
                    raise _FilesMovedError from None
                temps.append(span.copy)
            finally:
                os.close(fd)
        return span.copy

    def _question(self, run: Callable[[], _T]) -> _T:
        """``run()`` (once more if the files moved), then delete the tail copies it made."""
        temps: list[Path] = []
        self._local.temps = temps
        try:
            return _again(run)
        finally:
            self._local.temps = None
            for path in temps:
                with contextlib.suppress(OSError):
                    path.unlink()

    def _parquet_of(
        self, path: Path, st: os.stat_result, key: tuple[str, int, int, int]
    ) -> Path | None:
        """``path``'s Parquet file if complete and current (its metadata read once)."""
        target = compact.parquet_path(path)
        try:
            pst = target.stat(follow_symlinks=False)
        except OSError:
            return None
        checked_key = (key, pst.st_ino, pst.st_size, pst.st_mtime_ns)
        good = self._checked.get(checked_key)
        if good is None:
            cursor = self._cursor()
            try:
                good = compact.usable(cursor, path, st) is not None
            finally:
                cursor.close()
            with self._lock:
                self._checked[checked_key] = good
        return target if good else None

    def _distrust(self, files: Sequence[_FileSpan]) -> None:
        """A query over these files' Parquet failed: read their JSONL from now on."""
        with self._lock:
            for f in files:
                if f.segment is not None and self._segments.get(f.segment) is not None:
                    self._segments[f.segment] = None
                    self.parquet_failures += 1
            for checked in self._checked:
                if (
                    any(f.parquet is not None and checked[0][0] == f.path.name for f in files)
                    and self._checked[checked]
                ):
                    self._checked[checked] = False
                    self.parquet_failures += 1

    def compact(
        self, limit: int | None = None, segment_bytes: int = segments.SEGMENT_BYTES
    ) -> list[Path]:
        """Write the live file's missing segments, then compact the rotated files, newest first.

        The rotated files that have no usable Parquet file yet, at most
        ``limit`` of them (all when None); the live file's whole lines not
        yet in a segment, ``segment_bytes`` a segment at least
        (:mod:`netlog.store.segments`).  The Parquet files written.  Only
        the process that writes the log dir should call this (see
        :mod:`netlog.store.compact`): it also deletes stale temporaries and
        the segments nothing reads any more.
        """
        compact.remove_temporaries(self.log_dir)
        compact.remove_orphans(self.log_dir)
        with self._lock:
            if self._compact_db is None:
                # Its own database: one thread (a core stays free for the
                # server's event loop on a 2-core machine), its own memory cap.
                self._compact_db = duckdb.connect(
                    ":memory:",
                    config={"threads": COMPACT_THREADS, "memory_limit": COMPACT_MEMORY},
                )
                self._compact_db.execute("SET enable_progress_bar = false")
            cursor = self._compact_db.cursor()
        written: list[Path] = []
        try:
            live = self.log_dir / FILE_NAME
            if not live.is_symlink():
                # First: the newest records, and a segment costs little.
                written += self._attempt(lambda: segments.extend(cursor, live, segment_bytes))

            def rotated(path: Path) -> list[Path]:
                done = compact.compact(cursor, path)
                return [done] if done is not None else []

            for path in compact.pending(cursor, rotated_paths(self.log_dir))[:limit]:
                written += self._attempt(partial(rotated, path))
            with contextlib.suppress(OSError, duckdb.Error):
                segments.remove_stale(cursor, self.log_dir)  # the next pass tries again
        finally:
            cursor.close()
        return written

    def _attempt(self, job: Callable[[], list[Path]]) -> list[Path]:
        """``job()``'s Parquet files; a failure is counted and the JSONL serves.

        Unreadable, no room, out of memory: counted
        (``netlog_compaction_failures_total``) and tried again next pass; a
        file rotated away meanwhile is no failure.
        """
        try:
            return job()
        except FileNotFoundError:
            return []
        except (OSError, duckdb.Error):
            with self._lock:
                self.compact_failures += 1
            return []

    @staticmethod
    def _in_range(files: Sequence[_FileSpan], low: str, high: str) -> list[_FileSpan]:
        """Files that may hold a ``received`` in ``[low, high)``."""
        return [
            f for f in files if (not f.last or f.last >= low) and (not f.first or f.first < high)
        ]

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = self._db.cursor()
        cursor.execute(LEVEL_RANK_MACRO)
        cursor.execute("SET enable_progress_bar = false")
        return cursor

    # -- the questions ----------------------------------------------------
    # Each runs once more when a file went away between listing the store
    # and DuckDB opening it (a rotation pruned a backup, --max-age).

    def records(
        self,
        q: str = "",
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> dict[str, Any]:
        """A page of matching records, newest first, and the cursor of the next (older) page.

        ``{"records": [...], "next": cursor or None}``; each record as stored,
        with its ``id``.  ``before`` is a previous page's ``next``: pages go on
        to the oldest record without skipping or repeating one, even while
        records arrive.
        """
        return self._question(lambda: self._records(q, since, until, limit, before))

    def count(self, q: str = "", since: float | None = None, until: float | None = None) -> int:
        """How many records match."""
        return self._question(lambda: self._count(q, since, until))

    def histogram(
        self,
        q: str = "",
        since: float | None = None,
        until: float | None = None,
        buckets: int = 60,
    ) -> dict[str, Any]:
        """``{"buckets": [{"start", "end", "counts": {level: n}}], "skipped": n}``.

        Equal buckets over the range (default: the last hour), counted by
        ``received``; ``skipped`` counts the lines in the range's files that
        were not JSON records.
        """
        return self._question(lambda: self._histogram(q, since, until, buckets))

    def facets(
        self,
        q: str = "",
        since: float | None = None,
        until: float | None = None,
        field: str = "level",
        top: int = 10,
    ) -> dict[str, Any]:
        """``{"field", "values": [{"value", "count"}], "other"}``; range default: the last hour."""
        return self._question(lambda: self._facets(q, since, until, field, top))

    def record(self, record_id: str) -> dict[str, Any] | None:
        """The record with this id, or None."""
        return self._question(lambda: self._record(record_id))

    def _records(
        self,
        q: str = "",
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> dict[str, Any]:
        """A page of matching records, newest first, and the cursor of the next (older) page.

        One query over the Parquet and the JSONL files of each group; a
        compacted file's matches give their file and row, and only their raw
        lines are read afterwards (:meth:`_fetch`): the ``json`` column is
        most of a file, and scanning it for every row cost more than the
        search itself (measured).
        """
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise QueryError(f"limit must be between 1 and {MAX_LIMIT}")
        terms = parse_query(q)
        low, high = self._range(since, until, default=None)
        after: tuple[str, str] | None = _decode_cursor(before) if before is not None else None
        files = self._in_range(self._files(), low, high)
        found: list[tuple[str | None, str, str, str | None, int | None]] = []
        bounds: list[object] = []
        outer = ""
        if low:
            outer += "AND r >= ? "
            bounds.append(low)
        if high != _OPEN_END:
            outer += "AND r < ? "
            bounds.append(high)
        if after is not None:
            outer += "AND (r < ? OR (r = ? AND i < ?)) "
            bounds += [after[0], after[0], after[1]]
            files = [f for f in files if not (f.first and f.first > after[0])]
        rest = list(reversed(files))
        scanned = 0
        while rest:
            group = _next_group(rest, len(found), limit + 1, scanned)
            scanned += sum(f.size for f in group)
            if _page_is_full(found, limit, group):
                continue
            branches = self._record_branches(group, terms, low)
            sql = f"SELECT json, r, i, src, pos FROM ({branches[0]}) WHERE TRUE {outer}"
            sql += "ORDER BY r DESC, i DESC LIMIT ?"
            found += self._all(sql, [*branches[1], *bounds, limit + 1], group)
            # Newest first across groups too: a received time shared across a
            # boundary (a file's, a segment's) is ordered by id as in one scan.
            found.sort(key=lambda row: (row[1], row[2]), reverse=True)
            del found[limit + 1 :]
        page = self._fetch(found[:limit], files)
        records = []
        for text, (_json, received, record_id, _src, _pos) in zip(page, found, strict=False):
            obj = orjson.loads(text)
            obj.setdefault("id", record_id)
            records.append(obj)
            del received
        more = len(found) > limit
        last = found[limit - 1] if more else None
        next_cursor = _encode_cursor(last[1], last[2]) if last is not None else None
        return {"records": records, "next": next_cursor}

    def _record_branches(
        self, group: Sequence[_FileSpan], terms: list[Any], low: str
    ) -> tuple[str, list[object]]:
        """The page query's two sources: ``json, r, i, src, pos`` from Parquet and JSONL."""
        parquet, jsonl = self._split(group)
        pq_sql = jl_sql = ""
        pq_params: list[object] = []
        jl_params: list[object] = []
        if parquet:
            condition, params = where(terms, columns=True)
            pq_sql = (
                "SELECT NULL::VARCHAR AS json, coalesce(received, '') AS r, rid AS i, "
                f"filename AS src, file_row_number AS pos FROM {_PARQUET} "
                f"WHERE NOT bad AND {condition}"
            )
            pq_params = [parquet, *params]
            if low:  # also a row-group filter: the rows are in receive order
                pq_sql += " AND received >= ?"
                pq_params.append(low)
        if jsonl:
            condition, params = where(terms)
            jl_sql = (
                "SELECT json, coalesce(v[1], '') AS r, "
                "coalesce(v[2], 'L' || substr(md5(json), 1, 25)) AS i, "
                "NULL::VARCHAR AS src, NULL::BIGINT AS pos "
                "FROM (SELECT json, json_extract_string(json, ['$.received', '$.id']) AS v "
                f"FROM {_SOURCE} WHERE json IS NOT NULL AND {condition})"
            )
            jl_params = [jsonl, *params]
        return _union([(pq_sql, pq_params), (jl_sql, jl_params)])

    def _fetch(
        self,
        rows: Sequence[tuple[str | None, str, str, str | None, int | None]],
        files: Sequence[_FileSpan],
    ) -> list[str]:
        """Each row's raw line: as found (JSONL) or read from its Parquet file by row number."""
        wanted: dict[str, list[int]] = {}
        for text, _r, _i, src, pos in rows:
            if text is None and src is not None and pos is not None:
                wanted.setdefault(src, []).append(pos)
        lines: dict[tuple[str, int], str] = {}
        # One query for all the files (a page's matches are often in several
        # segments): one round trip, and DuckDB spreads the branches over its threads.
        parts: list[tuple[str, list[object]]] = [
            (
                (
                    "SELECT ?::VARCHAR AS src, file_row_number, json "
                    "FROM read_parquet(?, file_row_number=true) "
                    "WHERE file_row_number = ANY(?::BIGINT[])"
                ),
                [src, src, positions],
            )
            for src, positions in wanted.items()
        ]
        if parts:
            span = [f for f in files if f.parquet is not None and str(f.parquet) in wanted]
            union, params = _union(parts)
            for src, pos, text in self._all(union, params, span):
                lines[src, int(pos)] = text
        out = []
        for text, _r, _i, src, pos in rows:
            line = text if text is not None else lines.get((str(src), int(pos or 0)))
            if line is None:
                raise _FilesMovedError  # the Parquet file changed under the page
            out.append(line)
        return out

    def _count(self, q: str = "", since: float | None = None, until: float | None = None) -> int:
        """How many records match."""
        terms = parse_query(q)
        low, high = self._range(since, until, default=None)
        files = self._in_range(self._files(), low, high)
        if not files:
            return 0
        parquet, jsonl = self._split(files)
        parts = []
        if parquet:
            condition, params = where(terms, columns=True)
            sql = f"SELECT 1 FROM read_parquet(?) WHERE NOT bad AND {condition}"
            sql, bounds = self._bounded(sql, low, high, "coalesce(received, '')")
            parts.append((sql, [parquet, *params, *bounds]))
        if jsonl:
            condition, params = where(terms)
            sql = f"SELECT 1 FROM {_SOURCE} WHERE json IS NOT NULL AND {condition}"
            sql, bounds = self._bounded(sql, low, high, _RECEIVED)
            parts.append((sql, [jsonl, *params, *bounds]))
        union, params = _union(parts)
        row = self._one(f"SELECT count(*) FROM ({union})", params, files)
        return int(row[0]) if row else 0

    def _histogram(
        self,
        q: str = "",
        since: float | None = None,
        until: float | None = None,
        buckets: int = 60,
    ) -> dict[str, Any]:
        """Counts per level in ``buckets`` equal slices of the range (default: the last hour)."""
        if not isinstance(buckets, int) or not 1 <= buckets <= MAX_BUCKETS:
            raise QueryError(f"buckets must be between 1 and {MAX_BUCKETS}")
        start, end = self._bounds(since, until)
        low, high = stored_time(start), stored_time(end)
        width = (end - start) / buckets
        terms = parse_query(q)
        files = self._in_range(self._files(), low, high)
        counts: list[dict[str, int]] = [{} for _ in range(buckets)]
        skipped = 0
        if files:
            parquet, jsonl = self._split(files)
            parts = []
            if parquet:
                condition, params = where(terms, columns=True)
                parts.append(
                    (
                        (
                            "SELECT received AS rc, level AS lv, bad FROM read_parquet(?) "
                            f"WHERE bad OR ({condition})"
                        ),
                        [parquet, *params],
                    )
                )
            if jsonl:
                # One parse per line for both keys (each ->> would parse it again).
                condition, params = where(terms)
                parts.append(
                    (
                        (
                            "SELECT v[1] AS rc, v[2] AS lv, bad FROM (SELECT "
                            "json_extract_string(json, ['$.received', '$.level']) AS v, "
                            f"json IS NULL AS bad FROM {_SOURCE} "
                            f"WHERE json IS NULL OR ({condition}))"
                        ),
                        [jsonl, *params],
                    )
                )
            union, params = _union(parts)
            # Out of range is bucket -2, not a WHERE (see facets).
            sql = (
                "SELECT CASE WHEN bad THEN -1 WHEN NOT (rc >= ? AND rc < ?) THEN -2 "
                "ELSE least(greatest(CAST(floor(("
                "epoch(TRY_CAST(rc AS TIMESTAMP)) - ?) / ?) AS BIGINT), 0), ?) END AS b, "
                f"coalesce(lv, '') AS l, count(*) FROM ({union}) GROUP BY b, l"
            )
            for bucket, level, count in self._all(
                sql, [low, high, start, width, buckets - 1, *params], files
            ):
                if bucket is None:
                    continue
                if bucket < 0:
                    skipped += int(count) if bucket == -1 else 0
                    continue
                slot = counts[int(bucket)]
                slot[level] = slot.get(level, 0) + int(count)
        self.skipped += skipped
        return {
            "buckets": [
                {
                    "start": stored_time(start + i * width),
                    "end": stored_time(start + (i + 1) * width),
                    "counts": counts[i],
                }
                for i in range(buckets)
            ],
            "skipped": skipped,
        }

    def _facets(
        self,
        q: str = "",
        since: float | None = None,
        until: float | None = None,
        field: str = "level",
        top: int = 10,
    ) -> dict[str, Any]:
        """The ``top`` commonest values of ``field`` among matching records, ``other`` the rest."""
        if not isinstance(top, int) or not 1 <= top <= MAX_TOP:
            raise QueryError(f"top must be between 1 and {MAX_TOP}")
        key = parse_field(field)
        start, end = self._bounds(since, until)
        low, high = stored_time(start), stored_time(end)
        terms = parse_query(q)
        files = self._in_range(self._files(), low, high)
        values: list[dict[str, Any]] = []
        other = 0
        if files:
            parquet, jsonl = self._split(files)
            parts = []
            if parquet:
                column_params: list[object] = []
                extracted = value(key, column_params, columns=True)
                condition, params = where(terms, columns=True)
                parts.append(
                    (
                        (
                            f"SELECT {extracted} AS value, received AS rc FROM read_parquet(?) "
                            f"WHERE NOT bad AND {condition}"
                        ),
                        [*column_params, parquet, *params],
                    )
                )
            if jsonl:
                condition, params = where(terms)
                parts.append(
                    (
                        (
                            "SELECT v[1] AS value, v[2] AS rc FROM ("
                            "SELECT json_extract_string(json, [?, '$.received']) AS v "
                            f"FROM {_SOURCE} WHERE json IS NOT NULL AND {condition})"
                        ),
                        [json_path(key), jsonl, *params],
                    )
                )
            union, params = _union(parts)
            # The range test is a group key, not a WHERE: DuckDB would push a
            # filter on v down into the scan and extract the JSON twice.
            sql = (
                "SELECT value, rc >= ? AND rc < ? AS inside, count(*) AS n "
                f"FROM ({union}) GROUP BY value, inside"
            )
            found = self._all(sql, [low, high, *params], files)
            rows = sorted(
                ((value, count) for value, inside, count in found if inside and value is not None),
                key=lambda row: (-row[1], row[0]),
            )
            values = [{"value": value, "count": int(count)} for value, count in rows[:top]]
            other = sum(int(count) for _, count in rows[top:])
        return {"field": field, "values": values, "other": other}

    def _record(self, record_id: str) -> dict[str, Any] | None:
        """The record with this id, or None."""
        if not (isinstance(record_id, str) and len(record_id) == ID_LENGTH and record_id.isalnum()):
            return None
        files = self._files()
        when = id_time(record_id)
        if when is not None:
            # The id spells its receive time: only files around it (a second's slack).
            near = self._in_range(files, stored_time(when - 1), stored_time(when + 1))
            files = near or files
        if not files:
            return None
        row = self._find_id(files, record_id)
        if row is None and when is not None:
            every = self._files()
            if len(files) != len(every):
                row = self._find_id(every, record_id)
        if row is None:
            return None
        obj: dict[str, Any] = orjson.loads(row[0])
        obj.setdefault("id", row[1])
        return obj

    def _find_id(self, files: Sequence[_FileSpan], record_id: str) -> Any:
        """``(line, id)`` of the record with this id in ``files``, or None."""
        parquet, jsonl = self._split(files)
        legacy = record_id.startswith("L")
        parts: list[tuple[str, list[object]]] = []
        if parquet:
            # rid is in receive order too: its min/max prune the row groups.
            parts.append(
                ("SELECT json, rid AS i FROM read_parquet(?) WHERE rid = ?", [parquet, record_id])
            )
        if jsonl:
            parts.append(
                (
                    (
                        f"SELECT json, {_LEGACY_ID} AS i FROM {_SOURCE} "
                        "WHERE json IS NOT NULL AND contains(json, ?) AND i = ?"
                    ),
                    [jsonl, "" if legacy else record_id, record_id],
                )
            )
        union, params = _union(parts)
        return self._one(f"SELECT json, i FROM ({union}) LIMIT 1", params, files)

    # -- helpers ----------------------------------------------------------

    @staticmethod
    def _bounds(since: float | None, until: float | None) -> tuple[float, float]:
        """The histogram's and facets' range: as given, else the last hour before ``until``."""
        end = time.time() if until is None else until
        start = end - DEFAULT_RANGE if since is None else since
        for bound in (start, end):
            if not math.isfinite(bound):
                raise QueryError("since and until must be finite times")
        if start >= end:
            raise QueryError("since must be before until")
        return start, end

    @staticmethod
    def _range(since: float | None, until: float | None, *, default: None) -> tuple[str, str]:
        """``received`` text bounds ``[low, high)``; open ends when not given."""
        del default
        if since is not None and until is not None and since >= until:
            raise QueryError("since must be before until")
        for bound in (since, until):
            if bound is not None and not math.isfinite(bound):
                raise QueryError("since and until must be finite times")
        low = stored_time(since) if since is not None else ""
        high = stored_time(until) if until is not None else _OPEN_END
        return low, high

    @staticmethod
    def _bounded(sql: str, low: str, high: str, received: str) -> tuple[str, list[object]]:
        """``sql`` with the range conditions a bound needs (none when open: no parsing)."""
        bounds: list[object] = []
        if low:
            sql += f" AND {received} >= ?"
            bounds.append(low)
        if high != _OPEN_END:
            sql += f" AND {received} < ?"
            bounds.append(high)
        return sql, bounds

    def _all(self, sql: str, params: list[object], files: Sequence[_FileSpan]) -> list[Any]:
        """The rows of ``sql``; a failure over Parquet files falls back to their JSONL."""
        cursor = self._cursor()
        try:
            return cursor.execute(sql, params).fetchall()
        except duckdb.Error as exc:
            if any(f.parquet is not None for f in files):
                if all(
                    f.path.exists() and f.parquet and f.parquet.exists() for f in files if f.parquet
                ):
                    self._distrust(files)  # corrupt: read these files' JSONL instead
                raise _FilesMovedError from None
            if isinstance(exc, duckdb.IOException):
                raise _FilesMovedError from None
            raise QueryError(f"the query could not run: {exc}") from None
        finally:
            cursor.close()

    def _one(self, sql: str, params: list[object], files: Sequence[_FileSpan]) -> Any:
        rows = self._all(sql, params, files)
        return rows[0] if rows else None
