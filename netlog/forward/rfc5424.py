r"""A stored record as one RFC 5424 syslog message, and its framings (pure, no I/O).

Every central log system (rsyslog, syslog-ng, Graylog, Vector, Splunk)
parses RFC 5424, so this is the one shape netlog forwards to them::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [netlog@32473 id="..." k="v"] BOM MSG

- PRI: facility ``user`` (1) times 8 plus the severity of the record's level
  (:func:`severity`); one fixed facility keeps the mapping predictable, and
  collectors route on APP-NAME and the structured data instead.
- TIMESTAMP: the record's ``ts`` as stored (RFC 3339, microseconds, ``Z``:
  exactly RFC 5424's TIME-SECFRAC limit of six digits); ``-`` if unreadable.
- HOSTNAME: the record's ``host`` (set by ``netlog collect``) or this
  machine's name; APP-NAME: the logger; MSGID: the record's ``format``;
  PROCID: the sending process's pid when the record carries one
  (``fields._src.process`` from a LogRecord, or an integer ``fields.pid``).
  Header fields are PRINTUSASCII (33-126) only: every other character
  becomes ``_``, the value is cut to the RFC's length and ``-`` (NILVALUE)
  stands for an empty one.
- STRUCTURED-DATA: one element ``netlog@32473`` (32473 is the example
  Private Enterprise Number of RFC 5612, the registered-looking form RFC 5424
  6.3.2 asks for) holding ``id`` (the record's stable id) and then every key
  of ``fields`` in order; a string is sent as is, any other value as compact
  JSON. PARAM-NAME allows 1-32 PRINTUSASCII without ``=``, space, ``]`` and
  ``"``: each other character becomes ``_``, longer names are cut to 32 and
  an empty one is ``_`` (RFC 5424 6.3.3 lets a name repeat, so a collision
  loses nothing). PARAM-VALUE escapes ``"``, ``\`` and ``]`` with a
  backslash (6.3.3).
- MSG: the UTF-8 BOM and then the message, with the traceback (``exc``)
  after a newline, as a log file shows it; no MSG at all when both are empty.

Framing is separate from the message: :func:`octet_counted` (RFC 6587
3.4.1, ``LEN SP MSG``) for TCP and TLS (RFC 5425 frames the same way), and
:meth:`Rfc5424.datagram` for UDP (RFC 5426: one message a datagram), which
cuts a message over the datagram limit and marks it ``truncated="1"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import orjson

from netlog.levels import level_rank

__all__ = [
    "DEFAULT_DATAGRAM_LIMIT",
    "FACILITY_USER",
    "MIN_DATAGRAM_LIMIT",
    "SD_ID",
    "Datagram",
    "Rfc5424",
    "octet_counted",
    "param_name",
    "param_value",
    "printable",
    "severity",
]

#: RFC 5424 6.2.1: facility 1, "user-level messages".
FACILITY_USER: Final = 1
#: The one SD-ID netlog writes (RFC 5424 6.3.2: ``name@<private enterprise number>``).
SD_ID: Final = "netlog@32473"
BOM: Final = b"\xef\xbb\xbf"
NIL: Final = "-"

#: RFC 5426 3.2: every receiver SHOULD take datagrams of 2048 octets; larger
#: ones are fragmented on most links and refused by some receivers.
DEFAULT_DATAGRAM_LIMIT: Final = 2048
#: RFC 5426 3.2: what every IPv4 receiver MUST take; the longest possible
#: header (255-character host) and the ``id`` element still fit in it.
MIN_DATAGRAM_LIMIT: Final = 480

_HOSTNAME_MAX: Final = 255
_APP_NAME_MAX: Final = 48
_MSGID_MAX: Final = 32
_SD_NAME_MAX: Final = 32

#: Severities by name for the two that no rank tells apart from critical.
_NAMED_SEVERITIES: Final = {"emergency": 0, "emerg": 0, "panic": 0, "alert": 1}
#: (lowest rank, severity), highest first: critical 2, error 3, warning 4,
#: notice 5, info 6; anything below info (debug, trace, ``level 15``) is 7.
_RANK_SEVERITIES: Final = ((50, 2), (40, 3), (30, 4), (25, 5), (20, 6))
_DEBUG: Final = 7

_NOT_PRINTUSASCII: Final = re.compile(r"[^\x21-\x7e]")
_NOT_SD_NAME: Final = re.compile(r'[^\x21-\x7e]|[= \]"]')
_PARAM_ESCAPES: Final = str.maketrans({"\\": "\\\\", '"': '\\"', "]": "\\]"})
#: The stored ``ts``: RFC 3339 UTC with at most six fraction digits.
_TIMESTAMP: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z")
#: Longest PROCID netlog writes (a pid); RFC 5424 allows 128.
_PID_MAX: Final = 10**20


def severity(level: object) -> int:
    """The RFC 5424 severity (0-7) of a stored level, by the rank any spelling has.

    ``critical``/``fatal`` 2, ``error``/``err`` 3, ``warning``/``warn`` 4,
    ``notice`` 5, ``info`` 6, ``debug``/``trace`` 7; ``emergency`` and
    ``alert`` keep 0 and 1; a level nobody knows is info (6), as everywhere
    in netlog (:data:`netlog.levels.UNKNOWN_RANK`).
    """
    if not isinstance(level, str):
        return 6
    named = _NAMED_SEVERITIES.get(level.strip().lower())
    if named is not None:
        return named
    rank = level_rank(level)
    for lowest, value in _RANK_SEVERITIES:
        if rank >= lowest:
            return value
    return _DEBUG


def printable(value: object, limit: int) -> str:
    """A header field: PRINTUSASCII (others become ``_``), at most ``limit``, ``-`` if empty."""
    text = value if isinstance(value, str) else ""
    return _NOT_PRINTUSASCII.sub("_", text[:limit]) or NIL


def param_name(name: str) -> str:
    """An SD PARAM-NAME: ``=``, space, ``]``, ``"`` and non-PRINTUSASCII become ``_``; 1-32 long."""
    return _NOT_SD_NAME.sub("_", name[:_SD_NAME_MAX]) or "_"


