"""The filters of ``netlog tail``: which stored records to show.

A :class:`Filter` looks at one parsed JSON line, not a :class:`~netlog.record.Record`:
turning every line back into a record only to drop most of them would cost
more than the filtering.  :class:`Selector` puts the parsing and the filter
together in the one call per line that the store's readers take.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson

from netlog.decode.normalize import parse_timestamp
from netlog.levels import level_rank
from netlog.store.records import as_text

__all__ = ["Filter", "Selector", "parse_since"]

_DURATION: Final = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: Record keys ``--field KEY=VALUE`` falls back to when ``fields`` has no KEY.
_TOP_LEVEL: Final = (
    "level", "logger", "message", "peer", "format", "ts", "received", "exc", "host",
)  # fmt: skip
_MISSING: Final = object()


def parse_since(text: str, now: float) -> float:
    """Epoch seconds for ``--since``: an RFC 3339 time, or a duration before ``now``."""
    value = text.strip()
    if _DURATION.fullmatch(value):
        seconds = sum(float(number) * _UNIT[unit] for number, unit in _DURATION_PART.findall(value))
        return now - seconds
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an RFC 3339 time nor a duration like 30s, 10m, 2h, 1d"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _lookup(obj: dict[str, Any], key: str) -> Any:
    """``fields[key]`` (dotted keys reach into nested objects), else a record key, else missing."""
    fields = obj.get("fields")
    if isinstance(fields, dict):
        if key in fields:
            return fields[key]
        if "." in key:
            value: Any = fields
            for part in key.split("."):
                if not isinstance(value, dict) or part not in value:
                    break
                value = value[part]
            else:
                return value
    if key in _TOP_LEVEL and key in obj:
        return obj[key]
    return _MISSING


@dataclass(frozen=True, slots=True)
class Filter:
    """The filters of one ``netlog tail``; a record passes when every one matches."""

    min_level: int | None = None
    loggers: tuple[str, ...] = ()
    grep: str | None = None
    """Lower-cased text looked for in the message, the traceback and the field values."""
    regex: re.Pattern[str] | None = None
    since: float | None = None
    fields: tuple[tuple[str, str], ...] = ()

    def matches(self, obj: dict[str, Any]) -> bool:
        """Whether the record ``obj`` (one parsed JSON line) passes."""
        level = self.min_level
        if level is not None and level_rank(as_text(obj.get("level", ""))) < level:
            return False
        if self.loggers:
            name = as_text(obj.get("logger", ""))
            if not any(name == p or name.startswith(p + ".") for p in self.loggers):
                return False
        if (self.grep is not None or self.regex is not None) and not self._text_matches(obj):
            return False
        if self.since is not None:
            ts = parse_timestamp(obj.get("ts"))
            if ts is None or ts < self.since:
                return False
        return all(
            (value := _lookup(obj, key)) is not _MISSING and as_text(value) == want
            for key, want in self.fields
        )

    def _text_matches(self, obj: dict[str, Any]) -> bool:
        """Whether the message, the traceback or a field value holds the text.

        What a bare word of the query language searches (the README's "Finding
        records"), so ``netlog tail --grep`` and the viewer find the same
        records.  Each text is tried on its own: ``^`` anchors at the start
        of a message or of a value.  A nested field value is its JSON.
        """
        return any(
            (self.grep is None or self.grep in text.lower())
            and (self.regex is None or self.regex.search(text) is not None)
            for text in _searched(obj)
        )


def _searched(obj: dict[str, Any]) -> Iterator[str]:
    """The texts a word is looked for in: message, traceback, each field value."""
    yield as_text(obj.get("message", ""))
    exc = obj.get("exc")
    if exc is not None:
        yield as_text(exc)
    fields = obj.get("fields")
    if isinstance(fields, dict):
        for value in fields.values():
            yield as_text(value)


class Selector:
    """Parses stored lines, keeps the records a filter passes, counts the lines that are not.

    :meth:`parse` is what :func:`netlog.store.reader.last_lines` takes; the
    count of lines that were not JSON objects is for the user, at the end.
    """

    def __init__(self, keep: Filter) -> None:
        self.filter = keep
        self.bad = 0

    def parse(self, line: bytes) -> dict[str, Any] | None:
        """The record on ``line`` if it passes the filter; blank and bad lines give None."""
        if not line.strip():
            return None
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.bad += 1
            return None
        if type(obj) is not dict:
            self.bad += 1
            return None
        return obj if self.filter.matches(obj) else None
