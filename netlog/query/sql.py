"""Parsed query terms to a DuckDB ``WHERE`` clause with bound parameters only.

Nothing a user typed is ever pasted into SQL: every value, every JSON path
(built from field names :func:`~netlog.query.language.parse_field` has
already restricted to ``[A-Za-z0-9_@$-]`` segments, and quoted) and every
pattern goes in as a ``?`` parameter.  The SQL text itself is made only of
this module's constants.

Each condition reads the raw stored line (the ``json`` column of
``read_ndjson_objects``).  Where it is safe, a term also gets a cheap
prefilter on the raw line (``ILIKE``/``contains`` of the value as it is
spelled in JSON), so that the JSON of most lines is never parsed: the exact
test runs only on lines that contain the text at all.
"""

from __future__ import annotations

from typing import Final

import orjson

from netlog.levels import RANKS, UNKNOWN_RANK
from netlog.query.language import Term

__all__ = ["LEVEL_RANK_MACRO", "json_path", "value", "where"]

#: ``level_rank(text)`` in SQL, the same ranks as :func:`netlog.levels.level_rank`;
#: made from :data:`netlog.levels.RANKS` (our constants, not user text).
LEVEL_RANK_MACRO: Final = (
    "CREATE OR REPLACE TEMP MACRO level_rank(l) AS coalesce(CASE lower(trim(l)) "
    + " ".join(f"WHEN '{name}' THEN {rank}" for name, rank in RANKS.items())
    + " END, TRY_CAST(regexp_extract(lower(trim(l)), '^(?:level )?([0-9]{1,6})$', 1) AS INTEGER), "
    + f"{UNKNOWN_RANK})"
)
#: The values of ``fields`` (top level; nested objects as their JSON) joined, for text search.
_FIELD_VALUES: Final = "array_to_string(json_extract_string(json, '$.fields.*'), chr(10))"
_TEXT: Final = (
    "(contains(lower(coalesce(json->>'$.message', '')), ?) "
    "OR contains(lower(coalesce(json->>'$.exc', '')), ?) "
    f"OR contains(lower(coalesce({_FIELD_VALUES}, '')), ?))"
)
#: The same test over a compacted file's columns (netlog.store.compact): no JSON parsed.
#: ``search`` (all three, lower case, in one column) first: a cheap prefilter.
_TEXT_COLUMNS: Final = (
    "(contains(search, ?) AND "
    "(contains(lower(coalesce(message, '')), ?) "
    "OR contains(lower(coalesce(exc, '')), ?) "
    "OR contains(lower(coalesce(field_values, '')), ?)))"
)
#: Top-level keys a compacted file holds as columns of the same name
#: (each ``json->>'$.key'``, see netlog.store.compact.COLUMNS).
_COLUMN_KEYS: Final = frozenset(
    {"level", "logger", "message", "exc", "peer", "format", "host", "id"}
)
_COMPARE: Final = {">": ">", ">=": ">=", "<": "<", "<=": "<="}


def json_path(key: tuple[str, ...]) -> str:
    """The JSON path of a parsed key, every segment quoted: ``$."fields"."a-b"``."""
    return "$." + ".".join(f'"{part}"' for part in key)


def value(key: tuple[str, ...], params: list[object], *, columns: bool = False) -> str:
    """SQL for a key's value as text (NULL when absent), appending its parameters.

    ``columns``: over a compacted file's columns rather than the raw line.
    """
    if columns and len(key) == 1 and key[0] in _COLUMN_KEYS:
        return key[0]  # one of our constant column names, never user text
    if columns and len(key) > 1 and key[0] == "fields":
        params.append(json_path(key[1:]))
        return "json_extract_string(fields, ?)"
    params.append(json_path(key))
    return "json_extract_string(json, ?)"


def _has(key: tuple[str, ...], params: list[object], *, columns: bool) -> str:
    """``has:key``; a field over a compacted file's ``fields``, not the whole line."""
    if columns and len(key) > 1 and key[0] == "fields":
        params.append(json_path(key[1:]))
        return "coalesce(json_exists(fields, ?), false)"
    params.append(json_path(key))
    return "coalesce(json_exists(json, ?), false)"


def _like_pattern(text: str) -> str:
    r"""``%text%`` for ``ILIKE ... ESCAPE '\'``: ``%``, ``_`` and ``\`` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _spelled_as_is(text: str) -> bool:
    """Whether ``text`` appears in a stored line exactly as it is (no JSON escape changes it).

    ASCII only, so ``ILIKE``'s case folding is Python's too.
    """
    return bool(text) and text.isascii() and orjson.dumps(text)[1:-1].decode() == text


def _condition(term: Term, params: list[object], *, columns: bool) -> str:  # noqa: PLR0911 - one return per kind of term
    """One term's SQL (its prefilter ANDed in), appending its parameters."""
    op, key, term_value = term.op, term.key, term.value
    if op == "text":
        word = str(term_value)
        if columns:
            params.extend([word, word, word, word])
            return _TEXT_COLUMNS
        params.extend([word, word, word])
        if _spelled_as_is(word):
            params.insert(len(params) - 3, _like_pattern(word))
            return f"(json ILIKE ? ESCAPE '\\' AND {_TEXT})"
        return _TEXT
    if op == "has":
        return _has(key, params, columns=columns)
    if key == ("level",) and op in _COMPARE:
        params.append(term_value)
        level = "level" if columns else "json->>'$.level'"
        return f"(level_rank(coalesce({level}, '')) {_COMPARE[op]} ?)"
    if op in _COMPARE:
        extracted = value(key, params, columns=columns)
        params.append(term_value)
        return f"(TRY_CAST({extracted} AS DOUBLE) {_COMPARE[op]} ?)"
    text = str(term_value)
    if key == ("logger",):
        logger = "logger" if columns else "json->>'$.logger'"
        params.extend([text, text + "."])
        test = f"({logger} = ? OR starts_with({logger}, ?))"
    elif key == ("level",):
        params.append(text)
        test = "(lower(level) = ?)" if columns else "(lower(json->>'$.level') = ?)"
    else:
        mark = len(params)
        test = f"({value(key, params, columns=columns)} = ?)"
        params.append(text)
        if op != "!=" and _spelled_as_is(text) and test.startswith("(json_extract_string("):
            # The raw text the value must appear in: the line, or the fields' JSON.
            haystack = "fields" if test.startswith("(json_extract_string(fields") else "json"
            params.insert(mark, text)
            return f"(contains({haystack}, ?) AND {test})"
    if op == "!=":
        return f"NOT coalesce({test}, false)"
    if _spelled_as_is(text) and key != ("level",) and not columns:
        params.insert(len(params) - 2, text)  # before the test's two parameters
        return f"(contains(json, ?) AND {test})"
    return test


def where(terms: list[Term], *, columns: bool = False) -> tuple[str, list[object]]:
    """``(sql, params)``: every term must match; ``TRUE`` for no terms.

    ``columns``: for a compacted file (netlog.store.compact), whose columns
    hold what each term reads; otherwise for the raw line of a JSONL file.
    """
    parts: list[str] = []
    params: list[object] = []
    for term in terms:
        sql = _condition(term, params, columns=columns)
        # A plain term stays a bare conjunct (NULL fails a WHERE anyway), so
        # DuckDB evaluates its exact test only on rows its prefilter passed.
        parts.append(f"NOT coalesce({sql}, false)" if term.negated else sql)
    return (" AND ".join(parts) if parts else "TRUE"), params
