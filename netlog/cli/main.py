"""The ``netlog`` command line: ``netlog serve`` and friends.

``main(argv)`` returns an exit status instead of exiting, so tests can call
it; the console script wraps it in ``sys.exit``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from netlog.cli.probe import add_probe_parser, run_probe
from netlog.cli.send import add_send_parser, run_send
from netlog.cli.tail import add_tail_parser, run_tail
from netlog.settings import ArgumentParser, add_serve_options, settings_from_namespace


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="netlog",
        description="A network log sink and test server: TCP echo, UDP responder, log sink.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    commands.required = True
    serve = commands.add_parser(
        "serve",
        help="run the echo, responder and log sink listeners",
        description="Run every listener in one process until SIGTERM or SIGINT.",
    )
    add_serve_options(serve, os.environ)
    add_send_parser(commands)
    add_probe_parser(commands)
    add_tail_parser(commands)
    return parser


def _catch_signals_early() -> list[int]:
    """Remember SIGTERM/SIGINT from the very start, before gevent is loaded.

    Importing gevent and binding take a moment; a signal then must still
    take the clean shutdown path rather than end the process mid-start.
    """
    seen: list[int] = []

    def remember(signum: int, _frame: object) -> None:
        seen.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, remember)
    return seen


def _exit_now(status: int) -> NoReturn:
    """End ``serve`` without tearing the interpreter down object by object.

    By now every record is written and fsynced and the summary printed;
    after a large ingest, freeing the heap one object at a time took most of
    a second, which a container's stop timeout or a supervisor would wait
    for and nothing would gain from.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


def main(argv: Sequence[str] | None = None, *, early_signals: list[int] | None = None) -> int:
    """Run the ``netlog`` command line; the exit status.

    ``early_signals`` is the list a caller's own early handlers fill (see
    ``servers/__main__.py``); otherwise ``serve`` installs them here.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    early = early_signals
    if early is None:
        early = _catch_signals_early() if args[:1] == ["serve"] else []
    namespace = _parser().parse_args(args)
    if namespace.command == "serve":
        from servers.runner import serve  # noqa: PLC0415 - gevent only for serve

        status = serve(settings_from_namespace(namespace), early_signals=early)
        return _exit_now(status)
    if namespace.command == "send":
        return run_send(namespace)
    if namespace.command == "probe":
        return run_probe(namespace)
    if namespace.command == "tail":
        return run_tail(namespace)
    return 2  # pragma: no cover - argparse rejects unknown commands


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
