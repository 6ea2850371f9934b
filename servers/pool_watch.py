"""Hearing about a connection that has to wait while a listener's pool is full.

gevent stops accepting while ``full()`` says so, and new connections then
wait in the kernel's queue without anyone knowing.  The log listener and
the HTTP listener both want to hear of such a connection once, to make room
(or count it): this is that watch, written once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from servers.gevent_private import replace_full


class FullPoolWatch:
    """Makes ``server.full`` watch the listening socket while the pool is full.

    ``on_wait`` runs once per full spell, when a connection arrives that
    has to wait; the watch then stops until gevent asks ``full()`` again.
    """

    def __init__(self, server: Any, on_wait: Callable[[], None]) -> None:
        self._server = server
        self._on_wait = on_wait
        self._watcher: Any = None
        replace_full(server, self.full)

    def full(self) -> bool:
        """``pool.full()``; while full, watch for a connection that has to wait."""
        server = self._server
        if not server.pool.full():
            return False
        if self._watcher is None and not server.closed:
            watcher = server.loop.io(server.socket.fileno(), 1)  # 1: readable
            watcher.start(self._arrived)
            self._watcher = watcher
        return True

    def _arrived(self) -> None:
        self.stop()
        self._on_wait()

    def stop(self) -> None:
        """Stop watching (before the listener closes)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
            watcher.close()
