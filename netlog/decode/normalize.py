"""Turn what a decoder found (LogRecord dict, JSON object, syslog message, line) into a Record.

This is where DESIGN.md's "Records on disk" is applied, so every decoder
produces the same shape: ``message``, ``logger`` and ``level`` are always
``str``, ``ts`` is epoch seconds, and ``fields`` holds only values a JSON
encoder can write.

Unpickled values are made JSON-safe by :func:`json_safe`, which is the one
place that walks untrusted structures.  It is depth-limited (deeper values
become a marker string, never a ``RecursionError``) and budgeted: a pickle
can reference one big string thousands of times through its memo, so a
210 KB frame may stand for a gigabyte of text.  Every character and item
produced is charged to a budget; past it the frame is rejected as
``bad_frame`` rather than expanded.

Control characters are *not* escaped here and lone surrogates from pickles
are kept: escaping is the sinks' business, done once when writing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import operator
import re
from typing import TYPE_CHECKING, Any, Final

import orjson

from netlog.decode.conventions import error_stack, loose_time, render_template, stack_text
from netlog.decode.unpickle import is_placeholder, render_placeholder, short_repr
from netlog.errors import DecodeError
from netlog.levels import (
    SYSLOG_SEVERITY_LEVELS,
    level_from_name,
    level_from_number,
    level_from_pino,
)
from netlog.record import Record, new_record

if TYPE_CHECKING:
    from netlog.decode.syslog import SyslogMessage

__all__ = [
    "MAX_DEPTH",
    "Budget",
    "expansion_budget",
    "from_json",
    "from_logrecord",
    "from_syslog",
    "from_text",
    "json_safe",
    "parse_timestamp",
]

#: Nesting deeper than this is replaced by a marker string.
MAX_DEPTH: Final = 64
_TOO_DEEP: Final = "<nested too deep>"
#: What a container inside itself (``L = [L]``) becomes where it recurs.
_CYCLE: Final = "<cycle>"

_INT_MIN: Final = -(1 << 63)
_INT_END: Final = 1 << 64  # orjson writes int64 and uint64, nothing wider
#: Wider ints are shown as ``<int of N bits>``: their decimal text costs
#: time quadratic in their size (270 µs for 4,000 digits), and a frame can
#: hold hundreds of them.  Up to here (~300 digits) it takes about 2 µs.
_INT_TEXT_BITS: Final = 1000


def expansion_budget(max_frame: int) -> int:
    """The most characters/items one frame may expand to: 4 x max_frame, at least 4 MiB."""
    return max(4 * max_frame, 4 << 20)


class Budget:
    """Characters and items a conversion may still produce; raises ``bad_frame`` when spent.

    It also remembers, for one frame, what :func:`json_safe` made of each
    object that is not a plain scalar, so an object the frame references
    many times (the pickle memo makes that two bytes a reference) is
    converted once.  Keep one budget per frame: the memory is keyed by
    ``id()``, and it holds the objects so that no id is reused meanwhile.
    """

    __slots__ = ("deepest", "left", "limit", "seen")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit
        self.seen: dict[int, list[Any]] = {}
        """``id(value)`` -> ``[value, result, size, height]``; ``_IN_PROGRESS`` while walked."""
        self.deepest = 0
        """The deepest level a container was converted at in the current walk."""

    def charge(self, amount: int) -> None:
        """Spend ``amount``; raise once the frame has expanded past the limit."""
        self.left -= amount
        if self.left < 0:
            raise DecodeError(
                "bad_frame",
                f"frame expands past {self.limit} characters (repeated references?)",
            )


_IN_PROGRESS: Final = object()


def json_safe(value: Any, budget: Budget, depth: int = 0) -> Any:  # noqa: PLR0911 - one flat type switch
    """Return ``value`` as str/int/float/bool/None/list/dict with str keys.

    datetimes become ISO 8601 text, sets become (sorted when they hold only
    scalars) lists, bytes become text with ``backslashreplace``,
    placeholders become their ``<module.name(...)>`` text; ints wider than
    64 bits and non-finite floats become text because JSON encoders refuse
    them.

    Each object other than a plain scalar is converted once per frame
    (``budget`` remembers it): a later reference to it gets the same result
    and is charged its size, so ``L = [L, L]`` nested 64 times is refused
    after one walk of its 64 lists instead of a walk of 2**64 nodes.  A
    container met again inside itself becomes ``"<cycle>"``.  The work is
    therefore one step per object and per reference in the frame (bounded
    by the frame's size), plus at most the budget's characters of output.
    """
    kind = type(value)
    if kind is str:
        budget.charge(len(value))
        return value
    if kind is int:
        if _INT_MIN <= value < _INT_END:
            budget.charge(1)
            return value
    elif kind is float:
        budget.charge(1)
        return value if math.isfinite(value) else repr(value)
    elif value is None or kind is bool:
        budget.charge(1)
        return value
    seen = budget.seen.get(id(value))
    if seen is not None:
        return _again(seen, budget, depth)
    if depth >= MAX_DEPTH:
        budget.charge(2)
        return _TOO_DEEP
    entry = [value, _IN_PROGRESS, 0, 0]
    budget.seen[id(value)] = entry
    left = budget.left
    outer = budget.deepest
    budget.deepest = depth
    result = _convert(value, kind, budget, depth)
    entry[1] = result
    entry[2] = left - budget.left
    entry[3] = budget.deepest - depth
    budget.deepest = max(outer, budget.deepest)
    return result


def _again(seen: list[Any], budget: Budget, depth: int) -> Any:
    """A second reference to an object already converted (or being converted) in this frame."""
    _value, result, size, height = seen
    if result is _IN_PROGRESS:
        budget.charge(len(_CYCLE))
        return _CYCLE
    if depth + height >= MAX_DEPTH:
        # Here the shared result would nest deeper than JSON encoders write.
        budget.charge(2)
        return _TOO_DEEP
    budget.charge(size)
    budget.deepest = max(budget.deepest, depth + height)
    return result


#: Set members that sort among themselves without walking a structure.
_SORTABLE: Final = frozenset({str, int, float, bool})


def _convert(value: Any, kind: type, budget: Budget, depth: int) -> Any:
    """:func:`json_safe` for a value met for the first time in its frame."""
    budget.charge(2)
    if isinstance(value, dict):
        return {
            _key(key, budget): json_safe(item, budget, depth + 1) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [json_safe(item, budget, depth + 1) for item in value]
    if isinstance(value, set | frozenset):
        items = [json_safe(item, budget, depth + 1) for item in value]
        # Only scalars are sorted: comparing two lists walks them, and two
        # equal-looking shared structures compare in exponential time.
        if all(type(item) in _SORTABLE for item in items):
            with contextlib.suppress(TypeError):  # mixed types keep their order
                items.sort()
        return items
    if kind is int:
        text = _big_int(value)
    elif isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", "backslashreplace")
    elif is_placeholder(value):
        text = render_placeholder(value)
    elif isinstance(value, dt.date | dt.time):
        text = value.isoformat()
    elif isinstance(value, dt.timedelta | dt.tzinfo):
        text = str(value)
    else:
        text = short_repr(value)
    budget.charge(len(text))
    return text


def _big_int(value: int) -> str:
    """An int too wide for JSON as text: decimal up to ~300 digits, else its size."""
    bits = value.bit_length()
    return str(value) if bits < _INT_TEXT_BITS else f"<int of {bits} bits>"


def _key(key: Any, budget: Budget) -> str:
    if type(key) is str:
        budget.charge(len(key))
        return key
    if key is None or isinstance(key, bool):
        text = orjson.dumps(key).decode()  # spelt as JSON would: null, true, false
    elif isinstance(key, int):
        text = _big_int(key)
    elif isinstance(key, float):
        text = repr(key)
    else:
        safe = json_safe(key, budget, MAX_DEPTH - 1)
        text = safe if isinstance(safe, str) else short_repr(key)
    budget.charge(len(text))
    return text


def _text(value: Any, budget: Budget) -> str:
    """Render a value that must be a ``str`` (message, logger, exc text)."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    safe = json_safe(value, budget)
    if isinstance(safe, str):
        return safe
    try:
        return orjson.dumps(safe).decode()
    except (TypeError, orjson.JSONEncodeError):  # lone surrogates inside
        return short_repr(safe, 4096)


# --- LogRecord dicts (SocketHandler / DatagramHandler) ----------------------

#: LogRecord attributes that are not user fields.  Kept compactly in
#: ``fields["_src"]`` or dropped: they describe the sender, and dumping all
#: twenty of them into every record would bury the user's own fields.
_LOGRECORD_ATTRS: Final = frozenset(
    {
        "name",
        "msg",
        "args",
        "levelname",
        "levelno",
        "pathname",
        "filename",
        "module",
        "exc_info",
        "exc_text",
        "stack_info",
        "lineno",
        "funcName",
        "created",
        "msecs",
        "relativeCreated",
        "thread",
        "threadName",
        "processName",
        "process",
        "taskName",
        "message",
        "asctime",
    }
)

_SRC_KEYS: Final = (
    ("file", "pathname"),
    ("line", "lineno"),
    ("func", "funcName"),
    ("process", "process"),
    ("thread", "threadName"),
    ("task", "taskName"),
)


#: The LogRecord attribute in which netlog.client carries the user's keys
#: that LogRecord owns (``thread=3`` from structlog): unpacked into ``fields``
#: under the names the user wrote (netlog.client.FIELDS_ATTR).
_CARRIED_FIELDS: Final = "netlog_fields"

#: A source inside structlog or logging is where the library called the
#: stdlib logger, never the application's line (structlog routed through a
#: plain stdlib logger records ``structlog/_base.py _proxy_to_logger``).
_LIBRARY_SOURCE: Final = re.compile(
    r"[/\\]structlog[/\\][^/\\]+\.py$|[/\\]logging[/\\](?:__init__|handlers|config)\.py$"
)

#: structlog's CallsiteParameterAdder keys, in the order of _SRC_KEYS' first
#: three: the application's own line, when the record carries them.
_CALLSITE_KEYS: Final = (("file", "pathname"), ("line", "lineno"), ("func", "func_name"))


def _unpack_carried(fields: dict[str, Any], carried: Any, budget: Budget) -> None:
    """The user's keys netlog.client carried, into ``fields`` as written."""
    unpacked = json_safe(carried, budget)
    if type(unpacked) is dict:
        for key, value in unpacked.items():
            fields.setdefault(key, value)
    else:  # not what netlog.client sends: kept as it came
        fields[_CARRIED_FIELDS] = unpacked


#: pathname -> whether it is inside structlog or logging; bounded like _USER_KEYS.
_LIBRARY_FILES: dict[str, bool] = {}


def _is_library_file(file: str) -> bool:
    """:data:`_LIBRARY_SOURCE` for a pathname, remembered: a sender has few source files."""
    known = _LIBRARY_FILES.get(file)
    if known is None:
        known = _LIBRARY_SOURCE.search(file) is not None
        if len(_LIBRARY_FILES) < _USER_KEYS_MAX:
            _LIBRARY_FILES[file] = known
    return known


def _caller_source(fields: dict[str, Any]) -> None:
    """A ``_src`` inside a library: its file/line/func become the callsite keys, or go."""
    src = fields.get("_src")
    if type(src) is not dict:
        return
    file = src.get("file")
    if not (type(file) is str and _is_library_file(file)):
        return
    for short, key in _CALLSITE_KEYS:
        value = fields.get(key)
        if value is None or isinstance(value, dict | list):
            src.pop(short, None)
        else:
            src[short] = value
    if not src:
        del fields["_src"]


def _epoch(value: Any, default: float) -> float:
    if type(value) is float or type(value) is int:
        try:
            number = float(value)
        except OverflowError:
            return default
        if math.isfinite(number):
            return number
    return default


def from_logrecord(
    data: dict[str, Any], peer: str, received: float, budget: Budget, fmt: str = "pickle"
) -> Record:
    """Normalise the dict ``SocketHandler.makePickle`` sends; ``fmt`` is the record's format.

    Raises ``DecodeError("bad_frame")`` when the values expand past ``budget``.

    This runs once per received LogRecord, so it avoids per-key Python work
    for what every frame has: which keys are the user's is looked up once
    per *set of keys* (:func:`_user_keys`, cached), and plain scalars
    (``str``, 64-bit ``int``, finite ``float``, ``None``, ``bool``) are
    taken as they are and only counted, so :func:`json_safe` runs only for
    the values that need converting.  The result is the same as converting
    every value with :func:`json_safe`.
    """
    get = data.get
    created = get("created")
    # _epoch, inlined for the common float (x - x is 0.0 only when x is finite).
    ts = (
        created
        if type(created) is float and created - created == 0.0
        else _epoch(created, received)
    )
    levelname = get("levelname")
    level = levelname.lower() if type(levelname) is str else level_from_number(get("levelno"))
    name = get("name")
    logger = name if type(name) is str else _text(name, budget)
    msg = get("msg")
    message = msg if type(msg) is str else _text(msg, budget)
    exc_text = get("exc_text")
    stack_info = get("stack_info")
    exc: str | None = _text(exc_text, budget) if exc_text else None
    if stack_info:
        stack = _text(stack_info, budget)
        exc = f"{exc}\n{stack}" if exc else stack

    fields, size = _logrecord_fields(data, budget)
    _caller_source(fields)
    budget.charge(size)
    return new_record(
        Record, (ts, received, level, logger, message, fields, exc, peer, fmt, "", "")
    )


#: The five source attributes every LogRecord has, fetched in one C call.
_SRC_FIVE: Final = operator.itemgetter("pathname", "lineno", "funcName", "process", "threadName")


def _src_of(data: dict[str, Any], budget: Budget) -> tuple[dict[str, Any], int]:
    """``fields["_src"]`` of a LogRecord dict, and the size of its shared ``str`` values.

    The common frame (the five attributes present as ``str`` and small
    ``int``) takes one lookup and one dict display; anything else the
    general loop, with the same result.
    """
    try:
        path, line, func, process, thread = _SRC_FIVE(data)
    except KeyError:
        pass
    else:
        if (
            type(path) is str
            and type(func) is str
            and type(thread) is str
            and type(line) is int
            and type(process) is int
            and _INT_MIN <= line < _INT_END
            and _INT_MIN <= process < _INT_END
        ):
            src = {"file": path, "line": line, "func": func, "process": process, "thread": thread}
            size = len(path) + len(func) + len(thread) + 2
            task = data.get("taskName")
            if task is not None:
                if type(task) is str:
                    size += len(task)
                    src["task"] = task
                else:
                    src["task"] = json_safe(task, budget)
            return src, size
    get = data.get
    size = 0
    src = {}
    for short, attr in _SRC_KEYS:
        value = get(attr)
        if value is not None:
            kind = type(value)
            if kind is str:
                size += len(value)
                src[short] = value
            elif kind is int and _INT_MIN <= value < _INT_END:
                size += 1
                src[short] = value
            else:
                src[short] = json_safe(value, budget)
    return src, size


def _logrecord_fields(data: dict[str, Any], budget: Budget) -> tuple[dict[str, Any], int]:
    """A LogRecord dict's ``fields`` (``_src`` and the user's keys), and the size to charge.

    Top-level plain scalars (and those of ``_src``) are shared, not copied,
    so their size is only counted, to be charged once by the caller;
    everything else goes through json_safe, which charges as it builds.
    """
    fields: dict[str, Any] = {}
    src, size = _src_of(data, budget)
    if src:
        fields["_src"] = src
    user_keys, carried = _user_keys(data)
    for key in user_keys:
        value = data[key]
        kind = type(value)
        if kind is str:
            size += len(key) + len(value)
            fields[key] = value
        elif (
            (kind is int and _INT_MIN <= value < _INT_END)
            or value is None
            or kind is bool
            or (kind is float and value - value == 0.0)  # finite
        ):
            size += len(key) + 1  # what json_safe charges a scalar it keeps as it is
            fields[key] = value
        else:
            size += len(key)
            fields[key] = json_safe(value, budget)
    if carried:
        _unpack_carried(fields, data[_CARRIED_FIELDS], budget)
    return fields, size


#: Key tuple of a LogRecord dict -> (its user keys in order, whether it
#: carries netlog_fields).  A sender's records share one set of keys, so
#: the split costs one tuple lookup per frame instead of a set test per
#: key.  Bounded: past the bound a frame's keys are split without caching.
_USER_KEYS: dict[tuple[str, ...], tuple[tuple[str, ...], bool]] = {}
_USER_KEYS_MAX: Final = 256


def _user_keys(data: dict[str, Any]) -> tuple[tuple[str, ...], bool]:
    """The keys of a LogRecord dict that are the user's (not LogRecord's own), in order."""
    keys = tuple(data)
    plan = _USER_KEYS.get(keys)
    if plan is None:
        plan = (
            tuple(k for k in keys if k not in _LOGRECORD_ATTRS and k != _CARRIED_FIELDS),
            _CARRIED_FIELDS in data,
        )
        if len(_USER_KEYS) < _USER_KEYS_MAX:
            _USER_KEYS[keys] = plan
    return plan


# --- JSON objects ------------------------------------------------------------
#
# A JSON line's keys say which logger wrote it, and each record key is
# looked for under that logger family's spellings, in order, by dict
# lookups on the line (no per-logger tries):
#
# * ``event`` present: structlog (Python).  Its keys are popped directly,
#   the other Python spellings tried only when one is missing, a bare
#   number ``level`` is a stdlib level number.  This is the common line,
#   so nothing else is looked at, except that ``event`` beside ``msg`` and
#   ``time`` or ``ts`` is a Node or Go line's own field (those loggers
#   always write both keys, structlog never).
# * ``@t`` present: Serilog's CLEF (.NET), whose user properties sit beside
#   its ``@`` keys, so a property called ``message`` or ``name`` is the
#   user's, never the record's.
# * anything else: one table of every other logger's spellings (pino,
#   bunyan, winston, zap, zerolog, slog, logrus, logstash-logback-encoder,
#   log4j2/ECS, Microsoft.Extensions.Logging, NLog, tracing, slog-json,
#   python-json-logger), first key present wins, the rest stay in fields.

_MESSAGE_KEY: Final = "event"
_TS_KEYS: Final = ("timestamp", "ts", "time", "@timestamp", "asctime")
_LEVEL_KEY: Final = "level"
_LEVEL_OTHERS: Final = ("levelname", "severity")
_LOGGER_KEY: Final = "logger"
_LOGGER_OTHERS: Final = ("name", "logger_name")
_EXC_KEYS: Final = ("exception", "exc_info", "exc_text", "stack")

#: Every other logger's spellings, first present wins.  ``@timestamp`` and
#: ``ts`` come before ``time`` and ``timestamp`` because those two are also
#: common user keys (zap's README logs a ``timestamp`` field beside ``ts``).
_OTHER_MESSAGE_KEYS: Final = ("message", "msg", "@m", "Message")
_OTHER_TS_KEYS: Final = ("@timestamp", "ts", "time", "timestamp", "asctime", "Timestamp")
_OTHER_LEVEL_KEYS: Final = ("level", "levelname", "severity", "LogLevel", "log.level", "levelno")
_OTHER_LOGGER_KEYS: Final = (
    "logger",
    "name",
    "logger_name",
    "log.logger",
    "Category",
    "SourceContext",
)
#: Where a stack or exception text is found.  ``err`` and ``error`` count
#: only as objects with a stack (pino, bunyan, ECS): as text they are an
#: error's message (zerolog, zap), not a traceback, and stay in fields.
_OTHER_EXC_KEYS: Final = (
    "exception",
    "exc_info",
    "exc_text",
    "stack_trace",
    "stacktrace",
    "error.stack_trace",
    "Exception",
    "stack",
    "err",
    "error",
)
_OTHER_EXC_SET: Final = frozenset(_OTHER_EXC_KEYS)
_ERROR_OBJECTS: Final = frozenset({"err", "error"})
#: LogRecord attribute names python-json-logger writes: a line carrying one
#: of them came from Python, so its bare number ``level`` is a stdlib level
#: number, not pino's.  (``module``, ``filename``, ``thread`` and
#: ``process`` are left out: Node and Go lines use those words too.)
_PYTHON_KEYS: Final = frozenset(
    {
        "levelname",
        "levelno",
        "funcName",
        "lineno",
        "pathname",
        "exc_info",
        "exc_text",
        "stack_info",
        "asctime",
        "created",
        "msecs",
        "relativeCreated",
        "threadName",
        "processName",
        "taskName",
    }
)


def parse_timestamp(value: Any) -> float | None:
    """Read an ISO 8601 / RFC 3339 string or an epoch number; None if it is neither.

    Naive times are taken as UTC; Go's ``time.Time.String()`` form and
    any number of fraction digits are read too.  An epoch number's unit is
    decided by its magnitude: under 1e11 seconds (1e11 s is the year
    5138), under 1e14 milliseconds, under 1e17 microseconds, else
    nanoseconds; each switch sits where the smaller unit would mean a
    year past 5000 while the larger means 1973 or earlier, so every time
    from 1973 to 5138 is read right in all four units.
    """
    kind = type(value)
    if kind is str:
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                return loose_time(value)
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            return moment.timestamp()
    elif kind is int or kind is float:
        number = float(value)
    else:
        return None
    return _epoch_seconds(number) if math.isfinite(number) else None


def _epoch_seconds(number: float) -> float:
    """An epoch number in seconds, its unit told by its magnitude (see :func:`parse_timestamp`)."""
    size = abs(number)
    if size < 1e11:
        return number
    if size < 1e14:
        return number / 1e3
    if size < 1e17:
        return number / 1e6
    return number / 1e9


_MISSING: Final = object()


def _pop_first(fields: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """Remove and return the value of the first of ``keys`` present, or :data:`_MISSING`."""
    for key in keys:
        value = fields.pop(key, _MISSING)
        if value is not _MISSING:
            return value
    return _MISSING


def _first_key(fields: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` present in ``fields``."""
    for key in keys:
        if key in fields:
            return key
    return None


def _timestamp(fields: dict[str, Any], keys: tuple[str, ...], received: float) -> float:
    """The time under the first of ``keys`` present, taken out; else ``received``.

    A value that is no time stays in fields under its own key.
    """
    for key in keys:
        if key in fields:
            parsed = parse_timestamp(fields[key])
            if parsed is None:
                return received
            del fields[key]
            return parsed
    return received


def from_json(
    obj: dict[str, Any], peer: str, received: float, *, deep: bool = False, fmt: str = "json"
) -> Record:
    """Normalise one JSON object from structlog or another language's JSON logger.

    ``obj`` becomes the record's ``fields`` after the well-known keys are
    taken out, so the caller must not reuse it.  ``deep`` says the source
    text has enough brackets that nesting may exceed what a JSON encoder
    accepts (orjson parses 1024 levels but writes only 254); the fields are
    then passed through the depth-limited :func:`json_safe`.  ``fmt`` is
    the record's format (``"http"`` for an HTTP body's object).  Which
    spellings are read is said in the comment above.

    This runs once per JSON line, so each well-known key is popped (one
    lookup) rather than tested and then deleted.
    """
    fields = obj
    if deep:
        fields = json_safe(obj, Budget(1 << 62))

    value = fields.pop(_MESSAGE_KEY, _MISSING)
    if value is _MISSING:
        return _not_structlog(fields, value, peer, received, fmt)
    message = value if type(value) is str else _json_text(value)

    ts = received
    for key in _TS_KEYS:
        if key in fields:
            if (key == "ts" or key == "time") and "msg" in fields:  # noqa: PLR1714 - faster
                # Only a Node or Go line has both: its "event" is a user's key.
                return _not_structlog(fields, value, peer, received, fmt)
            parsed = parse_timestamp(fields[key])
            if parsed is not None:
                ts = parsed
                del fields[key]
            # else: keep the original under its own key.
            break

    value = fields.pop(_LEVEL_KEY, _MISSING)
    value = _pop_first(fields, _LEVEL_OTHERS) if value is _MISSING else value
    if type(value) is str:
        level = value.lower()  # structlog writes Python's names
    elif value is _MISSING:
        level = "info"
    elif type(value) is int:
        level = level_from_number(value)
    else:
        level = _json_text(value).lower()

    value = fields.pop(_LOGGER_KEY, _MISSING)
    value = _pop_first(fields, _LOGGER_OTHERS) if value is _MISSING else value
    logger = value if type(value) is str else _json_text(value)

    exc: str | None = None
    for exc_key in _EXC_KEYS:
        value = fields.get(exc_key)
        if type(value) is str:
            del fields[exc_key]
            exc = value
            break
    return Record(ts, received, level, logger, message, fields, exc, peer, fmt)


def _not_structlog(
    fields: dict[str, Any], event: Any, peer: str, received: float, fmt: str
) -> Record:
    """A line without structlog's ``event``, or whose ``event`` is a Node or Go user's key.

    pino, bunyan, zap, logrus and slog always write ``msg`` and a ``time``
    or ``ts``, structlog neither, so an ``event`` beside them goes back
    into fields as the user's own.
    """
    if event is not _MISSING:
        fields[_MESSAGE_KEY] = event
    if _CLEF_TIME in fields:
        return _from_clef(fields, peer, received, fmt)
    return _from_other_json(fields, peer, received, fmt)


def _from_other_json(fields: dict[str, Any], peer: str, received: float, fmt: str) -> Record:
    """A JSON line that is neither structlog's nor CLEF: the table of other spellings."""
    value = _pop_first(fields, _OTHER_MESSAGE_KEYS)
    tracing = False
    if value is _MISSING:
        nested = fields.get("fields")
        if type(nested) is dict and "target" in fields:
            # tracing-subscriber: {"fields": {"message": ..., k: v}, "target": ...}
            tracing = True
            value = nested.pop("message", _MISSING)
            _lift(fields, nested)
    message = value if type(value) is str else _json_text(value)

    ts = _timestamp(fields, _OTHER_TS_KEYS, received)

    level_key = _first_key(fields, _OTHER_LEVEL_KEYS)
    value = _MISSING if level_key is None else fields.pop(level_key)
    logger_value = _pop_first(fields, _OTHER_LOGGER_KEYS)
    if value is _MISSING or logger_value is _MISSING:
        log = fields.get("log")
        if type(log) is dict:  # ECS as nested objects: {"log": {"level": ..., "logger": ...}}
            if value is _MISSING:
                level_key = "log.level"
                value = log.pop("level", _MISSING)
            if logger_value is _MISSING:
                logger_value = log.pop("logger", _MISSING)
            if not log:
                del fields["log"]
    if logger_value is _MISSING and tracing:
        logger_value = fields.pop("target", _MISSING)
    level = _level(fields, level_key, value)
    logger = logger_value if type(logger_value) is str else _json_text(logger_value)
    return Record(ts, received, level, logger, message, fields, _exception(fields), peer, fmt)


def _lift(fields: dict[str, Any], nested: dict[str, Any]) -> None:
    """Lift tracing's event fields into the record's fields; a name taken already stays nested."""
    for key in list(nested):
        if key not in fields:
            fields[key] = nested.pop(key)
    if not nested:
        del fields["fields"]


def _level(fields: dict[str, Any], key: str | None, value: Any) -> str:
    """The level a line's level value names (see :mod:`netlog.levels`).

    A word is mapped by :func:`~netlog.levels.level_from_name`.  A bare
    number is a stdlib level number when the line says it came from Python
    (its key is ``levelno``, or it carries a LogRecord attribute name such
    as python-json-logger writes); otherwise it is on pino's and bunyan's
    10-60 scale, the one JSON loggers outside Python use.  What a name does
    not keep (slog's ``INFO+2``, pino's custom ``35``) stays in fields
    under its own key.
    """
    if type(value) is str:
        level, exact = level_from_name(value)
    elif value is _MISSING:
        return "info"
    elif type(value) is int:
        if key == "levelno" or not _PYTHON_KEYS.isdisjoint(fields):
            return level_from_number(value)
        level, exact = level_from_pino(value)
    else:
        return _json_text(value).lower()
    if not exact and key is not None:
        fields[key] = value
    return level


def _exception(fields: dict[str, Any]) -> str | None:
    """The first stack or exception text among the keys that carry one, taken out."""
    if _OTHER_EXC_SET.isdisjoint(fields):
        return None
    for key in _OTHER_EXC_KEYS:
        value: Any = fields.get(key)
        kind = type(value)
        if kind is str:
            if key not in _ERROR_OBJECTS:
                del fields[key]
                return str(value)
        elif kind is dict:
            if key in _ERROR_OBJECTS:
                stack = error_stack(value)
                if stack is not None:
                    return stack
        elif kind is list and key == "stack":  # zerolog with pkgerrors
            del fields[key]
            return stack_text(value)
    return None


# Serilog's compact log event format (https://clef-json.org/): ``@t`` is its
# one required key; the others are optional, ``@l`` absent means Information.
_CLEF_TIME: Final = "@t"


def _from_clef(fields: dict[str, Any], peer: str, received: float, fmt: str) -> Record:
    """A CLEF line: ``@t``, ``@m`` (or ``@mt`` rendered), ``@l``, ``@x``, ``SourceContext``.

    The template (``@mt``), event id (``@i``) and renderings (``@r``) stay
    in fields, so records of one template can be found together.
    """
    ts = _timestamp(fields, (_CLEF_TIME,), received)
    value = fields.pop("@m", _MISSING)
    if value is _MISSING:
        template = fields.get("@mt")
        message = render_template(template, fields) if type(template) is str else ""
    else:
        message = value if type(value) is str else _json_text(value)
    level = _level(fields, "@l", fields.pop("@l", _MISSING))
    value = fields.pop("SourceContext", _MISSING)
    logger = value if type(value) is str else _json_text(value)
    value = fields.get("@x")
    exc: str | None = None
    if type(value) is str:
        del fields["@x"]
        exc = value
    return Record(ts, received, level, logger, message, fields, exc, peer, fmt)


def _json_text(value: Any) -> str:
    if value is None or value is _MISSING:
        return ""
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return short_repr(value, 4096)


# --- text and syslog ----------------------------------------------------------


def from_text(line: str, peer: str, received: float, fmt: str = "text") -> Record:
    """A line that is not JSON: the line is the message; ``fmt`` is the record's format."""
    return Record(received, received, "info", "", line, {}, None, peer, fmt)


def from_syslog(message: SyslogMessage, peer: str, received: float) -> Record:
    """Normalise a parsed RFC 3164 / RFC 5424 message.

    RFC 3164 timestamps carry no year and no zone, so ``ts`` is the receive
    time and the original text is kept in ``fields["timestamp"]``.
    """
    fields: dict[str, Any] = {
        "facility": message.facility_name,
        "severity": message.severity_name,
    }
    ts = received
    if message.timestamp is not None:
        parsed = parse_timestamp(message.timestamp) if message.rfc == 5424 else None
        if parsed is None:
            fields["timestamp"] = message.timestamp
        else:
            ts = parsed
    if message.hostname is not None:
        fields["host"] = message.hostname
    if message.procid is not None:
        fields["procid"] = message.procid
    if message.msgid is not None:
        fields["msgid"] = message.msgid
    if message.structured_data:
        fields["sd"] = message.structured_data
    return Record(
        ts,
        received,
        SYSLOG_SEVERITY_LEVELS[message.severity],
        message.app_name or "",
        message.message,
        fields,
        None,
        peer,
        "syslog",
    )
