"""The query language of the viewer, the HTTP API and ``netlog query``: text to terms.

Space-separated terms, all of which must match (the README's "Finding records"):

* ``word`` or ``"quoted phrase"``: in the message, the traceback or a field
  value, ignoring case;
* ``key=value``, ``key!=value``: exact (``level`` ignoring case;
  ``logger=app`` is ``app`` and ``app.*``);
* ``key>N``, ``>=``, ``<``, ``<=``: numbers, or levels by rank for
  ``level`` (``level>=warning``);
* ``has:key``: the key is there;
* ``-term``: the term does not match.

``key`` is a top-level key (:data:`TOP_LEVEL`) or a field, dotted for nesting
(``fields.`` in front reaches a field named like a top-level key).  This
module is pure: text in, :class:`Term` tuples out, or :class:`QueryError`
with the position of the problem; it never raises anything else (a property
test holds it to that), so the engine builds its SQL only from checked terms.
"""

from __future__ import annotations

import math
import re
from typing import Final, Literal, NamedTuple

from netlog.levels import known_rank

__all__ = [
    "MAX_QUERY",
    "MAX_TERMS",
    "TOP_LEVEL",
    "QueryError",
    "Term",
    "parse_field",
    "parse_query",
]

#: Keys of the stored record a query names directly; any other key is a field.
TOP_LEVEL: Final = ("level", "logger", "peer", "format", "message", "host", "id", "exc")
#: A query longer than this is refused: a page's query box, not a document.
MAX_QUERY: Final = 4096
#: More terms than this are refused: each one is a condition on every record.
MAX_TERMS: Final = 64
#: One key segment: what field names look like (structlog, extra=, OTLP attributes).
_SEGMENT: Final = re.compile(r"[A-Za-z0-9_@$\-]+")
#: The operators, longest first so ``>=`` is not read as ``>``.
_OPERATORS: Final = ("!=", ">=", "<=", "=", ">", "<")
_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
#: Levels compared by rank: the names ``netlog tail --level`` takes.
_LEVEL_HINT: Final = "debug, info, warning, error, critical, or a number"

Op = Literal["text", "=", "!=", ">", ">=", "<", "<=", "has"]


class QueryError(ValueError):
    """A query, range, cursor or field the engine cannot take; the message is for the user."""


class Term(NamedTuple):
    """One checked term of a query."""

    op: Op
    """``text`` (a word or phrase), a comparison, or ``has``."""
    key: tuple[str, ...]
    """The path: ``("level",)`` for a top-level key, ``("fields", "a", "b")`` for ``a.b``."""
    value: str | float
    """The text (lower case for ``text`` and ``level=``), the number, or a level's rank."""
    negated: bool = False


def parse_field(name: str) -> tuple[str, ...]:
    """The path a key names (``level`` -> ``("level",)``, ``a.b`` -> ``("fields", "a", "b")``)."""
    if not name:
        raise QueryError("an empty field name")
    parts = name.split(".")
    for part in parts:
        if not _SEGMENT.fullmatch(part):
            raise QueryError(
                f"{name!r} is not a field name (letters, digits, _ @ $ -, dots between)"
            )
    if len(parts) == 1 and parts[0] in TOP_LEVEL:
        return (parts[0],)
    if parts[0] == "fields" and len(parts) > 1:
        return tuple(parts)
    return ("fields", *parts)


def _raw_tokens(text: str) -> list[tuple[int, str]]:
    """Split on spaces outside quotes: ``(position, token with its quotes)``."""
    out: list[tuple[int, str]] = []
    i, size = 0, len(text)
    while i < size:
        if text[i].isspace():
            i += 1
            continue
        start, quote = i, -1
        while i < size and (quote >= 0 or not text[i].isspace()):
            char = text[i]
            if quote >= 0 and char == "\\" and i + 1 < size:
                i += 2
                continue
            if char == '"':
                quote = i if quote < 0 else -1
            i += 1
        if quote >= 0:
            raise QueryError(f"position {quote + 1}: a quote that is never closed")
        out.append((start, text[start:i]))
    return out


def _unquote(raw: str) -> str:
    r"""A token's text without its quotes; inside them ``\"`` and ``\\`` are escapes."""
    out: list[str] = []
    i, size, quoted = 0, len(raw), False
    while i < size:
        char = raw[i]
        if quoted and char == "\\" and i + 1 < size and raw[i + 1] in '"\\':
            out.append(raw[i + 1])
            i += 2
            continue
        if char == '"':
            quoted = not quoted
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _operator_at(raw: str) -> int:
    """Where the first operator outside quotes starts in a token, or -1."""
    quoted = False
    for i, char in enumerate(raw):
        if char == '"' and (i == 0 or raw[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and (char in "=<>" or (char == "!" and raw[i + 1 : i + 2] == "=")):
            return i
    return -1


def parse_query(text: str) -> list[Term]:
    """The terms of a query; :class:`QueryError` naming the problem and where it is."""
    if not isinstance(text, str):
        raise QueryError("the query must be text")
    if len(text) > MAX_QUERY:
        raise QueryError(f"the query is longer than {MAX_QUERY} characters")
    tokens = _raw_tokens(text)
    if len(tokens) > MAX_TERMS:
        raise QueryError(f"the query has more than {MAX_TERMS} terms")
    return [_term(position, raw) for position, raw in tokens]


def _term(position: int, raw: str) -> Term:
    where = f"position {position + 1}"
    negated = raw.startswith("-") and len(raw) > 1
    body = raw[1:] if negated else raw
    if body.startswith("has:"):
        name = body[4:]
        if not name:
            raise QueryError(f"{where}: has: needs a field name (has:user)")
        return Term("has", _field_at(where, name), "", negated)
    at = _operator_at(body)
    if at < 0:
        word = _unquote(body)
        if not word.strip():
            raise QueryError(f"{where}: an empty phrase")
        return Term("text", ("text",), word.lower(), negated)
    name, rest = body[:at], body[at:]
    operator = next(op for op in _OPERATORS if rest.startswith(op))
    if not name:
        raise QueryError(f"{where}: {operator} needs a field name before it (status{operator}500)")
    value = _unquote(rest[len(operator) :])
    return _comparison(where, _field_at(where, name), operator, value, negated)


def _field_at(where: str, name: str) -> tuple[str, ...]:
    try:
        return parse_field(name)
    except QueryError as exc:
        raise QueryError(f"{where}: {exc}") from None


def _comparison(where: str, key: tuple[str, ...], operator: str, value: str, negated: bool) -> Term:
    op: Op = operator  # type: ignore[assignment]  # one of _OPERATORS, all Op names
    if operator in {"=", "!="}:
        if key == ("level",):
            value = value.lower()
        return Term(op, key, value, negated)
    if not value:
        raise QueryError(f"{where}: {operator} needs a number after it")
    if key == ("level",):
        rank = known_rank(value)
        if rank is None:
            raise QueryError(f"{where}: {value!r} is not a level ({_LEVEL_HINT})")
        return Term(op, key, float(rank), negated)
    if not _NUMBER.fullmatch(value):
        raise QueryError(f"{where}: {value!r} is not a number ({operator} compares numbers)")
    number = float(value)
    if not math.isfinite(number):
        raise QueryError(f"{where}: {value!r} is not a finite number")
    return Term(op, key, number, negated)
