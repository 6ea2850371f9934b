"""``python -m servers`` is ``netlog serve``.

SIGTERM and SIGINT are caught before anything else is imported, so a signal
during start-up takes the clean shutdown path; SIGHUP, SIGUSR1 and SIGUSR2
too, so that one of them during start-up does not kill the process (the
runner then handles all five: ``servers/runner.py``).
"""

import signal
import sys

_early_signals: list[int] = []


def _remember(signum: int, _frame: object) -> None:
    _early_signals.append(signum)


for _signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(_signum, _remember)

from netlog.cli.main import main  # noqa: E402 - after the signal handlers, on purpose

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]], early_signals=_early_signals))
