"""The ``netlog`` command line: ``netlog serve`` and friends.

``main(argv)`` returns an exit status instead of exiting, so tests can call
it; the console script wraps it in ``sys.exit``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from netlog import __version__
from netlog.cli.collect import (
    add_collect_parser,
    collect_options,
    collect_problem,
    collect_settings,
)
from netlog.cli.probe import add_probe_parser, run_probe
from netlog.cli.query import add_query_parser, run_query
from netlog.cli.send import add_send_parser, run_send
from netlog.cli.serve import add_serve_parser, environment_error, settings_from_namespace
from netlog.cli.tail import add_tail_parser, run_tail

#: Caught by ``serve`` from its first moment (also in ``servers/__main__.py``).
EARLY_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but every error is one line on stderr and exit status 2.

    argparse's default prints the whole usage block first; for a server
    started by compose or a script, the one line naming the problem is what
    reaches the person reading the log.
    """

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as the only line and exit 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser(environ: Mapping[str, str]) -> ArgumentParser:
    parser = ArgumentParser(
        prog="netlog",
        description="A network log sink and test server: TCP echo, UDP responder, log sink.",
    )
    # An action that exits at once, so the required COMMAND is not asked for.
    parser.add_argument("-V", "--version", action="version", version=f"netlog {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    commands.required = True
    add_serve_parser(commands, environ)
    add_collect_parser(commands, environ)
    add_send_parser(commands)
    add_probe_parser(commands)
    add_tail_parser(commands)
    add_query_parser(commands)
    return parser


def parse_args(argv: Sequence[str], environ: Mapping[str, str]) -> argparse.Namespace:
    """Parse a whole ``netlog`` command line as :func:`main` does, with ``environ``.

    The one parser behind the ``netlog`` command, so tests of the options go
    through exactly what a user's command line goes through.  A bad command
    line (or a bad ``NETLOG_*`` value for ``serve``) exits 2 with one line on stderr.
    """
    parser = _parser(environ)
    namespace = parser.parse_args(argv)
    problem = environment_error(namespace) or collect_problem(namespace)
    if problem is not None:
        parser.exit(2, f"{parser.prog} {namespace.command}: error: {problem}\n")
    return namespace


def _catch_signals_early() -> list[int]:
    """Remember signals from the very start, before gevent is loaded.

    Importing gevent and binding take a moment; a SIGTERM or SIGINT then
    must still take the clean shutdown path rather than end the process
    mid-start, and a SIGHUP, SIGUSR1 or SIGUSR2 (whose default action is to
    kill) must not end it at all.  The runner decides what each one means.
    """
    seen: list[int] = []

    def remember(signum: int, _frame: object) -> None:
        seen.append(signum)

    for signum in EARLY_SIGNALS:
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


def main(  # noqa: PLR0911 - one return per command
    argv: Sequence[str] | None = None, *, early_signals: list[int] | None = None
) -> int:
    """Run the ``netlog`` command line; the exit status.

    ``early_signals`` is the list a caller's own early handlers fill (see
    ``servers/__main__.py``); otherwise ``serve`` installs them here.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    early = early_signals
    if early is None:
        early = _catch_signals_early() if args[:1] in (["serve"], ["collect"]) else []
    namespace = parse_args(args, os.environ)
    if namespace.command == "serve":
        from servers.runner import serve  # noqa: PLC0415 - gevent only for serve

        status = serve(settings_from_namespace(namespace), early_signals=early)
        return _exit_now(status)
    if namespace.command == "collect":
        from servers.collect import collect  # noqa: PLC0415 - gevent only for collect

        status = collect(
            collect_settings(namespace), collect_options(namespace), early_signals=early
        )
        return _exit_now(status)
    if namespace.command == "send":
        return run_send(namespace)
    if namespace.command == "probe":
        return run_probe(namespace)
    if namespace.command == "tail":
        return run_tail(namespace)
    if namespace.command == "query":
        return run_query(namespace)
    return 2  # pragma: no cover - argparse rejects unknown commands


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
