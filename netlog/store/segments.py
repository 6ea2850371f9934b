"""Parquet segments of the live file: so a search reads little of ``records.jsonl``.

A rotated file gets one Parquet copy (:mod:`netlog.store.compact`), but the
live file is appended to until it rotates (100 MiB by default), and a search
read it whole as JSONL: a common word's first page cost a full scan of up to
100 MiB (0.2-0.3 s) although its 100 matches sit in the last few MiB.  So the
live file's complete lines are also compacted, in contiguous byte ranges:

* **Segments, not one copy.**  Segment *i* covers ``[start, end)`` of the
  file, ``end`` at a line boundary, each written once :data:`SEGMENT_BYTES`
  of whole lines are not yet covered; a line is never rewritten, so a
  segment never goes stale while the file grows.  The engine reads the
  chain of segments from byte 0 (stopping at the first gap) and only the
  uncovered tail as JSONL, and a first page takes the tail and the
  segments newest first, like files, so a common word stops after the
  tail and a segment or two.
* **Why 8 MiB.**  Small enough that the uncovered tail (at most one
  segment plus what arrived since the last pass) and the one or two
  segments a common word's page reads stay a few MiB; large enough that a
  100 MiB file is a dozen segments (each is one more source in a query and
  one metadata read, cached) and a segment's row groups are full.
  Measured (1.2M records, a 95 MiB live file, a common word's first page
  on an open engine, before LZ4): 2 and 4 MiB were no faster than 8 (0.12-
  0.14 s each way under load); figures with 8 MiB in BENCHMARKS.md.
* **A temporary copy of the range.**  DuckDB reads a whole file, never a
  byte range, so the range is copied to a private temporary file
  (:func:`copy_range`: the system temp dir, mode 0600, deleted after) and
  read through the same :data:`~netlog.store.compact.OBJECTS` source and
  written by the same :func:`~netlog.store.compact.write` (temporary name,
  fsync, rename) as a rotated file's copy: the same columns, the same
  skipped lines.  The engine reads the uncovered tail the same way.
* **Named by inode.**  ``records.jsonl.seg-<inode>-<start>.parquet``: a
  rotation renames the file but keeps its inode, so its segments serve the
  rotated file until its full Parquet copy exists; no store reader
  (:func:`netlog.store.writer.rotated_paths`: digits only) mistakes one for
  a store file.  Each names its file's inode, ``start``, ``end`` and a
  digest of the bytes just before ``end`` in its key-value metadata; one
  that does not match its file (replaced, truncated, a reused inode) is
  never used, and :func:`remove_stale` deletes it, and the segments of a
  file gone or fully compacted.

Only the process that writes the log dir writes segments (the server's
compaction thread); readers only read them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from netlog.store import compact
from netlog.store.lines import BLOCK, complete_end
from netlog.store.writer import FILE_NAME, rotated_paths

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "MARK",
    "SEGMENT_BYTES",
    "Segment",
    "chain",
    "copy_range",
    "extend",
    "listed",
    "read",
    "remove_stale",
    "segment_path",
]

#: Whole lines a segment covers at least (see the module: why this size).
SEGMENT_BYTES: Final = 8 << 20
#: Faster to read than the rotated files' zstd (measured on 5 segments, a
#: common word: the search 15 ms against 26, reading the page's lines back
#: 32 ms against 50), for 1.8x the size (72% of the JSONL against 40%): a
#: segment is read by nearly every first page and lives only until its
#: file, rotated, has its full (zstd) copy.
COMPRESSION: Final = "lz4"
#: Between ``records.jsonl`` and a segment's inode and start.
MARK: Final = ".seg-"
#: The bytes before a segment's end whose digest it keeps (a reused inode or
#: a rewritten file is told apart by them).
CHECK_BYTES: Final = 4096
#: Marks a segment this module wrote (and its metadata's layout).
_VERSION: Final = "1"
_START_WIDTH: Final = 16


@dataclass(frozen=True)
class Segment:
    """A segment file and what its metadata says: whose bytes, which, and their times."""

    path: Path
    ino: int
    start: int
    end: int
    check: str
    """MD5 (hex) of the ``CHECK_BYTES`` before ``end`` (fewer when the segment is shorter)."""
    first: str
    """The least ``received`` in it (text as stored), ``""`` when none."""
    last: str
    """The greatest ``received`` in it, ``""`` when none."""


def segment_path(directory: Path, ino: int, start: int) -> Path:
    """Where the segment of the file with inode ``ino`` starting at ``start`` lives."""
    return directory / f"{FILE_NAME}{MARK}{ino}-{start:0{_START_WIDTH}d}{compact.SUFFIX}"


def _name_key(name: str) -> tuple[int, int] | None:
    """``(inode, start)`` of a segment's name; None for any other name (a temporary too)."""
    middle = name.removeprefix(FILE_NAME + MARK).removesuffix(compact.SUFFIX)
    if len(middle) >= len(name) - len(compact.SUFFIX) or not name.endswith(compact.SUFFIX):
        return None
    ino, _, start = middle.partition("-")
    if not (ino.isascii() and ino.isdigit() and start.isascii() and start.isdigit()):
        return None
    return int(ino), int(start)


