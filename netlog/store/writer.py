"""The JSONL file sink: ``<log-dir>/records.jsonl``, rotated by size.

The promise (DESIGN.md "Records on disk") is that a reader never sees half a
line and a full disk never takes the process down.  So records are encoded
into an in-memory queue of whole lines, and :meth:`JsonlFileSink.flush`
moves them to the file with plain ``os.write`` calls:

* rotation happens only between lines, before the write that would take the
  file past ``max_bytes``;
* when a write fails (``ENOSPC``, ``EIO``...) the unwritten bytes stay queued,
  the error is counted and reported (through the server's one
  :class:`~netlog.report.Reporter`, so at most once per its interval), and
  the next flush tries again; if the failure came in the middle of a line, its
  remainder is written first, so the line is completed, not split;
* the queue is bounded by ``max_pending``: past it the oldest whole lines are
  dropped and counted, never a partial one.

A crash can still leave a torn last line; :meth:`JsonlFileSink.open` moves it
aside to ``records.torn.<unix-time>`` before appending.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Final

from netlog.sinks.encode import encode_line
from netlog.store.lines import complete_end

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from netlog.record import Record
    from netlog.report import Reporter

__all__ = ["FILE_NAME", "JsonlFileSink", "rotated_paths"]

FILE_NAME: Final = "records.jsonl"
TORN_PREFIX: Final = "records.torn."
# The Reporter keys of the sink's repeated troubles: each is rate limited
# on its own, write/rotate/fsync/close failures together.
_KEY_ERROR: Final = "store:error"
_KEY_DROPPED: Final = "store:dropped"
_KEY_RESUMED: Final = "store:resumed"

# Append-only: O_APPEND makes every write land at the current end, even if
# another process appends too; O_RDWR only so open() can inspect the tail.
_FLAGS: Final = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_MODE: Final = 0o644
# One os.write call carries at most this much, so rotation is checked often
# enough and a flush never builds one giant bytes object.
_CHUNK: Final = 1 << 20

_ERRNO_TEXT: Final = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EIO: "I/O error",
    errno.EFBIG: "file too large",
}


def rotated_paths(directory: Path) -> list[Path]:
    """List ``records.jsonl.N`` ... ``records.jsonl.1``, ``records.jsonl``: oldest first.

    Only files that exist are listed, so a reader can concatenate them to get
    every record still on disk in the order it was written.
    """
    numbered: list[tuple[int, Path]] = []
    prefix = FILE_NAME + "."
    for path in directory.glob(prefix + "*"):
        suffix = path.name[len(prefix) :]
        if suffix.isascii() and suffix.isdigit():
            numbered.append((int(suffix), path))
    numbered.sort(reverse=True)
    paths = [path for _, path in numbered]
    current = directory / FILE_NAME
    if current.exists():
        paths.append(current)
    return paths


def _describe(exc: OSError) -> str:
    if exc.errno in _ERRNO_TEXT:
        return _ERRNO_TEXT[exc.errno]
    return (exc.strerror or type(exc).__name__).lower()


class JsonlFileSink:
    """Appends records as JSON lines to ``<directory>/records.jsonl``.

    ``write_lines`` (and ``write``, which encodes first) only queues in
    memory, so the network side never waits on the disk; the server calls
    ``flush`` on a timer and ``close`` at shutdown.  ``report`` is the
    server's :class:`~netlog.report.Reporter`: repeated troubles are passed
    with a key, so it rate limits them and counts the rest.

    Rotation keeps ``backups`` older files; with ``backups=0`` a full file is
    unlinked (never truncated in place, so a reader that has it open keeps
    its data) and a fresh one started.  ``max_bytes <= 0`` never rotates.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 100 * 2**20,
        backups: int = 5,
        max_pending: int = 64 * 2**20,
        report: Reporter | None = None,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.backups = backups
        self.max_pending = max_pending
        self._report = report
        self.written = 0
        """Records (lines) written to the file."""
        self.dropped = 0
        """Records lost: the queue overflowed, or they were still queued at close."""
        self.write_errors = 0
        """Failed writes, renames and fsyncs (each one, reported or not)."""
        self._fd: int | None = None
        self._size = 0
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        # Bytes of _pending[0] already in the file: nonzero only after a
        # write failed mid-line, and then that line must be finished before
        # anything else happens to the file.
        self._head_done = 0
        self._failing = False
        # Failed attempts since the current failure began (for the resume note).
        self._failures = 0

    @property
    def path(self) -> Path:
        """The file being appended to (rotated files get a ``.N`` suffix)."""
        return self.directory / FILE_NAME

    @property
    def pending_bytes(self) -> int:
        """Bytes accepted but not yet in the file."""
        return self._pending_bytes

    @property
    def pending_lines(self) -> int:
        """Lines accepted but not (completely) in the file."""
        return len(self._pending)

    # -- opening ----------------------------------------------------------

    def open(self) -> None:
        """Create the directory and open the file for appending.

        Raises :class:`OSError` when the directory or file cannot be created,
        opened or repaired, so that start-up fails with one clear line
        instead of the server running with nowhere to write.
        """
        if self._fd is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, _FLAGS, _MODE)
        try:
            self._repair_torn_tail(fd)
            self._size = os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _repair_torn_tail(self, fd: int) -> None:
        """Move a last line without its newline (a crash mid-write) aside.

        Appending after it would glue the next record onto the torn bytes and
        make both unreadable; moving them to a side file keeps them for
        inspection without ever truncating a complete record.
        """
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        keep = complete_end(fd, size)
        torn_fd, torn_path = self._create_torn_file()
        try:
            offset = keep
            while offset < size:
                data = os.pread(fd, min(_CHUNK, size - offset), offset)
                if not data:
                    break
                _write_all(torn_fd, data)
                offset += len(data)
            os.fsync(torn_fd)
        finally:
            os.close(torn_fd)
        # Only now that the torn bytes are safely elsewhere.
        os.ftruncate(fd, keep)
        os.fsync(fd)
        self._say(f"{self.path} ended in a torn line: moved {size - keep} bytes to {torn_path}")

    def _create_torn_file(self) -> tuple[int, Path]:
        base = f"{TORN_PREFIX}{int(time.time())}"
        for attempt in range(1000):
            path = self.directory / (base if attempt == 0 else f"{base}.{attempt}")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _MODE)
            except FileExistsError:
                continue
            return fd, path
        raise FileExistsError(errno.EEXIST, "no free name for the torn tail", str(base))

    # -- accepting --------------------------------------------------------

    def write(self, records: Iterable[Record]) -> None:
        """Encode and queue records (the sink used on its own, outside a pipeline)."""
        self.write_lines([encode_line(record) for record in records])

    def write_lines(self, lines: Sequence[bytes]) -> None:
        r"""Queue encoded lines; no I/O unless the queue has grown past ``max_pending``.

        Each line must be whole and end in ``b"\n"``, as
        :func:`~netlog.sinks.encode.encode_line` makes them: the pipeline
        encodes a batch once for every sink and this is its path to the
        file, so nothing here looks at each line again.
        """
        self._pending.extend(lines)
        self._pending_bytes += sum(map(len, lines))
        if self._pending_bytes > self.max_pending:
            self._overflow()

    def _overflow(self) -> None:
        """Make room: try the disk first, then drop the oldest whole lines."""
        if self._fd is not None and not self._failing:
            self.flush()
            if self._pending_bytes <= self.max_pending:
                return
        pending = self._pending
        # A half-written head line must be finished, never dropped: the file
        # already holds its beginning.
        head = pending.popleft() if self._head_done else None
        dropped = 0
        while self._pending_bytes > self.max_pending and pending:
            self._pending_bytes -= len(pending.popleft())
            dropped += 1
        if head is not None:
            pending.appendleft(head)
        if dropped:
            self.dropped += dropped
            self._say(
                f"{dropped} oldest records dropped: more than {self.max_pending} bytes "
                f"waiting for {self.path} ({self.dropped} dropped in total)",
                _KEY_DROPPED,
            )

    # -- writing ----------------------------------------------------------

    def flush(self) -> None:
        """Write queued lines to the file; never raises.

        On failure the data stays queued for the next call; a success after
        failures is reported so the operator knows the gap has closed.
        """
        fd = self._fd
        if fd is None or not self._pending:
            return
        try:
            self._drain(fd)
        except OSError as exc:
            self._failed("write", exc)
            return
        if self._failing:
            self._failing = False
            failures, self._failures = self._failures, 0
            attempts = "attempt" if failures == 1 else "attempts"
            self._say(f"writing {self.path} again after {failures} failed {attempts}", _KEY_RESUMED)

    def _drain(self, fd: int) -> None:
        pending = self._pending
        may_rotate = self.max_bytes > 0
        while pending:
            parts: list[bytes | memoryview] = []
            if self._head_done:
                # Finish the line a failed write left half done, whatever the size.
                parts.append(memoryview(pending[0])[self._head_done :])
            elif may_rotate and self._size > 0 and self._size + len(pending[0]) > self.max_bytes:
                try:
                    self._rotate()
                except OSError as exc:
                    # Keep writing to the current file: an oversized file
                    # is better than lost records.  Retried next flush.
                    self._failed("rotate", exc, blocking=False)
                    may_rotate = False
            fd = self._fd if self._fd is not None else fd
            room = self.max_bytes - self._size if may_rotate else _CHUNK
            size = sum(len(part) for part in parts)
            for line in _skip(pending, len(parts)):
                if (size + len(line) > room or size + len(line) > _CHUNK) and size:
                    break
                parts.append(line)
                size += len(line)
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            done = 0
            try:
                view = memoryview(data)
                while done < size:
                    count = os.write(fd, view[done:])
                    if count <= 0:
                        raise OSError(errno.EIO, "write returned nothing")
                    done += count
                    self._size += count
            finally:
                self._consume(done)

    def _consume(self, count: int) -> None:
        """Forget ``count`` bytes that reached the file, line by line."""
        self._pending_bytes -= count
        pending = self._pending
        offset = count + self._head_done
        while pending and offset >= len(pending[0]):
            offset -= len(pending.popleft())
            self.written += 1
        self._head_done = offset

    def _rotate(self) -> None:
        """Shift ``records.jsonl`` -> ``.1`` -> ... -> ``.backups`` and start afresh."""
        path = self.path
        if self.backups > 0:
            for number in range(self.backups - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    path.with_name(f"{FILE_NAME}.{number}").replace(
                        path.with_name(f"{FILE_NAME}.{number + 1}")
                    )
            # Missing when an earlier rotation renamed it but could not create a new one.
            with contextlib.suppress(FileNotFoundError):
                path.replace(path.with_name(f"{FILE_NAME}.1"))
        else:
            path.unlink(missing_ok=True)
        new_fd = os.open(path, _FLAGS, _MODE)
        old_fd, self._fd, self._size = self._fd, new_fd, 0
        if old_fd is not None:
            try:
                os.close(old_fd)
            except OSError as exc:
                self._failed("close", exc, blocking=False)

    def sync(self) -> None:
        """Flush, then fsync, so the records survive a power cut; never raises."""
        self.flush()
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self._failed("fsync", exc)

    def close(self) -> None:
        """Sync and close; whatever still cannot be written is counted as dropped."""
        if self._fd is None:
            return
        self.sync()
        lost = len(self._pending)
        if lost:
            self.dropped += lost
            self._pending.clear()
            self._pending_bytes = 0
            self._head_done = 0
            self._say(f"{lost} records could not be written to {self.path} and are lost")
        fd, self._fd = self._fd, None
        try:
            os.close(fd)
        except OSError as exc:
            self._failed("close", exc, blocking=False)

    # -- reporting --------------------------------------------------------

    def _failed(self, action: str, exc: OSError, *, blocking: bool = True) -> None:
        """Count and report an error; ``blocking`` ones mean data is stuck in memory."""
        self.write_errors += 1
        if blocking:
            self._failing = True
            self._failures += 1
        self._say(
            f"{_describe(exc)}: cannot {action} {self.path}: {exc}; "
            f"{self._pending_bytes} bytes waiting",
            _KEY_ERROR,
        )

    def _say(self, message: str, key: str | None = None) -> None:
        """Report ``message``; with a ``key``, the reporter rate limits its repeats."""
        if self._report is None:
            return
        # A broken reporter must not break the sink.
        with contextlib.suppress(Exception):
            self._report(message, key)


def _skip(lines: deque[bytes], count: int) -> Iterable[bytes]:
    """Iterate ``lines`` from index ``count`` without copying the deque."""
    iterator = iter(lines)
    for _ in range(count):
        next(iterator, None)
    return iterator


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        count = os.write(fd, view)
        if count <= 0:
            raise OSError(errno.EIO, "write returned nothing")
        view = view[count:]
