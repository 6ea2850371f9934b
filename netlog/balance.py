"""Which worker should take a connection just accepted: the counts and the decision, no I/O.

``SO_REUSEPORT`` spreads connections over the workers by a hash of their
addresses, not by load: 8 senders split 6/2 as often as 4/4, and the busier
worker sets the pace.  So each worker, right after an accept, asks
:func:`choose` whether another worker holds clearly fewer stream
connections, and if so passes the connection there (``servers/balance.py``
moves it).

The counts live in one small block of memory shared by the writer and every
worker (:class:`Counts`, over any writable buffer), as aligned 8-byte
integers, each written by one process only:

* ``held[j]``: the stream connections worker ``j`` serves now (written by ``j``;
  cleared by the writer once ``j`` is dead);
* ``state[j]``: :data:`DEAD`, :data:`ALIVE` or :data:`DRAINING` (``j`` sets
  ``ALIVE`` when bound and ``DRAINING`` at SIGTERM; the writer sets ``DEAD``
  once ``j`` exited);
* ``handed[s][j]`` and ``received[s][j]``: connections sender ``s`` passed to
  ``j`` (written by ``s``), and those of them ``j`` took (written by ``j``).
  Their difference is in flight, and counts for ``j`` already: without it a
  burst of 8 connects would all be passed to the same worker before its
  ``held`` rose.  Sender ``workers`` (one past the last worker) is the
  writer, which passes on what a dead worker left queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

#: The slot of a worker that is not running (never started, or exited).
DEAD: Final = 0
#: Bound and serving: may be given connections.
ALIVE: Final = 1
#: Draining (SIGTERM): passes nothing, is given nothing.
DRAINING: Final = 2
#: Connections a worker would hold, the new one counted, beyond the
#: least-loaded one for it to pass the new one there: with 1, two workers
#: holding 4 and 4 would pass every new connection; with 2, a burst of 8 ends 4/4.
MARGIN: Final = 2
#: Bytes per count.
WORD: Final = 8


def size_in_words(workers: int) -> int:
    """The counts of ``workers`` workers, in 8-byte words."""
    return 2 * workers + 2 * (workers + 1) * workers


def choose(
    me: int, loads: Sequence[int], states: Sequence[int], margin: int = MARGIN
) -> int | None:
    """The worker ``me`` should pass its new connection to, or ``None`` to keep it.

    ``loads[j]`` is worker ``j``'s connections, those in flight to it included
    (the new one is not counted yet).  The target is the least-loaded worker
    that is :data:`ALIVE`, the lowest number among equals; it gets the
    connection only when ``me``, the new one counted, would hold at least
    ``margin`` more, so the counts end within ``margin - 1`` of each other
    (a connection passed is never passed again, so none swings back).
    A ``me`` that is not :data:`ALIVE` (draining) keeps everything.
    """
    if states[me] != ALIVE:
        return None
    best = None
    for j, state in enumerate(states):
        if j != me and state == ALIVE and (best is None or loads[j] < loads[best]):
            best = j
    if best is None or loads[me] + 1 - loads[best] < margin:
        return None
    return best


class Counts:
    """The shared counts of ``workers`` workers over ``buffer`` (see the module docstring).

    Workers are numbered from 0 here; sender ``workers`` is the writer.
    Every method reads or writes single aligned words: another process may
    be writing its own words meanwhile, never the same ones.
    """

    def __init__(self, buffer: memoryview, workers: int) -> None:
        words = size_in_words(workers)
        if len(buffer) < words * WORD:
            raise ValueError(f"{len(buffer)} bytes cannot hold the counts of {workers} workers")
        self.workers = workers
        self.words = buffer[: words * WORD].cast("q")
        self._state = workers
        self._handed = 2 * workers
        self._received = self._handed + (workers + 1) * workers

    def held(self, j: int) -> int:
        """The connections worker ``j`` serves now."""
        return int(self.words[j])

    def set_held(self, j: int, count: int) -> None:
        """Worker ``j`` (or the writer, once ``j`` died) says how many it serves."""
        self.words[j] = count

    def state(self, j: int) -> int:
        """:data:`DEAD`, :data:`ALIVE` or :data:`DRAINING`."""
        return int(self.words[self._state + j])

    def set_state(self, j: int, state: int) -> None:
        """Worker ``j`` is bound, draining, or (the writer says) dead."""
        self.words[self._state + j] = state

    def states(self) -> list[int]:
        """Every worker's state."""
        start = self._state
        return list(self.words[start : start + self.workers])

    def handed(self, sender: int, j: int) -> int:
        """Connections ``sender`` has passed to worker ``j`` so far."""
        return int(self.words[self._handed + sender * self.workers + j])

    def add_handed(self, sender: int, j: int) -> None:
        """``sender`` passed one more connection to ``j`` (written by ``sender`` only)."""
        self.words[self._handed + sender * self.workers + j] += 1

    def received(self, sender: int, j: int) -> int:
        """Connections from ``sender`` that worker ``j`` has taken so far."""
        return int(self.words[self._received + sender * self.workers + j])

    def add_received(self, sender: int, j: int) -> None:
        """``j`` took one more from ``sender`` (written by ``j``; by the writer once ``j`` died)."""
        self.words[self._received + sender * self.workers + j] += 1

    def handed_by(self, sender: int) -> int:
        """Every connection ``sender`` has passed on (``/metrics``)."""
        start = self._handed + sender * self.workers
        return sum(self.words[start : start + self.workers])

    def loads(self) -> list[int]:
        """Per worker: the connections it serves plus those in flight to it."""
        n = self.workers
        words = self.words
        loads = list(words[:n])
        for sender in range(n + 1):
            handed = self._handed + sender * n
            received = self._received + sender * n
            for j in range(n):
                loads[j] += words[handed + j] - words[received + j]
        return loads

    def choose(self, me: int, margin: int = MARGIN) -> int | None:
        """:func:`choose` over the counts as they are now."""
        return choose(me, self.loads(), self.states(), margin)


__all__ = [
    "ALIVE",
    "DEAD",
    "DRAINING",
    "MARGIN",
    "WORD",
    "Counts",
    "choose",
    "size_in_words",
]
