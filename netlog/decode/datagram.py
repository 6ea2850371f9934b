"""Decode one UDP datagram into one record (sans-IO, like the stream decoder).

A datagram is one frame.  Which format it is, in this order:

* pickle framing, detected as for streams (first byte a control byte or
  one that cannot start UTF-8): ``DatagramHandler`` sends the same 4-byte
  length prefix as ``SocketHandler``, which must equal the payload's size
  (:func:`netlog.decode.framing.pickle_datagram`);
* ``<PRI>`` at the start: syslog (RFC 5424 when ``<PRI>1 `` follows, else
  RFC 3164);
* otherwise, with its trailing CR/LF removed, the same "JSON object or text"
  decision as a TCP line (:func:`netlog.decode.formats.json_or_text`),
  counting the same notes (``json_as_text``, ``invalid_utf8``).

Each datagram is independent, so a bad one raises ``DecodeError`` and the
server just counts it.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

from netlog.decode.formats import cap_message, json_or_text, pickle_record, syslog_record
from netlog.decode.framing import PICKLE_START, pickle_datagram
from netlog.decode.normalize import expansion_budget
from netlog.decode.unpickle import unpickle_dict
from netlog.errors import DecodeError
from netlog.settings import DEFAULT_MAX_FRAME, DEFAULT_MAX_LINE

if TYPE_CHECKING:
    from netlog.record import Record

__all__ = ["decode_datagram"]

#: Where the notes of a caller that passed no counter go, never read: a
#: fresh Counter per datagram would cost ~0.5 µs, a tenth of a text record.
_UNREAD_NOTES: collections.Counter[str] = collections.Counter()


def decode_datagram(
    data: bytes,
    peer: str,
    received: float,
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
    max_line: int = DEFAULT_MAX_LINE,
    notes: collections.Counter[str] | None = None,
) -> Record:
    """Decode one datagram; raise ``DecodeError`` if it cannot become a record.

    Reasons: ``empty``, ``bad_datagram`` (pickle-looking but shorter than
    its prefix), ``length_mismatch``, ``frame_too_large``, ``bad_frame``.
    A record kept in a degraded form is counted in ``notes`` when given
    (the server passes its own counter, as a stream decoder has one),
    among them a pickle's message cut to ``max_line`` (``message_truncated``).
    """
    if not data or data.isspace():
        raise DecodeError("empty", "empty datagram")
    if data[0] in PICKLE_START:
        record = pickle_record(
            unpickle_dict,
            pickle_datagram(data, max_frame),
            peer,
            received,
            expansion_budget(max_frame),
        )
    else:
        found = syslog_record(data, peer, received) if data[:1] == b"<" else None
        # Not blank (tested above), so json_or_text always makes a record.
        found = found or json_or_text(
            data.rstrip(b"\r\n"), peer, received, _UNREAD_NOTES if notes is None else notes
        )
        if found is None:  # pragma: no cover - unreachable, but the type says so
            raise DecodeError("empty", "empty datagram")
        record = found
    # A datagram is at most 64 KiB, but a pickle's message is built and may
    # be larger, and --max-line may be set below 64 KiB.
    if len(record.message) > max_line:
        record = cap_message(record, max_line, notes)
    return record
