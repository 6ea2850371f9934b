"""Where a destination's shipping stands: the persisted cursor, one file per destination.

As Promtail's and Filebeat's registries do, the position names a store file
by what survives a rename, its device and inode, plus a fingerprint of its
first line (an inode is reused once a file is deleted; a first line holds a
unique record id, so a reused inode never passes for the old file), and the
byte offset up to which its lines were taken by the destination.  The name
the file had is kept too, for people and for ordering a lost file.

The file is ``<log-dir>/.forward-<destination>.json``, replaced atomically
(temporary file, fsync, rename), at most once per ``interval`` while
shipping and once more at exit: a crash resends at most that interval's
records, which the destination drops by id (JetStream's ``Nats-Msg-Id``).

:func:`unshipped` answers the writer's retention question, "may this
rotated file go?", from these files alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import orjson

from netlog.store.writer import rotated_paths

__all__ = [
    "Position",
    "PositionsFile",
    "file_head",
    "positions_path",
    "unshipped",
]

#: Bytes of a file's first line that make its fingerprint.
HEAD_BYTES: Final = 4096
#: Seconds between saves of the cursor while shipping.
SAVE_INTERVAL: Final = 1.0


def positions_path(log_dir: Path, destination: str) -> Path:
    """``<log-dir>/.forward-<destination>.json``."""
    return log_dir / f".forward-{destination}.json"


def file_head(fd: int) -> str:
    """The fingerprint of an open store file: a hash of its first line ("" while it has none)."""
    start = os.pread(fd, HEAD_BYTES, 0)
    newline = start.find(b"\n")
    if newline < 0:
        return "" if len(start) < HEAD_BYTES else hashlib.blake2b(start, digest_size=12).hexdigest()
    return hashlib.blake2b(start[:newline], digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class Position:
    """A store file (by identity) and the offset of the first line not yet shipped."""

    dev: int
    ino: int
    head: str
    """:func:`file_head` of the file; "" when it had no whole line yet (then offset is 0)."""
    offset: int
    name: str
    """The file's name when last seen (``records.jsonl`` or ``records.jsonl.<seq>``)."""

    def same_file(self, dev: int, ino: int, head: str) -> bool:
        """Whether an open file is this position's file."""
        if (dev, ino) != (self.dev, self.ino):
            return False
        return not self.head or self.head == head


class PositionsFile:
    """Loads and atomically saves one destination's :class:`Position`."""

    def __init__(
        self,
        path: Path,
        *,
        interval: float = SAVE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.interval = interval
        self._clock = clock
        self._last_save = -float("inf")
        self._saved: Position | None = None
        self.saves = 0

    def load(self) -> Position | None:
        """The saved position; ``None`` when there is none or it is unreadable."""
        try:
            data = orjson.loads(self.path.read_bytes())
            position = Position(
                dev=int(data["dev"]),
                ino=int(data["ino"]),
                head=str(data["head"]),
                offset=int(data["offset"]),
                name=str(data["name"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self._saved = position
        return position

    def save(self, position: Position, *, force: bool = False) -> bool:
        """Write ``position`` unless one was written less than ``interval`` ago; whether it did.

        ``force`` (at exit) writes whatever the interval says.  Raises
        :class:`OSError` when the file cannot be written.
        """
        if position == self._saved:
            return False
        now = self._clock()
        if not force and now - self._last_save < self.interval:
            return False
        body = orjson.dumps({**asdict(position), "saved": time.time()})
        fd, tmp = tempfile.mkstemp(prefix=".forward-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).replace(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)
        self._last_save = now
        self._saved = position
        self.saves += 1
        return True


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; a filesystem that cannot fsync a dir is let be."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def unshipped(log_dir: Path, destinations: Sequence[str]) -> Callable[[Path], bool]:
    """The writer's retention check: whether a rotated file holds lines some destination lacks.

    A file is shipped by a destination when its saved position is on a
    newer file, or at this file's end.  With no saved position yet, or one
    whose file is gone (the forwarder then starts at the oldest file),
    nothing is shipped.  Reads the positions files afresh at each call
    (rotation is rare), so it needs nothing from the forwarder process.
    """

    def check(path: Path) -> bool:
        try:
            st = path.stat()
        except OSError:
            return False
        files = rotated_paths(log_dir)
        identities: list[tuple[int, int]] = []
        for each in files:
            try:
                other = each.stat()
            except OSError:
                continue
            identities.append((other.st_dev, other.st_ino))
        mine = (st.st_dev, st.st_ino)
        if mine not in identities:
            return False
        index = identities.index(mine)
        for name in destinations:
            position = PositionsFile(positions_path(log_dir, name)).load()
            if position is None or (position.dev, position.ino) not in identities:
                return True
            at = identities.index((position.dev, position.ino))
            if at < index or (at == index and position.offset < st.st_size):
                return True
        return False

    return check