def listed(directory: Path) -> dict[int, list[Path]]:
    """The segment files in ``directory`` by inode, each inode's by start."""
    found: dict[int, list[tuple[int, Path]]] = {}
    for path in directory.glob(f"{FILE_NAME}{MARK}*{compact.SUFFIX}"):
        key = _name_key(path.name)
        if key is not None and not path.is_symlink():
            found.setdefault(key[0], []).append((key[1], path))
    return {ino: [p for _, p in sorted(paths)] for ino, paths in found.items()}


def read(db: duckdb.DuckDBPyConnection, path: Path) -> Segment | None:
    """The segment at ``path`` as its metadata says; None when it is not a readable one of ours."""
    import duckdb  # noqa: PLC0415 - only callers that already hold a connection get here

    key = _name_key(path.name)
    if key is None:
        return None
    try:
        rows = db.execute("SELECT key, value FROM parquet_kv_metadata(?)", [str(path)]).fetchall()
        times = db.execute(
            "SELECT min(stats_min_value), max(stats_max_value) FROM parquet_metadata(?) "
            "WHERE path_in_schema = 'received'",
            [str(path)],
        ).fetchone()
    except duckdb.Error:
        return None  # not Parquet, truncated, or gone
    meta = {bytes(k).decode(errors="replace"): bytes(v).decode(errors="replace") for k, v in rows}
    if meta.get("netlog_segment") != _VERSION:
        return None
    try:
        ino, start, end = (int(meta[k]) for k in ("source_ino", "start", "end"))
    except (KeyError, ValueError):
        return None
    if (ino, start) != key or end <= start:
        return None
    first, last = times if times is not None else (None, None)
    return Segment(path, ino, start, end, meta.get("check", ""), first or "", last or "")


def _digest(fd: int, start: int, end: int) -> str:
    """MD5 of the ``CHECK_BYTES`` of ``fd`` before ``end`` (not before ``start``)."""
    begin = max(start, end - CHECK_BYTES)
    data = os.pread(fd, end - begin, begin)
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def chain(fd: int, st: os.stat_result, found: Sequence[Segment]) -> list[Segment]:
    """The usable segments of the file open as ``fd`` (stat ``st``): contiguous from byte 0.

    Each must name this inode, end within the file, at a newline, after
    bytes with its digest; the chain stops at the first gap or mismatch.
    """
    out: list[Segment] = []
    position = 0
    for segment in sorted(found, key=lambda s: s.start):
        if segment.start != position:
            break
        if segment.ino != st.st_ino or segment.end > st.st_size:
            break
        if os.pread(fd, 1, segment.end - 1) != b"\n":
            break
        if _digest(fd, segment.start, segment.end) != segment.check:
            break
        out.append(segment)
        position = segment.end
    return out


