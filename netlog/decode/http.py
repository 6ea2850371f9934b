r"""Records from HTTP request bodies (sans-IO): ``POST /log`` and ``GET /log?...``.

Three kinds of body, chosen by ``Content-Type`` (sniffed when there is none):

* ``application/x-www-form-urlencoded``: what ``logging.handlers.HTTPHandler``
  sends, ``urllib.parse.urlencode(record.__dict__)``, so every value is the
  ``str()`` of a ``LogRecord`` attribute.  ``created`` becomes ``ts``;
  ``msg`` is the *unformatted* message and ``args`` the ``str()`` of its
  arguments, so the message is rebuilt with ``msg % ast.literal_eval(args)``
  when that is safe, and otherwise kept as sent with ``args`` in ``fields``.
  A ``message`` attribute (set when a ``Formatter`` ran first) wins.  Other
  attributes become ``fields`` like a SocketHandler record's.  A form with
  none of ``levelname``/``levelno``/``created`` is a plain form
  (``curl -d msg=hi -d level=warning``) and is read like a JSON object.
* ``application/json``: one object, an array of objects, or JSON lines.
* ``application/x-ndjson`` (and the other JSON-lines names): one object a line.
* ``text/plain``: one text record a line.

Every record gets ``format = "http"``, passed to the format functions as
they build it.  A bad body raises :class:`~netlog.errors.DecodeError` and no
record of it is kept: the sender is told (HTTP 400), so nothing is half
accepted.
"""

from __future__ import annotations

import ast
import collections
import re
import urllib.parse
from typing import Any, Final

import orjson

from netlog.decode.formats import cap_message, decode_text, json_record
from netlog.decode.normalize import Budget, expansion_budget, from_json, from_logrecord, from_text
from netlog.errors import DecodeError
from netlog.record import Record
from netlog.settings import DEFAULT_MAX_FRAME, DEFAULT_MAX_LINE

__all__ = [
    "FORM",
    "MAX_BODY",
    "decode_body",
    "decode_form",
    "format_logrecord_message",
    "media_type",
]

#: The largest body ``POST /log`` takes (HTTP 413 beyond).
MAX_BODY: Final = 10 << 20

FORM: Final = "application/x-www-form-urlencoded"
_JSON: Final = frozenset({"application/json", "text/json"})
_JSON_LINES: Final = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonl",
        "application/jsonlines",
        "application/x-jsonlines",
        "application/json-lines",
    }
)
_TEXT: Final = "text/plain"

_MAX_FIELDS: Final = 10_000
#: ``args`` longer than this is not evaluated (literal_eval is recursive).
_MAX_ARGS: Final = 64 * 1024
#: A conversion wider or more precise than this is not formatted: ``%999999999d``
#: would turn a 20-byte request into a gigabyte.
_MAX_WIDTH: Final = 1000
#: What a conversion may write beyond its value's source text and its width
#: and precision: ``%f`` of 1e308 is 309 digits, a sign and a point.
_FLOAT_DIGITS: Final = 330
_SPEC: Final = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)
_EXC_INFO: Final = re.compile(
    r"\(<class '([^']+)'>, (.*), <traceback object at 0x[0-9a-fA-F]+>\)\Z", re.DOTALL
)

#: Attributes whose text ``"None"`` means the attribute was ``None``.
_NONE_MEANS_ABSENT: Final = frozenset(
    {
        "exc_info",
        "exc_text",
        "stack_info",
        "taskName",
        "args",
        "processName",
        "threadName",
        "funcName",
        "process",
        "thread",
        "pathname",
        "filename",
        "module",
        "lineno",
    }
)
_FLOATS: Final = ("created", "msecs", "relativeCreated")
_INTS: Final = ("lineno", "levelno", "process", "thread")
_LOGRECORD_MARKERS: Final = frozenset({"levelname", "levelno", "created"})
#: Every record of a body carries this ``format``.
_FORMAT: Final = "http"


