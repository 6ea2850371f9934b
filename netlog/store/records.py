"""Stored lines back into records: the reading side of :func:`netlog.sinks.encode.encode_line`.

A store may also hold lines some other program wrote (a foreign JSONL file
named on ``netlog tail``'s command line), so every value is taken as it
comes: whatever a key holds becomes text, never an error.
"""

from __future__ import annotations

from typing import Any

import orjson

from netlog.decode.normalize import parse_timestamp
from netlog.record import Record

__all__ = ["as_text", "record_from_json"]


def as_text(value: Any) -> str:
    """A stored value as text: strings as they are, anything else as its JSON."""
    if type(value) is str:
        return value
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return str(value)


def record_from_json(obj: dict[str, Any]) -> Record:
    """Turn one stored JSON line back into a :class:`Record` for the console."""
    ts = parse_timestamp(obj.get("ts"))
    received = parse_timestamp(obj.get("received"))
    ts_value = ts if ts is not None else (received or 0.0)
    fields = obj.get("fields")
    exc = obj.get("exc")
    return Record(
        ts_value,
        received if received is not None else ts_value,
        as_text(obj.get("level", "info")),
        as_text(obj.get("logger") or ""),
        as_text(obj.get("message") or ""),
        fields if isinstance(fields, dict) else {},
        None if exc is None else as_text(exc),
        as_text(obj.get("peer") or ""),
        as_text(obj.get("format") or ""),
        as_text(obj.get("id") or ""),
        as_text(obj.get("host") or ""),
    )
