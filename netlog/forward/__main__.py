"""``python -m netlog.forward --log-dir DIR --nats URLS ...``: the forwarder process.

``netlog serve`` starts it when a destination is configured and stops it
with SIGTERM after its own final fsync.  It holds ``<log-dir>/.forward.lock``
(waiting for it, so a forwarder left from a killed server finishes first),
asks the kernel for SIGTERM when its parent dies (``--parent``), and exits
0 after saving its cursors.  It runs under ``SCHED_IDLE``
(:mod:`netlog.forward.idle`): on a busy machine the sink's ingest wins the
CPU and the forwarder falls behind, then catches up from its cursor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from netlog.forward.config import FORWARD_FIELDS, destinations
from netlog.forward.forwarder import Forwarder
from netlog.forward.idle import make_idle
from netlog.report import Reporter
from netlog.settings import OPTIONS, OptionError, Settings

LOCK_NAME: Final = ".forward.lock"
_PR_SET_PDEATHSIG: Final = 1


def _parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m netlog.forward",
        description="Ship the records of a netlog store to its destinations.",
    )
    for option in OPTIONS:
        if option.name not in FORWARD_FIELDS:
            continue
        default = option.default
        raw = environ.get(option.env)
        if raw is not None:
            with contextlib.suppress(OptionError):
                default = option.convert(raw)

        def parse(text: str, convert: object = option.convert) -> object:
            try:
                return convert(text)  # type: ignore[operator]
            except OptionError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None

        parser.add_argument(option.flag, type=parse, default=default, help=option.help)
    parser.add_argument("--parent", type=int, default=0, help="exit when this process is gone")
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between looks when idle")
    return parser


def _die_with_parent(parent: int) -> bool:
    """Ask for SIGTERM when the parent dies; False when it is already gone."""
    if not parent:
        return True
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent


def _lock(log_dir: Path, stop: asyncio.Event) -> int | None:
    fd = os.open(log_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    while not stop.is_set():
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            time.sleep(0.1)
            continue
        return fd
    os.close(fd)
    return None


async def _main(settings: Settings, poll: float, report: Reporter, *, child: bool) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if child:
        # Ctrl-C reaches the whole process group: the sink decides when the
        # forwarder stops (after its final fsync), with SIGTERM.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    found = destinations(settings)
    if not found:
        report.write("netlog forward: no destination configured")
        return 2
    lock = await asyncio.to_thread(_lock, settings.log_dir, stop)
    if lock is None:
        return 0
    try:
        forwarder = Forwarder(settings.log_dir, found, report, poll=poll)
        await forwarder.run(stop)
        shipped = ", ".join(f"{s.destination.name} {s.shipped}" for s in forwarder.shippers)
        report.write(f"netlog forward: stopped: records shipped: {shipped}")
    finally:
        os.close(lock)
    return 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the forwarder until SIGTERM; the exit status."""
    args = _parser(os.environ if environ is None else environ).parse_args(argv)
    if not _die_with_parent(args.parent):
        return 0
    make_idle()
    values = {name: getattr(args, name) for name in FORWARD_FIELDS}
    settings = Settings(**values)
    report = Reporter(sys.stderr)
    return asyncio.run(_main(settings, args.poll, report, child=bool(args.parent)))


if __name__ == "__main__":
    sys.exit(main())
