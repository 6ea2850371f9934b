"""The forwarder as a child process of ``netlog serve``, restarted when it dies.

The forwarder (``python -m netlog.forward``) is asyncio and this process
is gevent: they share nothing but the store on disk and the positions
files, so a slow or stuck destination never slows the sink.  The runner
starts it after the store is open and stops it (SIGTERM, then SIGKILL after
``stop_timeout``) after its final fsync, so whatever was written is shipped
on the next start at worst.  An unexpected exit is reported and followed by
a restart after a delay doubling from 1 s to 60 s (back to 1 s after a
minute of running).  The child asks the kernel for SIGTERM when this
process dies (``--parent``), so a ``kill -9`` of the sink leaves no
forwarder behind.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Final

import gevent
import gevent.event
import gevent.subprocess

from netlog.forward.idle import make_idle

if TYPE_CHECKING:
    from netlog.report import Reporter

__all__ = ["ForwardChild"]

#: Seconds the forwarder gets to finish its batch and save its cursors.
STOP_TIMEOUT: Final = 20.0
_FIRST_DELAY: Final = 1.0
_MAX_DELAY: Final = 60.0
#: Seconds of running after which a crash counts as a fresh one (delay back to 1 s).
_HEALTHY_AFTER: Final = 60.0


class ForwardChild:
    """Runs ``python -m netlog.forward`` and keeps it running until :meth:`stop`.

    ``env``: its options as ``NETLOG_*`` variables, on top of this process's environment.
    """

    def __init__(
        self, env: dict[str, str], report: Reporter, *, stop_timeout: float = STOP_TIMEOUT
    ) -> None:
        self.env = env
        self.report = report
        self.stop_timeout = stop_timeout
        self.restarts = 0
        """Times the forwarder exited on its own and was started again."""
        self.process: gevent.subprocess.Popen | None = None
        self._stopping = False
        self._wake = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        """Start the child and the greenlet that restarts it."""
        self._greenlet = gevent.spawn(self._supervise)

    def _spawn(self) -> gevent.subprocess.Popen:
        command = [sys.executable, "-m", "netlog.forward", "--parent", str(os.getpid())]
        env = {**os.environ, **self.env}
        process = gevent.subprocess.Popen(command, stdin=gevent.subprocess.DEVNULL, env=env)
        make_idle(process.pid)  # before its imports: they too wait for idle CPU
        return process

    def _supervise(self) -> None:
        delay = _FIRST_DELAY
        while not self._stopping:
            started = time.monotonic()
            try:
                self.process = self._spawn()
            except OSError as exc:
                status = f"could not be started ({exc})"
            else:
                code = self.process.wait()
                status = f"exited with status {code}"
            if self._stopping:
                return
            if time.monotonic() - started > _HEALTHY_AFTER:
                delay = _FIRST_DELAY
            self.restarts += 1
            self.report(
                f"the forwarder {status}; starting it again in {delay:.0f}s "
                f"({self.restarts} restarts so far)",
                key="forward:restart",
            )
            self._wake.wait(delay)
            delay = min(_MAX_DELAY, delay * 2)

    def stop(self) -> None:
        """SIGTERM the child and wait for it to save its cursors (SIGKILL after the timeout)."""
        self._stopping = True
        self._wake.set()
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self.stop_timeout)
            except gevent.subprocess.TimeoutExpired:
                self.report(f"the forwarder did not stop in {self.stop_timeout:.0f}s: killed it")
                process.kill()
                process.wait()
        if self._greenlet is not None:
            self._greenlet.join(timeout=1)