def media_type(content_type: str | None, body: bytes) -> str:
    """The media type of a body: its ``Content-Type`` without parameters, or a guess.

    A missing (or ``application/octet-stream``) type is guessed: JSON when the
    body starts with ``{`` or ``[``, a form otherwise, because that is what
    ``curl -d`` and ``HTTPHandler`` send.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in ("", "application/octet-stream"):
        start = body.lstrip()[:1]
        return "application/json" if start in (b"{", b"[") else FORM
    return media


def decode_body(
    body: bytes,
    content_type: str | None,
    peer: str,
    received: float,
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
    max_line: int = DEFAULT_MAX_LINE,
    notes: collections.Counter[str] | None = None,
) -> list[Record]:
    """Decode a whole request body into records; ``DecodeError`` if any part is bad.

    Reasons: ``empty``, ``unsupported_media_type``, ``bad_form``, ``bad_json``,
    and ``bad_frame`` (a form that expands past the budget).  A text line
    kept with backslash escapes is counted in ``notes["invalid_utf8"]`` when
    ``notes`` is given, as for TCP and UDP.  A body may be larger than
    ``max_line`` (up to :data:`MAX_BODY`), and a form's message is built
    from ``msg % args``: a message longer than ``max_line`` is cut with a
    marker and counted in ``notes["message_truncated"]``
    (:func:`~netlog.decode.formats.cap_message`).
    """
    if not body.strip():
        raise DecodeError("empty", "the body is empty: send a record")
    media = media_type(content_type, body)
    if media == FORM:
        records = [decode_form(body, peer, received, max_frame=max_frame, max_line=max_line)]
    elif media in _JSON:
        records = _json_body(body, peer, received)
    elif media in _JSON_LINES:
        records = _json_lines(body, peer, received)
    elif media == _TEXT:
        if notes is None:
            notes = collections.Counter()
        records = _text_lines(body, peer, received, notes)
    else:
        raise DecodeError(
            "unsupported_media_type",
            f"Content-Type {media!r} is not one of: form, JSON, JSON lines, text/plain",
        )
    for index, record in enumerate(records):
        if len(record.message) > max_line:
            records[index] = cap_message(record, max_line, notes)
    return records


# --- forms (HTTPHandler) ------------------------------------------------------


def decode_form(
    data: bytes,
    peer: str,
    received: float,
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
    max_line: int = DEFAULT_MAX_LINE,
) -> Record:
    """One record from a URL-encoded form (a POST body or a GET query string).

    ``msg % args`` is formatted only when the result is sure to fit in
    ``max_line`` characters (:func:`format_logrecord_message`); the caller
    cuts a message that is still longer (:func:`decode_body` does).
    """
    text = data.decode("utf-8", "backslashreplace").strip()
    try:
        pairs = urllib.parse.parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="backslashreplace",
            max_num_fields=_MAX_FIELDS,
        )
    except ValueError as exc:
        raise DecodeError("bad_form", f"not a form: {exc}") from None
    if not pairs:
        raise DecodeError("bad_form", "not a form: no name=value pairs")
    form = dict(pairs)
    if not _LOGRECORD_MARKERS & form.keys():
        obj: dict[str, Any] = dict(form)
        return from_json(obj, peer, received, fmt=_FORMAT)
    return _from_logrecord_form(form, peer, received, Budget(expansion_budget(max_frame)), max_line)


def _from_logrecord_form(
    form: dict[str, str], peer: str, received: float, budget: Budget, max_line: int
) -> Record:
    data = _typed_attributes(form)
    args = data.pop("args", None)
    message = data.get("message")
    unused_args = None
    if type(message) is str:
        data["msg"] = message  # a Formatter already did the work
    else:
        msg = data.get("msg", "")
        formatted, used = format_logrecord_message(msg, args, max_line)
        data["msg"] = formatted
        if not used:
            unused_args = args
    exc = data.get("exc_text")
    if not exc:
        exc_info = data.pop("exc_info", None)
        if exc_info:
            data["exc_text"] = _exc_from_info(exc_info)
    else:
        data.pop("exc_info", None)
    record = from_logrecord(data, peer, received, budget, _FORMAT)
    if unused_args is not None:
        record.fields["args"] = unused_args
    return record


def _typed_attributes(form: dict[str, str]) -> dict[str, Any]:
    """The form as a LogRecord dict: ``"None"`` left out, numbers as numbers."""
    data: dict[str, Any] = {
        key: value
        for key, value in form.items()
        if not (value == "None" and key in _NONE_MEANS_ABSENT)
    }
    for key in _FLOATS:
        if key in data:
            data[key] = _number(data[key], float)
    for key in _INTS:
        if key in data:
            data[key] = _number(data[key], int)
    return data


def _number(text: Any, kind: type[float | int]) -> Any:
    try:
        return kind(text)
    except (TypeError, ValueError, OverflowError):
        return text


def _exc_from_info(text: str) -> str:
    """``str(record.exc_info)`` as far as it helps: ``ZeroDivisionError('division by zero')``.

    HTTPHandler sends no traceback (it never formats the record), only the
    ``str()`` of the ``(type, value, traceback)`` tuple.
    """
    match = _EXC_INFO.match(text)
    return match.group(2) if match else text


def format_logrecord_message(  # noqa: PLR0911 - each refusal says why
    msg: str, args: str | None, max_len: int = DEFAULT_MAX_LINE
) -> tuple[str, bool]:
    """Rebuild ``msg % args`` from their ``str()`` forms; (message, whether args were used).

    ``args`` is evaluated only as a Python literal (``ast.literal_eval``, never
    ``eval``), only when short, and the format only when none of its
    conversions asks for a huge width and the result cannot exceed
    ``max_len`` characters: each conversion passing the width check is not
    enough, since ``"%(a)1000s"`` 115,000 times makes 115 MB of 1 MB.
    Anything else leaves ``msg`` as sent.
    """
    if args is None or args in ("", "()", "{}"):
        return msg, True
    if "%" not in msg or len(args) > _MAX_ARGS:
        return msg, False
    spans = _conversion_spans(msg)
    if spans is None:
        return msg, False
    # The most text the result can have: each conversion writes at most its
    # width, its precision and a float's 309 digits (_FLOAT_DIGITS) besides
    # its value's text, whose length is about that of the value's source in
    # ``args`` (at most twice, for the escapes repr may add); a mapping's
    # value may be used by every conversion, a tuple's only once.
    values = 2 * len(args)
    shared = args.lstrip().startswith("{")
    bound = len(msg) + sum(spans) + (values * len(spans) if shared else values)
    if bound > max_len:
        return msg, False
    try:
        value = ast.literal_eval(args)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return msg, False
    if not isinstance(value, tuple | dict):
        value = (value,)
    try:
        return msg % value, True
    except (TypeError, ValueError, KeyError, OverflowError, MemoryError, RecursionError):
        return msg, False


def _conversion_spans(msg: str) -> list[int] | None:
    """The most each conversion of ``msg`` adds to its value's text; ``None`` if one is huge."""
    spans = []
    for width, precision, _conversion in _SPEC.findall(msg):
        span = _FLOAT_DIGITS
        for number in (width, precision):
            if not number:
                continue
            # Compared as text first: int() refuses more than 4,300 digits.
            if number == "*" or len(number) > 4 or int(number) > _MAX_WIDTH:
                return None
            span += int(number)
        spans.append(span)
    return spans


