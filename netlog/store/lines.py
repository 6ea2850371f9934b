"""Where the whole lines of a store file end.

A JSONL file may end in a line still being written (a reader racing the
writer) or torn by a crash (the writer reopening the file).  Both need the
same answer, found by reading backwards from the end so a large file costs
one block: the offset just past the last newline.
"""

from __future__ import annotations

import os
from typing import Final

__all__ = ["BLOCK", "complete_end"]

#: Bytes read per step when searching a file; also the readers' block size.
BLOCK: Final = 1 << 16


def complete_end(fd: int, size: int | None = None) -> int:
    """Offset just past the last newline before ``size`` (default: the file's size).

    Everything before it is whole lines; 0 when there is no newline at all.
    ``fd`` must be open for reading; its file position is not used or moved.
    """
    position = os.fstat(fd).st_size if size is None else size
    while position > 0:
        start = max(0, position - BLOCK)
        newline = os.pread(fd, position - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0
