"""The JSONL file sink: ``<log-dir>/records.jsonl``, rotated by size.

The promise (ARCHITECTURE.md "Records on disk") is that a reader never sees half a
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
aside to ``records.torn.<unix-time>`` before appending.  On a full disk that
copy cannot be made: the torn bytes are then kept in memory, the file is
truncated to its last whole line (which needs no space) and the copy is made
by the first flush that finds room again.

Rotation costs O(1) file operations whatever ``backups`` is: a full
``records.jsonl`` is renamed to ``records.jsonl.<seq>``, ``seq`` growing
(ten digits, zero-padded, so ``ls`` lists them in order), and the oldest
backup beyond ``backups`` is deleted.  Backups named the way earlier
versions named them (``records.jsonl.1`` the newest ... ``.N``) are older
than every sequence-numbered one and are read, and pruned, in their order.

The log dir is the sink's alone: :meth:`JsonlFileSink.open` takes an
exclusive ``flock`` on ``<log-dir>/.lock`` for the process's life and raises
:class:`LogDirInUse` when another process holds it.  Each flush checks (one
``stat``) that ``records.jsonl`` is still the file it has open; when the
file or the whole dir was deleted or moved away, both are created again,
counted in ``recreated`` and reported.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import os
import re
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Final

from netlog.sinks.encode import encode_line
from netlog.store.lines import complete_end

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from netlog.record import Record
    from netlog.report import Reporter

__all__ = ["FILE_NAME", "LOCK_NAME", "JsonlFileSink", "LogDirInUse", "rotated_paths"]

FILE_NAME: Final = "records.jsonl"
TORN_PREFIX: Final = "records.torn."
#: The lock file held by the one process that writes a log dir.
LOCK_NAME: Final = ".lock"
#: Digits of a backup's sequence number: ``records.jsonl.0000000042``.  Old
#: backups (``records.jsonl.1`` .. ``.N``, fewer digits) sort before them.
SEQ_WIDTH: Final = 10
#: Backups deleted at most per rotation: one keeps the count, the second
#: shrinks an excess (``--backups`` lowered) without a pause of many unlinks.
_PRUNE_PER_ROTATION: Final = 2
#: A torn tail held in memory while the disk is too full to copy it aside.
_TORN_IN_MEMORY: Final = 64 << 20
_NO_SPACE: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
# The Reporter keys of the sink's repeated troubles: each is rate limited
# on its own, write/rotate/fsync/close failures together.
_KEY_ERROR: Final = "store:error"
_KEY_DROPPED: Final = "store:dropped"
_KEY_RESUMED: Final = "store:resumed"
_KEY_RECREATED: Final = "store:recreated"
_KEY_EXPIRED: Final = "store:expired"
_KEY_UNSHIPPED: Final = "store:unshipped"
#: Seconds between looks for backups past ``max_age`` (and after each rotation).
EXPIRY_CHECK_INTERVAL: Final = 60.0
#: The receive time in a stored line, found without parsing the whole line.
_RECEIVED: Final = re.compile(rb'"received":"([0-9T:.+\-Z]{10,40})"')

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


class LogDirInUse(Exception):  # noqa: N818 - a state, not a bug
    """Another process holds the log dir's lock: two writers would lose records."""

    def __init__(self, directory: Path, holder: str) -> None:
        self.directory = directory
        self.holder = holder
        """What the lock file says about its holder (``pid 1234``), or ``""``."""
        who = f" ({holder})" if holder else ""
        super().__init__(f"log dir {directory} is in use by another netlog{who}")


def backup_name(seq: int) -> str:
    """The name of the ``seq``-th backup: ``records.jsonl.0000000042``."""
    return f"{FILE_NAME}.{seq:0{SEQ_WIDTH}d}"


def _backup_order(suffix: str) -> tuple[int, int] | None:
    """Where a backup with this suffix goes, oldest first; None: not a backup."""
    if not (suffix.isascii() and suffix.isdigit()):
        return None
    if len(suffix) >= SEQ_WIDTH:
        return (1, int(suffix))  # sequence numbered: the highest is the newest
    return (0, -int(suffix))  # the old scheme: .1 is the newest of those


