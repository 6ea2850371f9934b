"""Stored lines from a position onward, in batches, across rotation.

The store's files are read oldest first (``records.jsonl.<seq>``, then
``records.jsonl``), each by an open descriptor, so a rotation (a rename)
while it is read changes nothing: the reader notices that
``records.jsonl`` no longer names its file, reads that file to its end, and
only then moves to the next one, found by listing the dir again and taking
the file after its own (the oldest one left, when its own was deleted:
retention deletes oldest first).  The live file is read up to its last
complete line only.

Each line's ``id`` is taken from its fixed place at the end of the line
(:func:`~netlog.sinks.encode.line_id`) and the line is checked to be one
JSON object; a line that is not (a torn line glued to the next one, bytes
damaged on disk) is skipped and counted in :attr:`StoreReader.corrupt`,
never shipped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, NamedTuple

import orjson

from netlog.forward.positions import Position, file_head
from netlog.sinks.encode import line_id
from netlog.store.lines import complete_end
from netlog.store.writer import FILE_NAME, rotated_paths

__all__ = ["Batch", "Line", "StoreReader"]

#: Records a batch holds at most.
DEFAULT_BATCH_COUNT: Final = 1000
#: Bytes a batch holds at most (one longer line is still taken whole).
DEFAULT_BATCH_BYTES: Final = 1 << 20
#: Attempts at opening "the next file" while rotations keep moving names.
_OPEN_ATTEMPTS: Final = 10


class Line(NamedTuple):
    """One stored record: its id and its JSON line without the newline."""

    id: str
    line: bytes


@dataclass(slots=True)
class Batch:
    """Lines read together, and the position just past them."""

    lines: list[Line]
    position: Position
    size: int = 0
    """Bytes of the file the batch covers (corrupt lines included)."""
    corrupt: int = 0
    """Lines skipped in it: not a JSON object with an id."""
    skipped: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class _Open:
    fd: int
    dev: int
    ino: int
    head: str
    name: str


class StoreReader:
    """Reads batches of stored lines from a :class:`Position` (``None``: the oldest file)."""

    def __init__(
        self,
        log_dir: Path,
        position: Position | None,
        *,
        max_count: int = DEFAULT_BATCH_COUNT,
        max_bytes: int = DEFAULT_BATCH_BYTES,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._report = report
        self._saved = position
        self._file: _Open | None = None
        self._offset = 0
        self.corrupt = 0
        """Lines skipped because they were not a JSON object with an id."""
        self.lost_files = 0
        """Times the saved position's file was gone (deleted before it was shipped)."""

    @property
    def position(self) -> Position | None:
        """Just past the last line read (``None`` before any file was opened)."""
        f = self._file
        if f is None:
            return self._saved
        if not f.head:
            f.head = file_head(f.fd)
        return Position(f.dev, f.ino, f.head, self._offset, f.name)

    def close(self) -> None:
        """Let go of the open file."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                os.close(self._file.fd)
            self._file = None

    # -- reading ------------------------------------------------------------

    def read(self) -> Batch | None:
        """The next batch, or ``None`` when everything complete on disk was read.

        A batch may hold no lines (all of it corrupt): it still moves the
        position.  Raises :class:`OSError` only for an unreadable file.
        """
        if self._file is None and not self._start():
            return None
        while True:
            f = self._file
            assert f is not None
            rotated = self._rotated(f)
            end = complete_end(f.fd)
            if self._offset < end:
                return self._take(f, end)
            if not rotated or not self._next():
                return None

    def behind(self) -> int:
        """Bytes on disk past the position: what is left to ship."""
        f = self._file
        if f is None:
            return sum(_size(path) for path in rotated_paths(self.log_dir))
        total = max(0, _fsize(f.fd) - self._offset)
        after = False
        for path in rotated_paths(self.log_dir):
            try:
                st = path.stat()
            except OSError:
                continue
            if after:
                total += st.st_size
            elif (st.st_dev, st.st_ino) == (f.dev, f.ino):
                after = True
        if not after:  # our file is gone from the listing: everything listed is newer
            total += sum(_size(path) for path in rotated_paths(self.log_dir))
        return total

    def _take(self, f: _Open, end: int) -> Batch:
        start = self._offset
        data = os.pread(f.fd, min(self.max_bytes, end - start), start)
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            # One line longer than a batch: take it whole, up to its newline.
            parts = [data]
            position = start + len(data)
            while True:
                more = os.pread(f.fd, min(1 << 20, end - position), position)
                newline = more.find(b"\n")
                if newline >= 0:
                    parts.append(more[: newline + 1])
                    break
                if not more:  # pragma: no cover - end is past a newline
                    break
                parts.append(more)
                position += len(more)
            data = b"".join(parts)
            cut = len(data)
        lines: list[Line] = []
        skipped: list[bytes] = []
        position = 0
        count = 0
        while position < cut and count < self.max_count:
            newline = data.index(b"\n", position)
            raw = data[position : newline + 1]
            position = newline + 1
            count += 1
            record_id = line_id(raw)
            if record_id and _is_object(raw):
                lines.append(Line(record_id, raw[:-1]))
            else:
                skipped.append(raw)
        self._offset = start + position
        if skipped:
            self.corrupt += len(skipped)
        position_after = self.position
        assert position_after is not None
        return Batch(lines, position_after, position, len(skipped), skipped)

    # -- which file ---------------------------------------------------------

    def _start(self) -> bool:
        """Open the saved position's file (or the oldest): whether there is one."""
        saved = self._saved
        listing = self._listing()
        if saved is not None:
            for path, dev, ino in listing:
                if (dev, ino) != (saved.dev, saved.ino):
                    continue
                opened = self._open(path, dev, ino)
                if opened is None:
                    continue
                if saved.same_file(opened.dev, opened.ino, opened.head) and saved.offset <= _fsize(
                    opened.fd
                ):
                    self._use(opened, saved.offset)
                    return True
                os.close(opened.fd)
            if listing:
                self.lost_files += 1
                self._say(
                    f"the file of the saved position ({saved.name}) is gone: "
                    "shipping from the oldest file left"
                )
        return self._open_first(listing)

    def _next(self) -> bool:
        """Move to the file after the finished one: whether there was one."""
        f = self._file
        assert f is not None
        for _ in range(_OPEN_ATTEMPTS):
            listing = self._listing()
            identities = [(dev, ino) for _, dev, ino in listing]
            if (f.dev, f.ino) in identities:
                following = listing[identities.index((f.dev, f.ino)) + 1 :]
            else:
                following = listing
            if not following:
                return False
            path, dev, ino = following[0]
            opened = self._open(path, dev, ino)
            if opened is not None:
                self.close()
                self._use(opened, 0)
                return True
        return False

    def _open_first(self, listing: list[tuple[Path, int, int]]) -> bool:
        for _ in range(_OPEN_ATTEMPTS):
            if not listing:
                return False
            path, dev, ino = listing[0]
            opened = self._open(path, dev, ino)
            if opened is not None:
                self._use(opened, 0)
                return True
            listing = self._listing()
        return False

    def _use(self, opened: _Open, offset: int) -> None:
        self._file = opened
        self._offset = offset

    def _listing(self) -> list[tuple[Path, int, int]]:
        found = []
        for path in rotated_paths(self.log_dir):
            try:
                st = path.stat()
            except OSError:
                continue
            found.append((path, st.st_dev, st.st_ino))
        return found

    @staticmethod
    def _open(path: Path, dev: int, ino: int) -> _Open | None:
        """Open ``path`` if it still is the file listed (a rotation may have moved it)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (dev, ino):
            os.close(fd)
            return None
        return _Open(fd, dev, ino, file_head(fd), path.name)

    def _rotated(self, f: _Open) -> bool:
        """Whether ``records.jsonl`` no longer names the open file (then it is finished)."""
        try:
            st = (self.log_dir / FILE_NAME).stat()
        except OSError:
            return True
        if (st.st_dev, st.st_ino) == (f.dev, f.ino):
            return False
        if f.name == FILE_NAME:
            # Its new name, for the position and the reports.
            for path, dev, ino in self._listing():
                if (dev, ino) == (f.dev, f.ino):
                    f.name = path.name
        return True

    def _say(self, message: str) -> None:
        if self._report is not None:
            self._report(message)


def _is_object(raw: bytes) -> bool:
    if raw[:1] != b"{":
        return False
    try:
        return isinstance(orjson.loads(raw), dict)
    except orjson.JSONDecodeError:
        return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _fsize(fd: int) -> int:
    return os.fstat(fd).st_size
