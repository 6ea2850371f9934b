"""Level names and ranks: the one table every decoder, filter and query uses.

Senders name levels in many ways (stdlib numbers, syslog severities,
``warn``/``err``/``fatal`` spellings, pino's 10-60 scale, .NET's
``Information``, Go's ``panic``, slog's ``INFO+2``); records keep the
sender's lower-case name when it is one of :data:`RANKS`' usual names,
other ecosystems' words are mapped onto those (:data:`SPELLINGS`), and
comparisons such as ``--level warning`` or ``level>=warning`` go through
:func:`level_rank`, so every spelling of one severity compares equal.
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
    # Other ecosystems' words, for queries and for a record that carries
    # one as it was sent (a JSON line's is mapped through SPELLINGS first).
    # Serilog's "verbose" is left out: as a query word it is too vague.
    "trce": 5,
    "debg": 10,
    "information": 20,
    "erro": 40,
    "dpanic": 50,
    "panic": 50,
}

#: Level words of other languages' loggers, lower case, onto the names
#: records carry: .NET's Serilog and Microsoft.Extensions.Logging
#: (``Verbose``, ``Information``), Go's zap/zerolog/logrus (``dpanic``,
#: ``panic``: worse than error, the program is going down), Rust slog's
#: four-letter short names (``TRCE``, ``DEBG``, ``ERRO``).
SPELLINGS: Final = {
    "verbose": "trace",
    "trce": "trace",
    "debg": "debug",
    "information": "info",
    "erro": "error",
    "dpanic": "critical",
    "panic": "critical",
}

#: pino's and bunyan's numeric scale (Node): their own level labels.
PINO_LEVELS: Final = {
    10: "trace",
    20: "debug",
    30: "info",
    40: "warn",
    50: "error",
    60: "fatal",
}
#: A level nobody knows compares as ``info``: shown by default, hidden by ``--level warning``.
UNKNOWN_RANK: Final = 20
_LEVEL_NUMBER: Final = re.compile(r"(?:level )?(\d{1,6})")
#: Go slog's levels between its four names: ``INFO+2``, ``DEBUG-4``.
_OFFSET_NAME: Final = re.compile(r"([a-z]{1,12})[+-]\d{1,6}")
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


def level_from_name(text: str) -> tuple[str, bool]:
    """The name a sender's level word is stored under, and whether it says all the word did.

    Lower case; another ecosystem's word becomes netlog's (``Information``
    -> ``info``, ``panic`` -> ``critical``).  slog's ``INFO+2`` is stored as
    its base name ``info`` (slog names a level by the named one at or below
    it, so it ranks at least as that), with ``False``: the caller keeps the
    original word in the record's fields.
    """
    name = text.lower()
    spelled = SPELLINGS.get(name)
    if spelled is not None:
        return spelled, True
    if name in RANKS:
        return name, True
    match = _OFFSET_NAME.fullmatch(name)
    if match is not None:
        base = SPELLINGS.get(match.group(1), match.group(1))
        if base in RANKS:
            return base, False
    return name, True


def level_from_pino(number: int) -> tuple[str, bool]:
    """pino's/bunyan's name for a number on their 10-60 scale, and whether it was exact.

    A custom level between two of theirs is stored as the one below it
    (``35`` -> ``info``), under 10 as ``trace``, over 60 as ``fatal``, with
    ``False``: the caller keeps the number in the record's fields.
    """
    name = PINO_LEVELS.get(number)
    if name is not None:
        return name, True
    if number < 10:
        return "trace", False
    if number > 60:
        return "fatal", False
    return PINO_LEVELS[number // 10 * 10], False


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
