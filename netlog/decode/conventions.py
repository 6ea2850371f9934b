"""Other languages' JSON loggers: the parts of their lines that are not plain keys.

:func:`netlog.decode.normalize.from_json` finds a line's message, time,
level, logger and exception by looking its keys up in one table of
spellings (structlog's, pino's, zap's, Serilog's...).  A few conventions
carry a value in a shape of their own, and this module reads those shapes,
each a pure function of the value (no keys are guessed here):

* Serilog's CLEF message template (``"@mt": "Hello, {User}"``), rendered
  with the line's own properties as Seq renders it;
* an error object with a stack (pino's and bunyan's ``err``, ECS's nested
  ``error``): its stack text is the record's ``exc``, its type and message
  stay where they were, findable;
* zerolog's ``stack`` as pkgerrors writes it, a list of frames;
* times in the forms ``datetime.fromisoformat`` refuses: Go's
  ``time.Time.String()`` (logrus' README shows it), more than six
  fraction digits with a space before the offset.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final

import orjson

from netlog.decode.unpickle import short_repr

__all__ = ["MAX_RENDERED", "error_stack", "loose_time", "render_template", "stack_text"]

#: A CLEF template's holes: ``{Name}``, ``{@Name}``, ``{$Name}``,
#: ``{Name,10}``, ``{Name:x8}``; ``{{`` and ``}}`` are literal braces.
_HOLE: Final = re.compile(r"\{\{|\}\}|\{[@$]?([^{}:,]+)(,[^{}:]*)?(:[^{}]*)?\}")


def render_template(template: str, properties: dict[str, Any]) -> str:
    """A Serilog message template with its holes filled from ``properties``.

    A hole with a format (``{N:x8}``) takes the next of CLEF's ``@r``
    renderings when the line has them, since only .NET can apply its
    format strings; strings go in as they are (as Seq shows them), other
    values as compact JSON; a hole with no property stays as written, and
    so do the holes after the first :data:`MAX_RENDERED` characters added.
    """
    renderings = properties.get("@r")
    rendered = iter(renderings) if type(renderings) is list else iter(())
    produced = 0

    def fill(match: re.Match[str]) -> str:
        nonlocal produced
        text = match.group(0)
        if text == "{{":
            return "{"
        if text == "}}":
            return "}"
        if produced > MAX_RENDERED:
            return text
        if match.group(3) is not None:
            done = next(rendered, None)
            if type(done) is str:
                produced += len(done)
                return done
        value = properties.get(match.group(1).strip(), _ABSENT)
        if value is _ABSENT:
            return text
        filled = value if type(value) is str else json_text(value)
        produced += len(filled)
        return filled

    return _HOLE.sub(fill, template)


#: Characters the holes of one template may add: past it the remaining
#: holes stay as written.  One big property named by thousands of holes
#: (``{X}{X}{X}...``) would otherwise make a 1 MB line a gigabyte message.
MAX_RENDERED: Final = 1 << 20


_ABSENT: Final = object()


def json_text(value: Any) -> str:
    """``value`` as compact JSON text (what a hole or a frame that is not text shows)."""
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return short_repr(value, 4096)


#: The keys an error object keeps its stack under: pino/bunyan ``stack``,
#: ECS ``stack_trace``.
_STACK_KEYS: Final = ("stack", "stack_trace")


def error_stack(error: dict[str, Any]) -> str | None:
    """Take the stack text out of an error object; ``None`` (and no change) when it has none.

    The object keeps everything else (``type``, ``message``, ``name``,
    ``code``), so ``err.type`` or ``error.message`` can still be searched.
    """
    for key in _STACK_KEYS:
        stack = error.get(key)
        if type(stack) is str:
            del error[key]
            return stack
    return None


def stack_text(frames: list[Any]) -> str:
    """Render zerolog's pkgerrors frames as a Go stack: ``func`` then a tab and ``source:line``."""
    lines = []
    for frame in frames:
        if type(frame) is dict:
            func = frame.get("func", "?")
            where = frame.get("source", frame.get("file", "?"))
            lines.append(f"{func}\n\t{where}:{frame.get('line', '?')}")
        else:
            lines.append(frame if type(frame) is str else json_text(frame))
    return "\n".join(lines)


#: A date and time ``fromisoformat`` refuses: any number of fraction digits,
#: a space before the offset, a zone abbreviation after it (Go's
#: ``2014-03-10 19:57:38.562264131 -0400 EDT``).
_LOOSE_TIME: Final = re.compile(
    r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:[.,](\d{1,12}))?"
    r" ?(Z|[+-]\d\d:?\d\d)?(?: [A-Za-z]{1,6})?"
)


def loose_time(text: str) -> float | None:
    """Epoch seconds of such a time (UTC when it names no offset), or ``None``."""
    match = _LOOSE_TIME.fullmatch(text)
    if match is None:
        return None
    date, clock, fraction, offset = match.groups()
    iso = f"{date}T{clock}"
    if fraction:
        iso += "." + fraction[:6].ljust(6, "0")
    if offset and offset != "Z":
        iso += offset if ":" in offset else f"{offset[:3]}:{offset[3:]}"
    try:
        moment = dt.datetime.fromisoformat(iso)
    except ValueError:  # 25:61:00, February 30th
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()