def param_value(value: object) -> str:
    """An SD PARAM-VALUE: strings as they are, other values as compact JSON, then escaped."""
    if not isinstance(value, str):
        try:
            value = orjson.dumps(value).decode()
        except TypeError:  # not from a stored line: JSON has no such value
            value = str(value)
    return value.translate(_PARAM_ESCAPES)


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 3.4.1 octet-counting framing: ``MSG-LEN SP SYSLOG-MSG``."""
    return b"%d %b" % (len(message), message)


def _procid(fields: Mapping[str, Any]) -> str:
    src = fields.get("_src")
    pid = src.get("process") if isinstance(src, dict) else None
    if pid is None:
        pid = fields.get("pid")
    if type(pid) is int and 0 <= pid < _PID_MAX:
        return str(pid)
    return NIL


class Datagram(NamedTuple):
    """One UDP message and whether it had to be cut to fit."""

    data: bytes
    truncated: bool


class Rfc5424:
    """Formats stored records (parsed JSON lines) as RFC 5424 messages.

    ``hostname`` is used for records without a ``host`` key (this machine's
    name, given by the caller so that this module stays pure).
    """

    def __init__(self, hostname: str, *, facility: int = FACILITY_USER) -> None:
        self._hostname = printable(hostname, _HOSTNAME_MAX)
        self._facility = facility

    def message(self, record: Mapping[str, Any]) -> bytes:
        """The whole RFC 5424 message for ``record``, unframed."""
        header, fields, record_id, msg = self._parts(record)
        sd = _structured_data(record_id, fields, truncated=False)
        return _join(header, sd, msg)

    def datagram(self, record: Mapping[str, Any], limit: int = DEFAULT_DATAGRAM_LIMIT) -> Datagram:
        """The message for one UDP datagram of at most ``limit`` bytes.

        A longer one keeps its header and gains ``truncated="1"`` in its
        structured data; its fields stay if they fit beside the header,
        and the message text is cut at a character boundary to what is left.
        """
        limit = max(limit, MIN_DATAGRAM_LIMIT)
        header, fields, record_id, msg = self._parts(record)
        whole = _join(header, _structured_data(record_id, fields, truncated=False), msg)
        if len(whole) <= limit:
            return Datagram(whole, truncated=False)
        sd = _structured_data(record_id, fields, truncated=True)
        if len(header) + 1 + len(sd) + 1 + len(BOM) > limit:
            sd = _structured_data(record_id, {}, truncated=True)
        room = limit - len(header) - 1 - len(sd) - 1
        # Cut inside the text, never inside a character: "ignore" drops a
        # trailing partial UTF-8 sequence.
        text = msg[len(BOM) : room].decode("utf-8", "ignore").encode() if room > len(BOM) else b""
        return Datagram(_join(header, sd, BOM + text if text else b""), truncated=True)

    def _parts(self, record: Mapping[str, Any]) -> tuple[bytes, Mapping[str, Any], str, bytes]:
        fields = record.get("fields")
        if not isinstance(fields, dict):
            fields = {}
        ts = record.get("ts")
        timestamp = ts if isinstance(ts, str) and _TIMESTAMP.fullmatch(ts) else NIL
        host = record.get("host")
        hostname = printable(host, _HOSTNAME_MAX) if host else self._hostname
        pri = self._facility * 8 + severity(record.get("level"))
        header = " ".join(
            (
                f"<{pri}>1",
                timestamp,
                hostname,
                printable(record.get("logger"), _APP_NAME_MAX),
                _procid(fields),
                printable(record.get("format"), _MSGID_MAX),
            )
        ).encode("ascii")
        message = record.get("message")
        text = message if isinstance(message, str) else ("" if message is None else str(message))
        exc = record.get("exc")
        if isinstance(exc, str) and exc:
            text = f"{text}\n{exc}" if text else exc
        msg = BOM + text.encode("utf-8", "replace") if text else b""
        record_id = record.get("id")
        return header, fields, record_id if isinstance(record_id, str) else "", msg


def _structured_data(record_id: str, fields: Mapping[str, Any], *, truncated: bool) -> bytes:
    params = [f'id="{param_value(record_id)}"']
    params += [f'{param_name(str(k))}="{param_value(v)}"' for k, v in fields.items()]
    if truncated:
        params.append('truncated="1"')
    return f"[{SD_ID} {' '.join(params)}]".encode("utf-8", "replace")


def _join(header: bytes, sd: bytes, msg: bytes) -> bytes:
    return b"%b %b %b" % (header, sd, msg) if msg else b"%b %b" % (header, sd)
