"""Decode one UDP datagram into one record (sans-IO, like the stream decoder).

Which format a datagram is, in this order:

* pickle framing, detected as for streams (first byte a control byte or
  one that cannot start UTF-8): ``DatagramHandler`` sends the same 4-byte
  length prefix as ``SocketHandler``.  The prefix must equal the payload's
  size: a datagram cut short by the sender's MTU or the server's receive
  size would otherwise be unpickled half and give garbage, so a mismatch is
  ``DecodeError("length_mismatch")``;
* ``<PRI>`` at the start: syslog (RFC 5424 when ``<PRI>1 `` follows, else
  RFC 3164);
* ``{`` (after whitespace) and a valid JSON object: a JSON record;
* anything else, including JSON that does not parse: one text record.

Each datagram is independent, so a bad one raises ``DecodeError`` and the
server just counts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from netlog.decode.normalize import (
    Budget,
    expansion_budget,
    from_json,
    from_logrecord,
    from_syslog,
    from_text,
)
from netlog.decode.stream import is_pickle_start
from netlog.decode.syslog import parse_syslog
from netlog.decode.unpickle import unpickle_dict
from netlog.errors import DecodeError

if TYPE_CHECKING:
    from netlog.record import Record

__all__ = ["decode_datagram"]

_DEEP_JSON = 250


def decode_datagram(data: bytes, peer: str, received: float, *, max_frame: int = 1 << 20) -> Record:
    """Decode one datagram; raise ``DecodeError`` if it cannot become a record.

    Reasons: ``empty``, ``bad_datagram`` (pickle-looking but shorter than
    its prefix), ``length_mismatch``, ``frame_too_large``, ``bad_frame``.
    """
    if not data or data.isspace():
        raise DecodeError("empty", "empty datagram")
    if is_pickle_start(data[0]):
        return _pickle(data, peer, received, max_frame)
    if data[:1] == b"<":
        message = parse_syslog(data)
        if message is not None:
            return from_syslog(message, peer, received)
    body = data.rstrip(b"\r\n")
    if body.lstrip()[:1] == b"{":
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        else:
            if type(obj) is dict:
                deep = len(body) > _DEEP_JSON and (body.count(b"{") + body.count(b"[") > _DEEP_JSON)
                return from_json(obj, peer, received, deep=deep)
    return from_text(body.decode("utf-8", "backslashreplace"), peer, received)


def _pickle(data: bytes, peer: str, received: float, max_frame: int) -> Record:
    if len(data) < 4:
        raise DecodeError("bad_datagram", f"{len(data)}-byte datagram with a binary start")
    size = int.from_bytes(data[:4], "big")
    if size > max_frame:
        raise DecodeError(
            "frame_too_large", f"pickle frame of {size} bytes exceeds the limit of {max_frame}"
        )
    if size != len(data) - 4:
        raise DecodeError(
            "length_mismatch",
            f"pickle datagram says {size} bytes but carries {len(data) - 4} (cut short?)",
        )
    return from_logrecord(
        unpickle_dict(data[4:]), peer, received, Budget(expansion_budget(max_frame))
    )
