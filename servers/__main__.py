"""``python -m servers`` is ``netlog serve``.

SIGTERM and SIGINT are caught before anything else is imported, so a signal
during start-up takes the clean shutdown path.
"""

import signal
import sys

_early_signals: list[int] = []


def _remember(signum: int, _frame: object) -> None:
    _early_signals.append(signum)


signal.signal(signal.SIGTERM, _remember)
signal.signal(signal.SIGINT, _remember)

from netlog.cli.main import main  # noqa: E402 - after the signal handlers, on purpose

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]], early_signals=_early_signals))
