"""The forwarder runs on CPU nobody else wants (``SCHED_IDLE``).

The sink's ingest comes first when the CPU is short: shipping only falls
behind (the cursor and ``--forward-backlog`` hold it) and catches up when a
core is free; it never slows what is being received.  Nice +10 still left
the forwarder, and the engine it wakes, about a tenth of a contended core;
``SCHED_IDLE`` leaves it what is idle.  Any process may lower its own or
its child's policy without privileges, in a container too.  ``serve`` sets
it on the child the moment it exists, so even the child's imports (a
third of a second of CPU) wait for idle time; the child sets it again for
itself, for when it is started by hand.
"""

from __future__ import annotations

import contextlib
import os
from typing import Final

__all__ = ["NICENESS", "make_idle"]

#: Added to the forwarder's nice value where ``SCHED_IDLE`` is missing.
NICENESS: Final = 10


def make_idle(pid: int = 0) -> None:
    """Put process ``pid`` (0: this one) under ``SCHED_IDLE``; else this one at nice +10."""
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        if pid == 0:
            with contextlib.suppress(OSError):
                os.nice(NICENESS)
