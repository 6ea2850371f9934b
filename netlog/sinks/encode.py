"""One record to one JSONL line, whatever the record holds.

Records come from the network: a pickle can carry lone surrogates, integer
keys, 100-digit integers, self-referencing lists or objects that orjson has
never heard of.  The sink must write every record anyway, so
:func:`encode_line` tries the fast path (one ``orjson.dumps`` of a plain
dict) and, only when that fails, encodes a sanitised copy that orjson is
certain to accept.  It never raises and never counts anything: it is pure,
so the sinks and the benchmarks can call it freely.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from netlog.record import ID_LENGTH, Record, rfc3339
from netlog.sinks.safe_text import UNSAFE_JSON_BYTES, json_escape_match

__all__ = ["encode_line", "format_time", "line_id", "sanitize"]

_NEWLINE: Final = b"\n"


def _dumps_line(obj: Any) -> bytes:
    r"""``orjson.dumps(obj)`` plus ``b"\n"``, as a compact ``bytes`` object.

    orjson returns its output in a buffer of at least ~4 KiB whatever the
    length (measured with orjson 3.13: a 196-byte line held 4,098 bytes), so
    a queue of lines waiting for the disk took 20x the memory it counted.
    Adding the newline by concatenation instead of ``OPT_APPEND_NEWLINE``
    copies the line into an object of its own size for the same cost.
    """
    return orjson.dumps(obj) + _NEWLINE


# orjson refuses more than 254 nested containers; the record itself and its
# ``fields`` object take two, so leave a wide margin.
_MAX_DEPTH: Final = 200
# A pickle can reference one list many times (a DAG), so a few hundred bytes
# can describe 2**100 nodes; the sanitiser stops expanding after this many.
_MAX_NODES: Final = 100_000

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1

# Datetime formatting costs ~5 µs; records arrive in bursts within the same
# second, so caching the whole-second prefix makes a timestamp ~0.3 µs.
_SECOND_CACHE: dict[int, str] = {}
_SECOND_CACHE_MAX: Final = 4096
# Years 1970..9999 keep the fixed-width prefix ``YYYY-MM-DDTHH:MM:SS.``;
# anything else takes the slow, clamping path of :func:`rfc3339`.
_CACHE_LIMIT: Final = 253_402_300_799.0
_EPOCH: Final = "1970-01-01T00:00:00.000000Z"
# The last receive time encode_line formatted, and its text.
_last_received: list[Any] = [None, _EPOCH]


def format_time(ts: float) -> str:
    """RFC 3339 text for epoch seconds, identical to :func:`rfc3339` but cached.

    Never raises: a timestamp that is not a number becomes the epoch, because
    losing the record over a bad clock field would be worse.
    """
    if type(ts) is float and 0.0 <= ts < _CACHE_LIMIT:
        # Same split (ts - int(ts) is exact in binary floating point) and
        # half-even rounding as datetime.fromtimestamp, so the result matches
        # rfc3339() to the microsecond.
        second = int(ts)
        micros = round((ts - second) * 1e6)
        if micros >= 1_000_000:
            second += 1
            micros -= 1_000_000
        prefix = _SECOND_CACHE.get(second)
        if prefix is None:
            if len(_SECOND_CACHE) >= _SECOND_CACHE_MAX:
                _SECOND_CACHE.clear()
            prefix = rfc3339(float(second))[:-7]
            _SECOND_CACHE[second] = prefix
        return f"{prefix}{micros:06d}Z"
    try:
        return rfc3339(float(ts))
    except Exception:  # noqa: BLE001 - any object may arrive; the record must survive
        return _EPOCH


def encode_line(record: Record, new: str = "") -> bytes:
    r"""Encode *record* as one UTF-8 JSON line ending in ``b"\n"``.

    Keys follow ARCHITECTURE.md's order; ``exc`` and ``host`` (a collected record's
    machine, just before ``id``) are left out when there is none.
    ``id`` is the record's own when it has one (forwarded from another
    netlog), else ``new`` (the pipeline passes :func:`~netlog.record.new_id`'s),
    and left out when both are empty, so the function stays pure: the same
    record and arguments give the same line.  It comes last, where
    :func:`line_id` finds it without parsing the line.
    Control characters are escaped by orjson and the rest of what could
    break a line or drive a terminal by :data:`~netlog.sinks.safe_text.UNSAFE_JSON_BYTES`,
    so the result is exactly one line under any line-splitting rule.
    """
    try:
        ts, received, level, logger, message, fields, exc, peer, fmt, record_id, host = record
        # Readers may rely on ARCHITECTURE.md's types; a decoder slip (None for a
        # message, a tuple peer) goes the slow way and comes out as text.
        if not (
            type(message) is str
            and type(level) is str
            and type(logger) is str
            and type(peer) is str
            and type(fmt) is str
            and type(fields) is dict
            and (exc is None or type(exc) is str)
            and type(record_id) is str
            and type(host) is str
        ):
            return _finish(_encode_sanitized(record, new))
        # Every record of one read shares its receive time: format it once.
        if received != _last_received[0]:
            _last_received[:] = [received, format_time(received)]
        if record_id and _is_id(record_id):
            new = record_id
        if exc is None and not host and new:
            # The common record (no traceback, not collected, with an id),
            # built in its final shape rather than built whole and pruned.
            line = (
                _dumps(
                    {
                        "ts": format_time(ts),
                        "received": _last_received[1],
                        "level": level,
                        "logger": logger,
                        "message": message,
                        "fields": fields,
                        "peer": peer,
                        "format": fmt,
                        "id": new,
                    }
                )
                + _NEWLINE
            )
        else:
            obj = {
                "ts": format_time(ts),
                "received": _last_received[1],
                "level": level,
                "logger": logger,
                "message": message,
                "fields": fields,
                "exc": exc,
                "peer": peer,
                "format": fmt,
                "host": host,
                "id": new,
            }
            if exc is None:
                del obj["exc"]  # absent, not null; the other keys keep their order
            if not host:
                del obj["host"]  # only collected records name a host: other lines are unchanged
            if not new:
                del obj["id"]
            line = _dumps(obj) + _NEWLINE  # compact: see _dumps_line
    except Exception:  # noqa: BLE001 - orjson raises TypeError subclasses, a bad record anything
        line = _encode_sanitized(record, new)
    # _finish, inlined for the common ASCII line without DEL.
    if line.isascii() and b"\x7f" not in line:
        return line
    return UNSAFE_JSON_BYTES.sub(json_escape_match, line)


_dumps: Final = orjson.dumps


def _is_id(value: str) -> bool:
    """Whether a record's own id may be kept: our length and alphabet (it ends the line)."""
    return len(value) == ID_LENGTH and value.isascii() and value.isalnum()


def line_id(line: bytes) -> str:
    r"""The id of a line :func:`encode_line` made, read from its fixed place at the end.

    ``line`` ends in ``"id":"<26 characters>"}\n``: the viewer's feed uses this to
    keep the id of a record it shows cut short.  Empty when the line does not.
    """
    tail = line[-(ID_LENGTH + 9) :]
    if tail[:6] == b'"id":"' and tail[-3:] == b'"}\n':
        return tail[6:-3].decode("ascii", "replace")
    return ""


def _finish(line: bytes) -> bytes:
    """Escape what orjson leaves raw but a line reader or a terminal would obey.

    orjson escapes only U+0000-U+001F; DEL, the C1 controls, the Unicode line
    separators and the bidi controls come out raw (valid JSON, but see
    :mod:`netlog.sinks.safe_text`).  All of them are DEL or non-ASCII, so
    an ASCII line without DEL (the common case) skips the regex.
    """
    if not line.isascii() or b"\x7f" in line:
        return UNSAFE_JSON_BYTES.sub(json_escape_match, line)
    return line


def _encode_sanitized(record: Any, new: str = "") -> bytes:
    """Slow path: rebuild the record from types orjson always accepts."""
    try:
        budget = [_MAX_NODES]
        values = list(record)
        values += [None] * (11 - len(values))
        ts, received, level, logger, message, fields, exc, peer, fmt, record_id, host = values[:11]
        clean_fields = sanitize(fields, budget=budget)
        if not isinstance(clean_fields, dict):
            clean_fields = {"value": clean_fields}
        obj: dict[str, Any] = {
            "ts": format_time(ts),
            "received": format_time(received),
            "level": _text(level),
            "logger": _text(logger),
            "message": _text(message),
            "fields": clean_fields,
        }
        if exc is not None:
            obj["exc"] = _text(exc)
        obj["peer"] = _text(peer)
        obj["format"] = _text(fmt)
        if host:
            obj["host"] = _text(host)
        own = record_id if type(record_id) is str and _is_id(record_id) else new
        if own:
            obj["id"] = _text(own)
        return _dumps_line(obj)
    except Exception:  # noqa: BLE001 - last resort: a line that says what happened beats a crash
        return _dumps_line(
            {
                "ts": _EPOCH,
                "received": _EPOCH,
                "level": "error",
                "logger": "netlog",
                "message": "<unencodable record>",
                "fields": {},
                "peer": "",
                "format": "",
                **({"id": _text(new)} if new else {}),
            }
        )


def _text(value: Any) -> str:
    """Coerce a top-level value that must be text (``message``...) to clean text."""
    if value is None:
        return ""
    clean = sanitize(value, budget=[_MAX_NODES])
    return clean if isinstance(clean, str) else orjson.dumps(clean).decode()


def _clean_str(value: str) -> str:
    """Make an exact, surrogate-free ``str`` (orjson refuses lone surrogates)."""
    value = str.__str__(value)  # drops a subclass without calling its overrides
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _key(key: Any) -> str:
    """Turn a mapping key into text the way the json module does for scalars."""
    if isinstance(key, str):
        return _clean_str(key)
    if key is None:
        return "null"
    if key is True:
        return "true"
    if key is False:
        return "false"
    if isinstance(key, (int, float)):
        return repr(key) if type(key) in {int, float} else _fallback_str(key)
    return _fallback_str(key)


def _fallback_str(value: Any) -> str:
    """``str(value)``, or a placeholder when even that fails."""
    try:
        text = str(value)
    except Exception:  # noqa: BLE001 - hostile __str__; the record is still kept
        text = object.__repr__(value)
    return _clean_str(text)


def sanitize(value: Any, *, budget: list[int] | None = None, depth: int = 0) -> Any:
    """Return a copy of *value* built only from types orjson accepts unconditionally.

    Surrogates are backslash-escaped, integers beyond 64 bits and unknown
    types become text, NaN and infinities stay floats (orjson writes
    ``null``), bytes are decoded with backslash escapes, and containers deeper
    than :data:`_MAX_DEPTH` or beyond the node *budget* (shared by the whole
    walk, so self-references and DAGs stay bounded) become placeholders.
    """
    if budget is None:
        budget = [_MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        return "<truncated>"
    try:
        return _sanitize(value, budget, depth)
    except Exception:  # noqa: BLE001 - a container's own methods may raise; keep the rest
        return "<unrepresentable>"


def _sanitize(value: Any, budget: list[int], depth: int) -> Any:
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        if depth >= _MAX_DEPTH:
            return "<too deep>"
        if isinstance(value, dict):
            return {
                _key(k): sanitize(v, budget=budget, depth=depth + 1) for k, v in dict.items(value)
            }
        return [sanitize(v, budget=budget, depth=depth + 1) for v in value]
    return _scalar(value)


def _scalar(value: Any) -> Any:
    if isinstance(value, str):
        return _clean_str(value)
    if value is None or isinstance(value, bool):  # bool cannot be subclassed
        return value
    if isinstance(value, int):
        number = int.__int__(value)  # an IntEnum or subclass becomes a plain int
        return number if _INT_MIN <= number <= _INT_MAX else str(number)
    if isinstance(value, float):
        return float.__float__(value)  # NaN and infinities: orjson writes null
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return _fallback_str(value)
