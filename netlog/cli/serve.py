"""``netlog serve``'s arguments: the parser built from :data:`netlog.settings.OPTIONS`.

The environment is read into argparse *defaults*, so one parser validates
both sources, the command line beats the environment, and a bad value from
either is the same one-line error naming where it came from.  A bad
variable is held until ``serve`` is the command: ``netlog tail`` with a stray
``NETLOG_MAX_BYTES=10XB`` in the environment is not ``serve``'s business.  Starting the
servers is :mod:`servers.runner`'s job; this module only turns words into
:class:`~netlog.settings.Settings`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from netlog.settings import OPTIONS, Option, OptionError, Settings

#: Where the serve parser leaves the environment's bad values (its own default).
_ENVIRONMENT_ERRORS = "environment_errors"


def _argparse_type(option: Option) -> Callable[[str], object]:
    """``option.convert`` with its :class:`OptionError` as argparse's own error."""
    convert = option.convert

    def parse(text: str) -> object:
        try:
            return convert(text)
        except OptionError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = convert.__name__  # argparse names the type in some messages
    return parse


def add_serve_parser(commands: argparse._SubParsersAction[Any], environ: Mapping[str, str]) -> None:
    """``netlog serve``: every option, with defaults taken from ``environ`` where set.

    A value the environment gets wrong is kept for :func:`environment_error`.
    """
    serve = commands.add_parser(
        "serve",
        help="run the echo, responder and log sink listeners",
        description="Run every listener in one process until SIGTERM or SIGINT.",
    )
    add_options(serve, OPTIONS, environ)


def add_options(
    parser: argparse.ArgumentParser, options: Sequence[Option], environ: Mapping[str, str]
) -> None:
    """Add ``options`` to ``parser``, defaults from ``environ``; bad values kept for later.

    Shared by ``serve`` and ``collect`` (which takes serve's HTTP and store options).
    """
    errors: list[str] = []
    for option in options:
        value = option.default
        raw = environ.get(option.env)
        if raw is not None:
            try:
                value = option.convert(raw)
            except OptionError as exc:
                errors.append(f"environment variable {option.env}: {exc}")
        parser.add_argument(
            option.flag,
            type=_argparse_type(option),
            default=value,
            help=f"{option.help} (env {option.env}, default {option.default})",
        )
    parser.set_defaults(**{_ENVIRONMENT_ERRORS: errors})


def environment_error(namespace: argparse.Namespace) -> str | None:
    """The first bad ``NETLOG_*`` value, when the parsed command is ``serve``."""
    errors: list[str] = getattr(namespace, _ENVIRONMENT_ERRORS, [])
    return errors[0] if errors else None


def settings_from_namespace(namespace: argparse.Namespace) -> Settings:
    """Build :class:`Settings` from parsed ``serve`` options."""
    return Settings(**{option.name: getattr(namespace, option.name) for option in OPTIONS})
