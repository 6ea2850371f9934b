"""Reading the store: whole lines only, in order, safe against rotation.

The writer (:mod:`netlog.store.writer`) appends to ``records.jsonl`` and
rotates it by renaming (``records.jsonl`` -> ``records.jsonl.<seq>``, the
highest sequence number the newest; backups of earlier versions,
``records.jsonl.N`` ... ``.1``, are older still) while readers are at work,
so a reader here never trusts a name for long:

* :func:`open_files` opens a log dir's files oldest first and checks, after
  opening, that every name still means the file it opened; when a rotation
  moved anything in between it starts again, so no rotated file is skipped
  or read twice.  The current file is read only up to its last newline (a
  line still being written is not a record yet).
* :func:`last_lines` reads those files backwards for the last N records, so
  a large dir costs only what is asked for, or forwards for all of them.
* :class:`Follower` polls one file for new complete lines across rotation
  (the old file is read to its end first) and truncation.

Nothing here parses JSON: callers pass the function that turns a line into
what they keep (``netlog tail`` a filter, later the query engine and the
forwarder their own), so the store knows lines and nothing about records.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from netlog.store.lines import BLOCK, complete_end
from netlog.store.writer import FILE_NAME, rotated_paths

__all__ = [
    "Follower",
    "StoreFile",
    "close_files",
    "last_lines",
    "lines_backwards",
    "lines_forwards",
    "open_files",
]

#: A line still being written may grow to this before a follower gives up on it.
MAX_PARTIAL: Final = 64 << 20
#: Attempts at a consistent listing before taking what a non-stop rotation leaves.
_OPEN_ATTEMPTS: Final = 10

_T = TypeVar("_T")


@dataclass(slots=True)
class StoreFile:
    """One open file of the store and the end of what may be read of it."""

    fd: int
    path: Path
    end: int
    """Offset past its last whole line when it was opened (its size if rotated)."""


def lines_backwards(fd: int, end: int) -> Iterator[bytes]:
    """The lines before ``end``, last first."""
    position = end
    head = b""
    while position > 0:
        start = max(0, position - BLOCK)
        parts = (os.pread(fd, position - start, start) + head).split(b"\n")
        position = start
        head = parts[0]
        yield from reversed(parts[1:])
    yield head


def lines_forwards(fd: int, start: int, end: int | None) -> Iterator[bytes]:
    """The lines from ``start`` to ``end`` (or the end of the file), first first.

    A last line without its newline is yielded too: callers pass an ``end``
    at a newline when a line may still be being written.
    """
    position = start
    rest = b""
    while end is None or position < end:
        size = BLOCK if end is None else min(BLOCK, end - position)
        data = os.pread(fd, size, position)
        if not data:
            break
        position += len(data)
        parts = (rest + data).split(b"\n")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


def open_files(paths: Sequence[Path], current: Path, *, log_dir: bool) -> list[StoreFile]:
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
    for _attempt in range(_OPEN_ATTEMPTS):
        opened = _open_listed(paths, current)
        listed_again = rotated_paths(current.parent) if log_dir else list(paths)
        if listed_again == list(paths) and all(_same_file(item) for item in opened):
            return opened
        close_files(opened)
        paths = listed_again
    return _open_listed(paths, current)  # rotating non-stop: take what we get


def _open_listed(paths: Sequence[Path], current: Path) -> list[StoreFile]:
    opened = []
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # rotated away while listing
        end = complete_end(fd) if path == current else os.fstat(fd).st_size
        opened.append(StoreFile(fd, path, end))
    return opened


def _same_file(item: StoreFile) -> bool:
    try:
        st = item.path.stat()
    except FileNotFoundError:
        return False
    own = os.fstat(item.fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def close_files(files: Sequence[StoreFile]) -> None:
    """Close every file, ignoring ones already closed."""
    for item in files:
        with contextlib.suppress(OSError):
            os.close(item.fd)


def last_lines(
    files: Sequence[StoreFile], count: int | None, parse: Callable[[bytes], _T | None]
) -> list[tuple[bytes, _T]]:
    """The last ``count`` lines ``parse`` keeps (all with ``None``), oldest first.

    ``parse`` returns what to keep of a line, or None to skip it; each kept
    line comes back with it.  With a count the files are read backwards and
    reading stops as soon as enough are kept.
    """
    if count is None:
        out = []
        for item in files:
            for line in lines_forwards(item.fd, 0, item.end):
                kept = parse(line)
                if kept is not None:
                    out.append((line, kept))
        return out
    found: list[tuple[bytes, _T]] = []
    if count <= 0:
        return found
    for item in reversed(files):
        for line in lines_backwards(item.fd, item.end):
            kept = parse(line)
            if kept is not None:
                found.append((line, kept))
                if len(found) >= count:
                    found.reverse()
                    return found
    found.reverse()
    return found


class Follower:
    """Reads what is appended to one file, across rotation and truncation.

    ``poll()`` returns the complete lines that arrived since the last call,
    in order.  It never blocks; the caller sleeps between polls.  Pass the
    ``fd`` and ``position`` of a :class:`StoreFile` already read to go on
    where that reading stopped.
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
            data = os.pread(fd, BLOCK * 16, self._position)
            if not data:
                return out
            self._position += len(data)
            parts = (self._partial + data).split(b"\n")
            self._partial = parts.pop()
            out += parts
            if len(self._partial) > MAX_PARTIAL:
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
                out += lines_forwards(fd, 0, None)
            finally:
                os.close(fd)
        return out