def _backups(directory: Path) -> list[tuple[tuple[int, int], Path]]:
    prefix = FILE_NAME + "."
    found = []
    for path in directory.glob(prefix + "*"):
        order = _backup_order(path.name[len(prefix) :])
        if order is not None:
            found.append((order, path))
    found.sort()
    return found


def rotated_paths(directory: Path) -> list[Path]:
    """The backups oldest first, then ``records.jsonl``: every record in written order.

    Backups of earlier versions (``records.jsonl.N`` ... ``.1``) come first,
    then the sequence-numbered ones (``records.jsonl.0000000001`` ...).
    Only files that exist are listed, so a reader can concatenate them to get
    every record still on disk in the order it was written.
    """
    paths = [path for _, path in _backups(directory)]
    current = directory / FILE_NAME
    if current.exists():
        paths.append(current)
    return paths


def _unlink_compacted(backup: Path) -> None:
    """Delete a deleted backup's Parquet copy (netlog.store.compact), if it has one.

    After the JSONL, so a reader never finds a Parquet file without its
    source; one left by a crash in between is removed by the compactor.
    """
    with contextlib.suppress(OSError):
        backup.with_name(backup.name + ".parquet").unlink(missing_ok=True)


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

    Rotation keeps ``backups`` older files, newest highest; with ``backups=0`` a full file is
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
        max_age: float = 0.0,
        clock: Callable[[], float] = time.time,
        retain: Callable[[Path], bool] | None = None,
        retain_limit: int = 0,
    ) -> None:
        self.directory = directory
        self.retain = retain
        """Whether a backup is not yet forwarded: retention keeps it (:meth:`_may_delete`)."""
        self.retain_limit = retain_limit
        """Store bytes past which even unforwarded backups are deleted."""
        self.forward_unshipped_deleted = 0
        """Backups deleted before they were forwarded, the store being over ``retain_limit``."""
        self.max_age = max_age
        """Seconds: backups whose newest record is older are deleted (0: never)."""
        self._clock = clock
        self._next_expiry = 0.0
        self.expired = 0
        """Backups deleted for ``max_age`` (``netlog_store_expired_total``)."""
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
        # Queued chunks, each one or more whole lines, and each chunk's lines:
        # a batch is queued, written and forgotten without a Python step per
        # line (a writer of --workers takes a worker's batch as it came).
        self._pending: deque[bytes] = deque()
        self._pending_counts: deque[int] = deque()
        self._pending_bytes = 0
        self._pending_lines = 0
        # Bytes of _pending[0]'s first line already in the file: nonzero only
        # after a write failed mid-line, and then that line must be finished
        # before anything else happens to the file.
        self._head_done = 0
        self._failing = False
        # Failed attempts since the current failure began (for the resume note).
        self._failures = 0
        self.recreated = 0
        """Times ``records.jsonl`` was found deleted or moved away and created again."""
        # (st_dev, st_ino) of the open file: the path must still name it.
        self._identity: tuple[int, int] | None = None
        self._lock_fd: int | None = None
        # Backups on disk, oldest first, and the next one's sequence number.
        self._backup_paths: deque[Path] = deque()
        self._next_seq = 1
        # A torn tail the disk had no room for at open: copied aside later.
        self._torn_pending: bytes | None = None

    @property
    def path(self) -> Path:
        """The file being appended to (backups get a ``.<seq>`` suffix)."""
        return self.directory / FILE_NAME

    @property
    def pending_bytes(self) -> int:
        """Bytes accepted but not yet in the file."""
        return self._pending_bytes

    @property
    def pending_lines(self) -> int:
        """Lines accepted but not (completely) in the file."""
        return self._pending_lines

    # -- opening ----------------------------------------------------------

    def open(self) -> None:
        """Lock the log dir, create it and open the file for appending.

        Raises :class:`LogDirInUse` when another process writes this dir, and
        :class:`OSError` when the directory or file cannot be created, opened
        or repaired, so that start-up fails with one clear line instead of
        the server running with nowhere to write.
        """
        if self._fd is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            fd = os.open(self.path, _FLAGS, _MODE)
            try:
                self._repair_torn_tail(fd)
                self._adopt(fd)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            self._unlock()
            raise
        self._fd = fd
        backups = _backups(self.directory)
        self._backup_paths = deque(path for _, path in backups)
        sequenced = [order[1] for order, _ in backups if order[0] == 1]
        self._next_seq = max(sequenced, default=0) + 1

    def _adopt(self, fd: int) -> None:
        """Take ``fd`` as the file appended to: its size and identity."""
        st = os.fstat(fd)
        self._size = st.st_size
        self._identity = (st.st_dev, st.st_ino)

    def _lock(self) -> None:
        """Hold ``<log-dir>/.lock`` exclusively, or raise :class:`LogDirInUse`."""
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            with contextlib.suppress(OSError, UnicodeDecodeError):
                holder = os.pread(fd, 64, 0).decode("ascii").strip()
            os.close(fd)
            raise LogDirInUse(self.directory, holder) from None
        except BaseException:
            os.close(fd)
            raise
        # Who holds it, for the next one's error message; a full disk must
        # not stop the start for that.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the last descriptor releases the flock

    def _repair_torn_tail(self, fd: int) -> None:
        """Move a last line without its newline (a crash mid-write) aside.

        Appending after it would glue the next record onto the torn bytes and
        make both unreadable; moving them to a side file keeps them for
        inspection without ever truncating a complete record.  When the disk
        has no room for the copy, the torn bytes wait in memory (up to
        64 MiB) and the file is truncated anyway, since that needs no space:
        a full disk must not stop the server from starting.
        """
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        keep = complete_end(fd, size)
        torn = size - keep
        try:
            torn_path = self._save_torn(lambda out: _copy_range(fd, keep, size, out))
        except OSError as exc:
            if exc.errno not in _NO_SPACE or torn > _TORN_IN_MEMORY:
                raise
            self._torn_pending = _read_range(fd, keep, size)
            os.ftruncate(fd, keep)
            os.fsync(fd)
            self._say(
                f"{self.path} ended in a torn line and the disk is full: truncated it to its "
                f"last whole line; the {torn} torn bytes are kept in memory and will be saved "
                f"to {TORN_PREFIX}<time> when there is room"
            )
            return
        # Only now that the torn bytes are safely elsewhere.
        os.ftruncate(fd, keep)
        os.fsync(fd)
        self._say(f"{self.path} ended in a torn line: moved {torn} bytes to {torn_path}")

    def _save_torn(self, write: Callable[[int], object]) -> Path:
        """Create a torn file, ``write`` into it and fsync; no partial file is left."""
        torn_fd, torn_path = self._create_torn_file()
        try:
            write(torn_fd)
            os.fsync(torn_fd)
        except BaseException:
            os.close(torn_fd)
            with contextlib.suppress(OSError):
                torn_path.unlink()
            raise
        os.close(torn_fd)
        return torn_path

    def _save_deferred_torn(self) -> None:
        """Copy aside the torn tail kept in memory, once the disk has room."""
        data = self._torn_pending
        if data is None:
            return
        try:
            torn_path = self._save_torn(lambda out: _write_all(out, data))
        except OSError:
            return  # still no room: the writes' own errors are reported
        self._torn_pending = None
        self._say(f"saved the {len(data)} torn bytes {self.path} ended in to {torn_path}")

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
        if lines:
            self.write_chunk(lines[0] if len(lines) == 1 else b"".join(lines), len(lines))

    def write_chunk(self, data: bytes, lines: int) -> None:
        r"""Queue ``lines`` whole lines joined in ``data`` (each ends in ``b"\n"``), as one.

        The writer of ``--workers`` queues each worker's batch this way, as it
        arrived: neither cut into lines nor joined again.
        """
        if not data:
            return
        self._pending.append(data)
        self._pending_counts.append(lines)
        self._pending_bytes += len(data)
        self._pending_lines += lines
        if self._pending_bytes > self.max_pending:
            self._overflow()

    def _overflow(self) -> None:
        """Make room: try the disk first, then drop the oldest whole lines."""
        if self._fd is not None and not self._failing:
            self.flush()
            if self._pending_bytes <= self.max_pending:
                return
        pending, counts = self._pending, self._pending_counts
        # A half-written head line must be finished, never dropped: the file
        # already holds its beginning.
        head = self._take_first_line() if self._head_done else None
        dropped = 0
        while self._pending_bytes > self.max_pending and pending:
            chunk = pending[0]
            excess = self._pending_bytes - self.max_pending
            # The fewest oldest whole lines that hold ``excess`` bytes.
            cut = len(chunk) if excess >= len(chunk) else chunk.index(b"\n", excess - 1) + 1
            if cut == len(chunk):
                pending.popleft()
                lines = counts.popleft()
            else:
                lines = chunk.count(b"\n", 0, cut)
                pending[0] = chunk[cut:]
                counts[0] -= lines
            self._pending_bytes -= cut
            self._pending_lines -= lines
            dropped += lines
        if head is not None:
            pending.appendleft(head)
            counts.appendleft(1)
            self._pending_lines += 1
        if dropped:
            self.dropped += dropped
            self._say(
                f"{dropped} oldest records dropped: more than {self.max_pending} bytes "
                f"waiting for {self.path} ({self.dropped} dropped in total)",
                _KEY_DROPPED,
            )

    def _take_first_line(self) -> bytes:
        """Take the head chunk's first line off the queue (its bytes stay counted)."""
        pending, counts = self._pending, self._pending_counts
        chunk = pending[0]
        end = chunk.index(b"\n") + 1
        if end == len(chunk):
            pending.popleft()
            counts.popleft()
        else:
            pending[0] = chunk[end:]
            counts[0] -= 1
        self._pending_lines -= 1
        return chunk[:end]

    # -- writing ----------------------------------------------------------

    def flush(self) -> None:
        """Write queued lines to the file; never raises.

        On failure the data stays queued for the next call; a success after
        failures is reported so the operator knows the gap has closed.
        """
        if self._fd is None:
            return
        if self.max_age > 0 and self._clock() >= self._next_expiry:
            self.expire()
        if not self._pending:
            if self._torn_pending is not None:
                self._save_deferred_torn()
            return
        if not self._head_done and not self._still_our_file():
            return
        fd = self._fd
        if fd is None:  # pragma: no cover - _still_our_file leaves a file open
            return
        try:
            self._drain(fd)
        except OSError as exc:
            self._failed("write", exc)
            return
        if self._torn_pending is not None:
            self._save_deferred_torn()
        if self._failing:
            self._failing = False
            failures, self._failures = self._failures, 0
            attempts = "attempt" if failures == 1 else "attempts"
            self._say(f"writing {self.path} again after {failures} failed {attempts}", _KEY_RESUMED)

    def _drain(self, fd: int) -> None:
        pending = self._pending
        may_rotate = self.max_bytes > 0
        while pending:
            if (
                not self._head_done
                and may_rotate
                and self._size > 0
                and self._size + pending[0].index(b"\n") + 1 > self.max_bytes
            ):
                try:
                    self._rotate()
                except OSError as exc:
                    # Keep writing to the current file: an oversized file
                    # is better than lost records.  Retried next flush.
                    self._failed("rotate", exc, blocking=False)
                    may_rotate = False
            fd = self._fd if self._fd is not None else fd
            room = self.max_bytes - self._size if may_rotate else _CHUNK
            parts, size = _gather(pending, self._head_done, min(room, _CHUNK))
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
        """Forget ``count`` bytes that reached the file; a chunk written in part is cut."""
        self._pending_bytes -= count
        pending, counts = self._pending, self._pending_counts
        offset = count + self._head_done
        written = 0
        while pending and offset >= len(pending[0]):
            offset -= len(pending.popleft())
            written += counts.popleft()
        if offset and pending:
            # Keep the chunk from the line ``offset`` falls in: whole lines
            # before it are written, and a line begun must be finished first.
            chunk = pending[0]
            start = chunk.rfind(b"\n", 0, offset) + 1
            if start:
                lines = chunk.count(b"\n", 0, start)
                written += lines
                counts[0] -= lines
                pending[0] = chunk[start:]
            offset -= start
        self._head_done = offset if pending else 0
        self.written += written
        self._pending_lines -= written

    def _still_our_file(self) -> bool:
        """Whether ``records.jsonl`` is still the open file; if not, create it again.

        One ``stat`` per flush (not per record).  Writing on into a file that
        was deleted, or whose dir was, would lose every record without a
        word.  False when it cannot be created again: the lines stay queued.
        """
        try:
            st = self.path.stat()
        except (FileNotFoundError, NotADirectoryError):
            pass  # the file, or its dir, is gone
        except OSError:
            return True  # cannot tell (EACCES on the dir...): write on
        else:
            if (st.st_dev, st.st_ino) == self._identity:
                return True
        try:
            self._reopen()
        except OSError as exc:
            self._failed("recreate", exc)
            return False
        self.recreated += 1
        self._say(
            f"{self.path} was deleted or moved away while open: recreated it "
            f"({self.recreated} times so far)",
            _KEY_RECREATED,
        )
        return True

    def _reopen(self) -> None:
        """Open ``records.jsonl`` afresh (creating the dir and lock if gone) and switch to it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self._holds_lock_file():
            # The dir was deleted with its lock file: take a new one, so a
            # second server started now still finds the dir in use.
            old_lock, self._lock_fd = self._lock_fd, None
            try:
                self._lock()
            except LogDirInUse as exc:
                self._say(f"{exc}: both are writing it now")
            finally:
                if old_lock is not None:
                    with contextlib.suppress(OSError):
                        os.close(old_lock)
        new_fd = os.open(self.path, _FLAGS, _MODE)
        old_fd, self._fd = self._fd, new_fd
        self._adopt(new_fd)
        if old_fd is not None:
            try:
                os.close(old_fd)
            except OSError as exc:
                self._failed("close", exc, blocking=False)

    def _holds_lock_file(self) -> bool:
        """Whether ``<log-dir>/.lock`` is still the file this sink has locked."""
        if self._lock_fd is None:
            return False
        try:
            st = (self.directory / LOCK_NAME).stat()
        except OSError:
            return False
        own = os.fstat(self._lock_fd)
        return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)

    def reopen(self) -> None:
        """Write what is queued, then reopen ``records.jsonl`` (SIGHUP: logrotate); never raises.

        Lines queued before go to the file open until now (if it was moved
        away, to its new name); what comes after goes to the file at the path.
        """
        if self._fd is None:
            return
        if self._pending:
            try:
                self._drain(self._fd)
            except OSError as exc:
                self._failed("write", exc)
        if self._head_done:
            return  # a half-written line is finished in its own file first
        try:
            self._reopen()
        except OSError as exc:
            self._failed("reopen", exc, blocking=False)

    def _rotate(self) -> None:
        """Rename ``records.jsonl`` to the next backup, prune the oldest, start afresh.

        O(1) renames and unlinks whatever ``backups`` is: this runs on the
        server's event loop, between writes.
        """
        path = self.path
        if self.backups > 0:
            backup = path.with_name(backup_name(self._next_seq))
            try:
                path.rename(backup)
            except FileNotFoundError:
                pass  # an earlier rotation renamed it but could not create a new one
            else:
                self._next_seq += 1
                self._backup_paths.append(backup)
        else:
            path.unlink(missing_ok=True)
        backups = self._backup_paths
        for _ in range(_PRUNE_PER_ROTATION):
            if len(backups) <= self.backups:
                break
            if not self._may_delete(backups[0]):
                break
            oldest = backups.popleft()
            oldest.unlink(missing_ok=True)
            _unlink_compacted(oldest)
        self._next_expiry = 0.0  # a new backup: look at ages at the next flush
        new_fd = os.open(path, _FLAGS, _MODE)
        old_fd, self._fd = self._fd, new_fd
        self._adopt(new_fd)
        if old_fd is not None:
            try:
                os.close(old_fd)
            except OSError as exc:
                self._failed("close", exc, blocking=False)

    def expire(self) -> int:
        """Delete the backups whose newest record is older than ``max_age``; how many.

        Oldest first, stopping at the first one young enough (backups are in
        receive order); never ``records.jsonl``.  A file's newest record is
        its last line's ``received`` (its modification time when that line
        says nothing).  Each deletion is counted in :attr:`expired` and
        reported.  Never raises: retention must not stop the writing.
        """
        now = self._clock()
        self._next_expiry = now + EXPIRY_CHECK_INTERVAL
        if self.max_age <= 0:
            return 0
        cutoff = now - self.max_age
        deleted = 0
        backups = self._backup_paths
        while backups:
            oldest = backups[0]
            newest = _newest_record_time(oldest)
            if newest is not None and newest >= cutoff:
                break
            if not self._may_delete(oldest):
                break
            try:
                oldest.unlink(missing_ok=True)
            except OSError as exc:
                self._failed("delete an expired backup,", exc, blocking=False)
                break
            _unlink_compacted(oldest)
            backups.popleft()
            deleted += 1
        if deleted:
            self.expired += deleted
            noun = "file" if deleted == 1 else "files"
            self._say(
                f"deleted {deleted} rotated {noun} older than --max-age ({self.expired} in total)",
                _KEY_EXPIRED,
            )
        return deleted

    def _may_delete(self, backup: Path) -> bool:
        """Retention's check: a backup not yet forwarded stays while the store is under its bound.

        Over ``retain_limit`` (the files' total size) it goes anyway, reported
        and counted: a destination down for ever must not fill the disk.
        """
        if self.retain is None:
            return True
        try:
            if not self.retain(backup):
                return True
        except OSError:
            return True
        total = sum(_file_size(path) for path in (*self._backup_paths, self.path))
        if total <= self.retain_limit:
            return False
        self.forward_unshipped_deleted += 1
        self._say(
            f"deleted {backup.name} before it was forwarded: the store holds {total} bytes, "
            f"over --forward-backlog {self.retain_limit} ({self.forward_unshipped_deleted} "
            "such files in total)",
            _KEY_UNSHIPPED,
        )
        return True

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
        lost = self._pending_lines
        if lost:
            self.dropped += lost
            self._pending.clear()
            self._pending_counts.clear()
            self._pending_bytes = 0
            self._pending_lines = 0
            self._head_done = 0
            self._say(f"{lost} records could not be written to {self.path} and are lost")
        if self._torn_pending is not None:
            self._say(
                f"the {len(self._torn_pending)} torn bytes {self.path} ended in at start "
                "could not be saved and are lost"
            )
            self._torn_pending = None
        fd, self._fd = self._fd, None
        try:
            os.close(fd)
        except OSError as exc:
            self._failed("close", exc, blocking=False)
        self._unlock()

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


def _newest_record_time(path: Path) -> float | None:
    """Epoch seconds of the last record in ``path``; its mtime if unreadable; None if gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return float("inf")  # cannot tell: keep it
    try:
        end = complete_end(fd)
        tail = os.pread(fd, min(end, 1 << 16), max(0, end - (1 << 16)))
        found = _RECEIVED.findall(tail)
        if found:
            with contextlib.suppress(ValueError):
                text = found[-1].decode("ascii")
                return dt.datetime.fromisoformat(text).timestamp()
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _gather(chunks: deque[bytes], start: int, limit: int) -> tuple[list[bytes | memoryview], int]:
    """The queued bytes one write takes, from ``start`` in the first chunk, and their size.

    Whole chunks while they fit in ``limit``, then the whole lines of the next
    that fit; at least the first line, whatever its size (a line longer than
    ``limit``, or the rest of one a failed write left half done).
    """
    parts: list[bytes | memoryview] = []
    size = 0
    for chunk in chunks:
        left = len(chunk) - start
        if size + left <= limit:
            parts.append(memoryview(chunk)[start:] if start else chunk)
            size += left
        else:
            end = chunk.rfind(b"\n", start, start + limit - size) + 1
            if not end and not size:
                end = chunk.index(b"\n", start) + 1
            if end > start:
                parts.append(memoryview(chunk)[start:end])
                size += end - start
            break
        start = 0
    return parts, size


def _read_range(fd: int, start: int, end: int) -> bytes:
    chunks = []
    offset = start
    while offset < end:
        data = os.pread(fd, min(_CHUNK, end - offset), offset)
        if not data:
            break
        chunks.append(data)
        offset += len(data)
    return b"".join(chunks)


def _copy_range(fd: int, start: int, end: int, out: int) -> None:
    offset = start
    while offset < end:
        data = os.pread(fd, min(_CHUNK, end - offset), offset)
        if not data:
            break
        _write_all(out, data)
        offset += len(data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        count = os.write(fd, view)
        if count <= 0:
            raise OSError(errno.EIO, "write returned nothing")
        view = view[count:]
