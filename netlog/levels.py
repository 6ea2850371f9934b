"""Level names and ranks: the one table every decoder, filter and query uses.

Senders name levels in many ways (stdlib numbers, syslog severities,
``warn``/``err``/``fatal`` spellings); records keep the sender's lower-case
name, and comparisons such as ``--level warning`` or ``level>=warning`` go
through :func:`level_rank`, so every spelling of one severity compares equal.
"""

from __future__ import annotations

import re
from typing import Any, Final

#: stdlib ``logging`` level numbers to the names records carry.
NAMES_BY_NUMBER: Final = {
    10: "debug",
    20: "info",
    30: "warning",
    40: "error",
    50: "critical",
}

#: Syslog severity 0-7 (RFC 5424 6.2.1) to the names records carry.
SYSLOG_SEVERITY_LEVELS: Final = (
    "critical",  # emergency
    "critical",  # alert
    "critical",  # critical
    "error",
    "warning",
    "info",  # notice
    "info",
    "debug",
)

#: Every spelling a sender may use, by the stdlib number it compares as.
RANKS: Final = {
    "trace": 5,
    "debug": 10,
    "info": 20,
    "notice": 25,
    "warning": 30,
    "warn": 30,
    "error": 40,
    "err": 40,
    "critical": 50,
    "crit": 50,
    "fatal": 50,
    "alert": 50,
    "emergency": 50,
    "emerg": 50,
}
#: A level nobody knows compares as ``info``: shown by default, hidden by ``--level warning``.
UNKNOWN_RANK: Final = 20
_LEVEL_NUMBER: Final = re.compile(r"(?:level )?(\d{1,6})")
#: Level numbers are written out only in this range: a hostile sender may
#: claim ``10**5000``, whose decimal text Python refuses to make (and whose
#: rank, like any past six digits, is unknown anyway).
_LEVEL_NUMBERS: Final = range(-(10**18), 10**18)


def level_from_number(number: Any) -> str:
    """The name a stdlib level number is stored under (``"level 15"`` for unnamed ones).

    A number that is not an ``int`` or is out of any sane range is ``info``.
    """
    if type(number) is int:
        name = NAMES_BY_NUMBER.get(number)
        if name is not None:
            return name
        if number in _LEVEL_NUMBERS:
            return f"level {number}"
    return "info"


def known_rank(level: str) -> int | None:
    """The rank of a known name, ``level N`` or ``N``; ``None`` for anything else."""
    name = level.strip().lower()
    rank = RANKS.get(name)
    if rank is not None:
        return rank
    match = _LEVEL_NUMBER.fullmatch(name)
    return int(match.group(1)) if match else None


def level_rank(level: str) -> int:
    """The rank a record's level compares by: :func:`known_rank`, else info's."""
    rank = known_rank(level)
    return UNKNOWN_RANK if rank is None else rank
