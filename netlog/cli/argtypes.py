"""argparse types shared by the ``netlog`` commands (send, probe, tail, query).

Each turns a bad value into argparse's one-line error naming the value, so a
script sees exit status 2 and the reason, never a traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from netlog.client import parse_address


def address(default_port: int) -> Callable[[str], tuple[str, int]]:
    """``HOST[:PORT]`` -> ``(host, port)``, with ``default_port`` when none is given."""

    def convert(text: str) -> tuple[str, int]:
        try:
            return parse_address(text, default_port)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def in_range(parse: Callable[[str], float], low: float, high: float, what: str) -> Any:
    """``parse`` the text, then require ``low <= value <= high``."""

    def convert(text: str) -> float:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} must be between {low:g} and {high:g}")
        return value

    return convert


def accepted(check: Callable[[str], object], error: type[Exception]) -> Callable[[str], str]:
    """The text itself, once ``check`` accepts it (else argparse's one-line error).

    Kept as text: a duration like ``--since 2h`` becomes a time when the
    command runs, not when its arguments are parsed.
    """

    def convert(text: str) -> str:
        try:
            check(text)
        except error as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return convert


#: Seconds a client command waits: long enough for any real network, bounded.
timeout = in_range(float, 0.001, 3600, "a number of seconds")