def copy_range(fd: int, start: int, end: int | None = None) -> Path:
    """A private temporary file holding ``fd``'s bytes ``[start, end)`` (to its end when None).

    In the system temp dir, mode 0600; the caller deletes it.  DuckDB reads
    only whole files (see the module).
    """
    out_fd, name = tempfile.mkstemp(prefix="netlog-range-", suffix=".jsonl")
    try:
        stop = os.fstat(fd).st_size if end is None else end
        offset = start
        while offset < stop:
            try:
                count = os.copy_file_range(fd, out_fd, stop - offset, offset)
            except OSError:
                data = os.pread(fd, min(BLOCK * 16, stop - offset), offset)
                count = os.write(out_fd, data) if data else 0
            if count <= 0:
                break  # the file is shorter than asked (truncated meanwhile)
            offset += count
    except BaseException:
        os.close(out_fd)
        Path(name).unlink(missing_ok=True)
        raise
    os.close(out_fd)
    return Path(name)


def _boundary(fd: int, position: int, end: int) -> int:
    """Just past the first newline at or after ``position - 1`` (``end``, a boundary, at most)."""
    offset = max(0, position - 1)
    while offset < end:
        block = os.pread(fd, min(BLOCK, end - offset), offset)
        newline = block.find(b"\n")
        if newline >= 0:
            return offset + newline + 1
        if not block:
            break
        offset += len(block)
    return end


def _write(
    db: duckdb.DuckDBPyConnection, fd: int, st: os.stat_result, span: tuple[int, int], at: Path
) -> Path:
    start, end = span
    target = segment_path(at, st.st_ino, start)
    source = copy_range(fd, start, end)
    metadata = {
        "netlog_segment": _VERSION,
        "source_ino": str(st.st_ino),
        "start": str(start),
        "end": str(end),
        "check": _digest(fd, start, end),
    }
    try:
        compact.write(db, source, target, metadata, compression=COMPRESSION)
    finally:
        source.unlink(missing_ok=True)
    return target


def extend(
    db: duckdb.DuckDBPyConnection, jsonl: Path, segment_bytes: int = SEGMENT_BYTES
) -> list[Path]:
    """Write the segments ``jsonl``'s whole lines lack (each ``segment_bytes`` at least).

    Raises ``OSError`` or ``duckdb.Error``; a segment is whole or absent.
    """
    fd = os.open(jsonl, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    written: list[Path] = []
    try:
        st = os.fstat(fd)
        have = [read(db, p) for p in listed(jsonl.parent).get(st.st_ino, [])]
        done = chain(fd, st, [s for s in have if s is not None])
        covered = done[-1].end if done else 0
        end = complete_end(fd)
        while end - covered >= segment_bytes:
            cut = _boundary(fd, covered + segment_bytes, end)
            written.append(_write(db, fd, st, (covered, cut), jsonl.parent))
            covered = cut
    finally:
        os.close(fd)
    return written


def remove_stale(db: duckdb.DuckDBPyConnection, directory: Path) -> int:
    """Delete the segments nothing will read again; how many.

    A segment goes when no store file has its inode (rotated away and
    pruned, or replaced), when that file has its full Parquet copy, and when
    it is not in the file's chain (mismatched or after a gap).
    """
    files: dict[int, Path] = {}
    for path in rotated_paths(directory):
        with contextlib.suppress(OSError):
            files[path.stat(follow_symlinks=False).st_ino] = path
    removed = 0
    for ino, paths in listed(directory).items():
        keep: set[Path] = set()
        source = files.get(ino)
        if source is not None and not source.is_symlink():
            keep = _kept(db, source, paths)
        for segment in paths:
            if segment not in keep:
                with contextlib.suppress(OSError):
                    segment.unlink()
                    removed += 1
    return removed


def _kept(db: duckdb.DuckDBPyConnection, path: Path, paths: list[Path]) -> set[Path]:
    """The segments in ``paths`` that ``path`` still needs."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return set(paths)  # gone meanwhile: the next pass decides
    try:
        st = os.fstat(fd)
        if compact.usable(db, path, st) is not None:
            return set()
        found = [s for s in (read(db, p) for p in paths) if s is not None]
        return {s.path for s in chain(fd, st, found)}
    finally:
        os.close(fd)
