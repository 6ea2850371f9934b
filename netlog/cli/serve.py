"""``netlog serve``'s arguments: the parser built from :data:`netlog.settings.OPTIONS`.

The environment is read into argparse *defaults*, so one parser validates
both sources, the command line beats the environment, and a bad value from
either is the same one-line error naming where it came from.  Starting the
servers is :mod:`servers.runner`'s job; this module only turns words into
:class:`~netlog.settings.Settings`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from netlog.settings import OPTIONS, Option, OptionError, Settings


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
    """``netlog serve``: every option, with defaults taken from ``environ`` where set."""
    serve = commands.add_parser(
        "serve",
        help="run the echo, responder and log sink listeners",
        description="Run every listener in one process until SIGTERM or SIGINT.",
    )
    for option in OPTIONS:
        value = option.default
        raw = environ.get(option.env)
        if raw is not None:
            try:
                value = option.convert(raw)
            except OptionError as exc:
                serve.error(f"environment variable {option.env}: {exc}")
        serve.add_argument(
            option.flag,
            type=_argparse_type(option),
            default=value,
            help=f"{option.help} (env {option.env}, default {option.default})",
        )


def settings_from_namespace(namespace: argparse.Namespace) -> Settings:
    """Build :class:`Settings` from parsed ``serve`` options."""
    return Settings(**{option.name: getattr(namespace, option.name) for option in OPTIONS})
