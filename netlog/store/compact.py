"""Rotated JSONL files compacted into Parquet beside them: a cache the query engine prefers.

A rotated file (``records.jsonl.<seq>``) never changes again, so it can be
read once and kept in a form an analytical engine scans far faster than
JSONL: ``records.jsonl.<seq>.parquet``.  JSONL stays the format on disk and
the contract; the Parquet file is derived, and deleting it is always safe
(the engine then reads the JSONL).  Why it is shaped this way:

* **The same answers, by construction.**  Each column is the very
  expression the engine applies to a JSONL line (``json->>'$.level'``, the
  field values joined...), computed once here; the raw line is kept in
  ``json`` so a record comes back exactly as stored; a line that is not a
  JSON object is a row with ``bad`` set, so it is still skipped and counted.
  ``received`` stays the text as stored (cursors and ranges compare text),
  and rows stay in file order, which is receive order: each row group's
  min/max of ``received`` is tight, so a time range skips row groups.
* **Never half a file.**  The file is written under a temporary name
  (:data:`TEMP_MARK`), fsynced and renamed; a crash leaves only a temporary,
  which no reader opens and :func:`remove_temporaries` deletes.
* **Never stale.**  The Parquet file's key-value metadata names the JSONL
  it was made from (inode, size, modification time); :func:`usable` refuses
  one that does not match the file beside it (a log dir emptied by hand and
  refilled reuses sequence numbers), and one whose footer cannot be read.
* **Bounded.**  It runs on the caller's DuckDB connection, under that
  database's ``threads`` and ``memory_limit``; DuckDB streams the COPY, so a
  100 MiB file needs far less than the file's size in memory.

:func:`write` is the one writer of such files: the live file's segments
(:mod:`netlog.store.segments`) are written by it too.  Only the process
that writes the log dir compacts (``servers/api.py``, on a thread of its
own); ``netlog query`` only reads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from netlog.store.writer import FILE_NAME, SEQ_WIDTH

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "COLUMNS",
    "SUFFIX",
    "TEMP_MARK",
    "compact",
    "parquet_path",
    "pending",
    "remove_orphans",
    "remove_temporaries",
    "usable",
    "write",
]

SUFFIX: Final = ".parquet"
#: In a temporary's name, between the Parquet name and a unique tail.
TEMP_MARK: Final = ".tmp-"
#: The compression, measured: zstd gave the smaller files and faster scans.
COMPRESSION: Final = "zstd"
#: Rows a row group, smaller than DuckDB's 122,880: a page's matches are read
#: back (their raw line) by row number, which reads whole row groups of the
#: ``json`` column; measured, a match's line cost 0.3-0.45 s per file with
#: the default and 0.05 s with this.
ROW_GROUP_ROWS: Final = 10240
#: Marks a file this module wrote (and the layout of its columns); 3: a line
#: that is JSON but not an object (``[1, 2]``) is ``bad``.
_VERSION: Final = "3"
#: The store's lines as DuckDB reads them: one ``json`` column, NULL for a
#: line that is not a JSON object (torn, corrupt, or JSON of another kind:
#: DuckDB trims the whitespace, so a leading ``{`` is an object).  The query
#: engine reads JSONL through this too, so both skip and count the same lines.
OBJECTS: Final = (
    "(SELECT CASE WHEN starts_with(json, '{') THEN json END AS json "
    "FROM read_ndjson_objects(?, ignore_errors=true))"
)
#: The values of ``fields`` (top level; nested objects as their JSON) joined:
#: the same text the engine searches in a JSONL line (netlog.query.sql).
FIELD_VALUES: Final = "array_to_string(json_extract_string(json, '$.fields.*'), chr(10))"
#: The top-level keys a column holds as text, in the order of ``_TEXTS``.
_KEYS: Final = ("received", "id", "level", "logger", "message", "exc", "peer", "format", "host")
#: All of them in one JSON parse of the line (``v``): a parse per column held
#: a parsed document per column and row of a vector at once, so compacting
#: lines of 1.4 KiB ran out of 256 MB (measured; 3 parses now).
_TEXTS: Final = "json_extract_string(json, [{}])".format(", ".join(f"'$.{k}'" for k in _KEYS))
_AT: Final = {key: f"v[{n}]" for n, key in enumerate(_KEYS, 1)}
#: Each column and the expression that makes it, over the raw line ``json``
#: and ``v``: the values ``json->>'$.<key>'`` gives, as the engine reads a JSONL line.
COLUMNS: Final = (
    ("json", "json"),
    ("bad", "json IS NULL"),
    ("received", _AT["received"]),
    ("id", _AT["id"]),
    # The id the engine gives every record (a legacy line's from its bytes).
    ("rid", f"coalesce({_AT['id']}, 'L' || substr(md5(json), 1, 25))"),
    *((key, _AT[key]) for key in _KEYS[2:]),
    ("fields", "json->'$.fields'"),
    ("field_values", FIELD_VALUES),
)
_PROJECTION: Final = ", ".join(f"{expr} AS {name}" for name, expr in COLUMNS)
#: Our constant column expressions, no user text.
#: ``search``: the texts a bare word is looked for in, lower case, one string: a
#: prefilter that halved a text search's scan (measured: 0.15 s against 0.33 s
#: per 1M records for lower() of three columns at query time), for 20% more disk.
SEARCH: Final = "lower(concat_ws(chr(10), message, exc, field_values))"
_SELECT: Final = (
    f"SELECT *, {SEARCH} AS search FROM (SELECT {_PROJECTION} "  # noqa: S608 - our constants
    f"FROM (SELECT json, {_TEXTS} AS v FROM {OBJECTS}))"
)


def parquet_path(jsonl: Path) -> Path:
    """Where the Parquet file of a rotated JSONL file lives."""
    return jsonl.with_name(jsonl.name + SUFFIX)


def _is_rotated(path: Path) -> bool:
    """A sequence-numbered backup: ``records.jsonl.0000000042`` (never the live file)."""
    suffix = path.name.removeprefix(FILE_NAME + ".")
    return (
        suffix != path.name and len(suffix) >= SEQ_WIDTH and suffix.isascii() and suffix.isdigit()
    )


def _source_key(st: os.stat_result) -> dict[str, str]:
    return {
        "netlog_compact": _VERSION,
        "source_ino": str(st.st_ino),
        "source_size": str(st.st_size),
        "source_mtime_ns": str(st.st_mtime_ns),
    }


def usable(db: duckdb.DuckDBPyConnection, jsonl: Path, st: os.stat_result) -> Path | None:
    """The Parquet file of ``jsonl`` (whose stat is ``st``) if it is complete and current."""
    import duckdb  # noqa: PLC0415 - only callers that already hold a connection get here

    target = parquet_path(jsonl)
    if not _is_rotated(jsonl) or target.is_symlink() or not target.is_file():
        return None
    try:
        rows = db.execute("SELECT key, value FROM parquet_kv_metadata(?)", [str(target)]).fetchall()
    except duckdb.Error:
        return None  # not Parquet, truncated, or gone
    found = {bytes(k).decode(errors="replace"): bytes(v).decode(errors="replace") for k, v in rows}
    want = _source_key(st)
    return target if all(found.get(k) == v for k, v in want.items()) else None


def compact(db: duckdb.DuckDBPyConnection, jsonl: Path) -> Path | None:
    """Write ``jsonl``'s Parquet file (temporary, fsync, rename); None when it is not rotated.

    Raises ``OSError`` or ``duckdb.Error`` when it cannot be written; the
    temporary is removed then.
    """
    if not _is_rotated(jsonl):
        return None
    st = jsonl.stat(follow_symlinks=False)
    target = parquet_path(jsonl)
    write(db, jsonl, target, _source_key(st), check=lambda: _same_file(jsonl, st))
    return target


def write(
    db: duckdb.DuckDBPyConnection,
    source: Path,
    target: Path,
    metadata: dict[str, str],
    *,
    check: Callable[[], None] | None = None,
    compression: str = COMPRESSION,
) -> None:
    """The Parquet file of the JSONL ``source`` at ``target``: temporary, fsync, check, rename.

    The one way a Parquet file of store lines is written (a rotated file's
    copy, a live file's segment: :mod:`netlog.store.segments`).  ``metadata``
    values must be digits or hex (they are spelled into the COPY, which takes
    no parameter), and ``compression`` one of ours.  Raises ``OSError`` or
    ``duckdb.Error``; the temporary is removed then.
    """
    texts = (*metadata, *metadata.values())
    if not all(t.isascii() and t.replace("_", "").isalnum() for t in texts):
        raise ValueError("Parquet metadata must be plain letters and digits")
    temp = target.with_name(f"{target.name}{TEMP_MARK}{os.getpid()}")
    kv = ", ".join(f"\"{k}\": '{v}'" for k, v in metadata.items())
    try:
        db.execute(
            f"COPY ({_SELECT}) TO '{_quoted(temp)}' "
            f"(FORMAT parquet, COMPRESSION {compression}, ROW_GROUP_SIZE {ROW_GROUP_ROWS}, "
            f"KV_METADATA {{{kv}}})",
            [str(source)],
        )
        fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if check is not None:
            check()
        temp.rename(target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _same_file(jsonl: Path, st: os.stat_result) -> None:
    """Raise ``FileNotFoundError`` if ``jsonl`` was deleted (maybe reused) while being read."""
    if jsonl.stat(follow_symlinks=False).st_ino != st.st_ino:
        raise FileNotFoundError(jsonl)


def _quoted(path: Path) -> str:
    """A path as an SQL string literal (COPY TO takes no parameter); ours, never user text."""
    return str(path).replace("'", "''")


def pending(db: duckdb.DuckDBPyConnection, paths: list[Path]) -> list[Path]:
    """The rotated files among ``paths`` that have no usable Parquet file, newest first.

    Newest first: the first page of a search reads the newest files first.
    """
    out = []
    for path in reversed(paths):
        if not _is_rotated(path) or path.is_symlink():
            continue
        try:
            st = path.stat(follow_symlinks=False)
        except OSError:
            continue
        if usable(db, path, st) is None:
            out.append(path)
    return out


def remove_temporaries(directory: Path) -> int:
    """Delete the temporaries a crashed compaction left; how many.

    Only the one process that writes the log dir compacts, and it calls this
    before its first compaction, so no temporary is in use.
    """
    removed = 0
    for path in directory.glob(f"{FILE_NAME}.*{SUFFIX}{TEMP_MARK}*"):
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed


def remove_orphans(directory: Path) -> int:
    """Delete Parquet files whose JSONL file is gone (deleted by hand or by an older netlog)."""
    removed = 0
    for path in directory.glob(f"{FILE_NAME}.*{SUFFIX}"):
        source = path.with_name(path.name.removesuffix(SUFFIX))
        if _is_rotated(source) and not source.exists():
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed
