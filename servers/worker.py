"""``python -m servers.worker FD INDEX``: one of ``netlog serve --workers N``'s worker processes.

Started by the writer (``servers/workers.py``) with its end of a UNIX socket
as file descriptor ``FD`` (``INDEX``, its number, is there for ``ps``).
SIGTERM is caught before anything else is imported, as in
``servers/__main__.py``, so a stop during start-up still takes the clean
path (bind, hand over nothing, exit 0).  SIGINT is ignored: the worker runs
in its own session and stops when the writer tells it (SIGTERM), never on a
terminal's Ctrl-C of its own, so one stop is one drain.
"""

import signal
import sys

_early_signals: list[int] = []


def _remember(signum: int, _frame: object) -> None:
    _early_signals.append(signum)


for _signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(_signum, _remember)
signal.signal(signal.SIGINT, signal.SIG_IGN)

from servers.worker_runner import worker_main  # noqa: E402 - after the signal handlers, on purpose

if __name__ == "__main__":
    sys.exit(worker_main(int(sys.argv[1]), _early_signals))
