"""Formats: how one frame becomes one record, whatever transport and framing cut it.

A framing (:mod:`netlog.decode.framing`) hands over a frame: a line, a
length-prefixed pickle, a whole datagram, an HTTP body's line.  The
functions here turn that frame into a :class:`~netlog.record.Record`, so
TCP, UDP and HTTP apply the same rules and count the same notes:

* :func:`json_or_text`: a JSON object when the frame is one, else a text
  record.  JSON-looking text that does not parse is kept as text and noted
  in ``notes["json_as_text"]``;
* :func:`json_record`: an already parsed JSON object (HTTP's JSON bodies);
* :func:`decode_text`: a frame's text, invalid UTF-8 kept with backslash
  escapes and noted in ``notes["invalid_utf8"]``;
* :func:`pickle_record`: a ``SocketHandler``/``DatagramHandler`` pickle;
* :func:`syslog_record`: an RFC 3164 / RFC 5424 message.

Each takes the record's ``format`` label as an argument (``None`` for "what
the frame turned out to be"), so a transport with a label of its own (HTTP's
``"http"``) names its records as it builds them.  A new format is one more
function here; the normalisation into a record's keys stays in
:mod:`netlog.decode.normalize`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from netlog.decode.normalize import (
    Budget,
    from_json,
    from_logrecord,
    from_syslog,
    from_text,
)
from netlog.decode.syslog import parse_syslog

if TYPE_CHECKING:
    import collections
    from collections.abc import Callable

    from netlog.record import Record

__all__ = [
    "DEEP_JSON",
    "cap_message",
    "decode_text",
    "is_deep",
    "json_or_text",
    "json_record",
    "pickle_record",
    "syslog_record",
]

#: Brackets past which a JSON text may nest deeper than orjson writes (254
#: levels): its fields then go through the depth-limited ``json_safe``.
DEEP_JSON: Final = 250


def is_deep(text: bytes) -> bool:
    """Tell whether JSON ``text`` has brackets enough to nest past what orjson writes."""
    return len(text) > DEEP_JSON and text.count(b"{") + text.count(b"[") > DEEP_JSON


def cap_message(record: Record, limit: int, notes: collections.Counter[str] | None) -> Record:
    """``record`` with its message cut to ``limit`` characters, marked and noted.

    The one cap on a message that a format built rather than received as a
    line (a pickle's non-text ``msg``, an HTTP form's ``msg % args``, an
    HTTP body's JSON), as rsyslog's ``$MaxMessageSize`` and Vector's
    ``max_length``: the transports call it with ``--max-line``, the largest
    line netlog accepts.  The cut message ends with a visible marker and is
    counted in ``notes["message_truncated"]``.  Callers test
    ``len(record.message) > limit`` first: that is all a normal record pays.
    """
    message = record.message
    marker = f" ...<message truncated: {len(message)} characters>"
    if notes is not None:
        notes["message_truncated"] += 1
    return record._replace(message=message[: max(0, limit - len(marker))] + marker)


def json_record(
    obj: dict[str, Any], text: bytes, peer: str, received: float, fmt: str = "json"
) -> Record:
    """A record from a JSON object parsed from ``text`` (which says how deep it may be)."""
    return from_json(obj, peer, received, deep=is_deep(text), fmt=fmt)


def decode_text(data: bytes, notes: collections.Counter[str]) -> str:
    """``data`` as text; invalid UTF-8 is kept with backslash escapes and noted."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        notes["invalid_utf8"] += 1
        return data.decode("utf-8", "backslashreplace")


def json_or_text(
    line: bytes,
    peer: str,
    received: float,
    notes: collections.Counter[str],
    fmt: str | None = None,
) -> Record | None:
    """The one "JSON object or text line" decision, for every transport.

    ``line`` is one frame with its line ending already removed.  A frame
    that starts with ``{`` (after whitespace) and parses as a JSON object is
    a JSON record; anything else is a text record (``notes["json_as_text"]``
    when it looked like JSON).  A blank frame is no record: ``None``.  The
    record's ``format`` is ``fmt``, or ``"json"``/``"text"`` when ``None``.

    Written inline rather than through :func:`json_record`, :func:`is_deep`
    and :func:`decode_text`: it runs once per line at ~125k lines/s, and a
    call layer less per record is measurable there.
    """
    if line[:1] == b"{" or line.lstrip()[:1] == b"{":
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            notes["json_as_text"] += 1
        else:
            if type(obj) is dict:
                deep = len(line) > DEEP_JSON and (line.count(b"{") + line.count(b"[") > DEEP_JSON)
                return from_json(obj, peer, received, deep=deep, fmt=fmt or "json")
    elif not line or line.isspace():
        return None
    try:
        text = line.decode()
    except UnicodeDecodeError:
        text = line.decode("utf-8", "backslashreplace")
        notes["invalid_utf8"] += 1
    return from_text(text, peer, received, fmt or "text")


def pickle_record(
    load: Callable[[bytes], dict[str, Any]],
    frame: bytes,
    peer: str,
    received: float,
    expansion: int,
    *,
    fmt: str = "pickle",
) -> Record:
    """A record from one pickle frame; ``DecodeError("bad_frame")`` when it is bad.

    ``load`` is a :meth:`~netlog.decode.unpickle.FrameLoader.load` (shared
    by the frames of one read); ``expansion`` bounds what the frame may
    expand to (:func:`~netlog.decode.normalize.expansion_budget`).
    """
    return from_logrecord(load(frame), peer, received, Budget(expansion), fmt)


def syslog_record(data: bytes, peer: str, received: float) -> Record | None:
    """A record from a ``<PRI>`` syslog message, or ``None`` when ``data`` is not one."""
    message = parse_syslog(data)
    return None if message is None else from_syslog(message, peer, received)