# --- text and JSON ------------------------------------------------------------


def _text_lines(
    body: bytes, peer: str, received: float, notes: collections.Counter[str]
) -> list[Record]:
    """One text record a line: ``text/plain`` means text, even a line that looks like JSON."""
    records = []
    for line in body.split(b"\n"):
        text = decode_text(line, notes)
        if text.strip():
            records.append(from_text(text.rstrip("\r"), peer, received, _FORMAT))
    return records


def _json_body(body: bytes, peer: str, received: float) -> list[Record]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if b"\n" in body.strip():
            return _json_lines(body, peer, received)
        raise DecodeError("bad_json", f"not JSON: {exc}") from None
    if type(value) is dict:
        return [json_record(value, body, peer, received, _FORMAT)]
    if type(value) is list:
        records = []
        for index, item in enumerate(value):
            if type(item) is not dict:
                raise DecodeError("bad_json", f"item {index} of the array is not a JSON object")
            records.append(json_record(item, body, peer, received, _FORMAT))
        if not records:
            raise DecodeError("empty", "the array is empty: send a record")
        return records
    raise DecodeError("bad_json", "expected a JSON object, an array of objects, or JSON lines")


def _json_lines(body: bytes, peer: str, received: float) -> list[Record]:
    records = []
    for number, line in enumerate(body.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise DecodeError("bad_json", f"line {number} is not JSON: {exc}") from None
        if type(value) is not dict:
            raise DecodeError("bad_json", f"line {number} is not a JSON object")
        records.append(json_record(value, line, peer, received, _FORMAT))
    if not records:
        raise DecodeError("empty", "the body has no records")
    return records
