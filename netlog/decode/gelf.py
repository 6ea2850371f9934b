"""GELF 1.1 (Graylog Extended Log Format), as Docker's ``gelf`` driver, graypy and pygelf send it.

Sans-IO, like every decoder: bytes in, records out, ``DecodeError`` for
input that cannot become a record.  Three pieces:

* :func:`gelf_record` / :func:`from_gelf`: one GELF payload (a JSON object)
  to one record with format ``gelf``;
* :class:`ChunkReassembler`: chunked GELF over UDP put back together, with
  bounded memory and an injected clock;
* :class:`GelfDatagrams` (UDP: whole, chunked, plain, gzip or zlib) and
  :class:`GelfStreamDecoder` (TCP: NUL-delimited JSON frames) for the two
  listeners.

The mapping (why each choice):

* ``short_message`` is the message.  When it is missing or empty, Graylog
  rejects the message; here a ``full_message`` that is not a traceback, or
  a ``message`` key (Logstash-style senders), stands in, else the message
  is empty: the record's other fields are still worth keeping.  Counted in
  ``notes["gelf_no_short_message"]``.
* ``full_message`` goes to ``exc`` when it looks like a traceback (Python,
  Java, Node, Go), else it stays in ``fields["full_message"]``.
* ``timestamp`` (epoch seconds, a float) is ``ts``; one that is not a time
  stays in ``fields["timestamp"]`` and ``ts`` is the receive time.
* ``level``: syslog severities 0-7 map through
  :data:`~netlog.levels.SYSLOG_SEVERITY_LEVELS`; graypy sends a Python
  level number it has no syslog name for as it is (15), which is stored
  as the stdlib number it is (``level 15``); a missing level is ``info``,
  not the spec's default ALERT, which would page someone for every record
  of a sender that leaves it out (Graylog itself stores no level then).
* ``version`` other than ``1.1``/``1.0`` is kept (``fields["version"]``)
  and noted (``gelf_version``), not rejected: the rest is still GELF.
* ``host`` and every additional ``_field`` (underscore removed) go to
  ``fields``; the deprecated 1.0 fields (``file``, ``line``, ``facility``)
  and graypy's ``level_name`` stay under their own names.
* The logger is the record's own when it names one (graypy's ``_logger``,
  pygelf's ``_logger_name``, GELF 1.0's ``facility``, which graypy fills
  with the logger's name), else the container's name for a record from
  Docker's driver, else empty.
* A record from Docker's driver (it carries ``_container_id`` or
  ``_container_name``) is a line a container printed: it is read by
  :func:`~netlog.decode.container.container_line`, so a JSON line keeps its
  own level, message, time and logger, a text line that starts with a
  level word takes it, and otherwise GELF's level applies (Docker sends 6
  for stdout, 3 for stderr).  Docker's ``_container_name``,
  ``_container_id``, ``_image_name``, ``_image_id``, ``_tag``,
  ``_command`` and ``_created`` stay in ``fields`` (without the
  underscore) and win over a JSON line's keys of the same names.
* A payload that is not JSON, or JSON that is not an object, is unusable:
  ``DecodeError`` (``bad_json``, ``not_an_object``).
"""

from __future__ import annotations

import collections
import re
import time
from typing import TYPE_CHECKING, Any, Final

import orjson

from netlog.decode.connection import ConnectionBookkeeping
from netlog.decode.container import container_line, leading_level
from netlog.decode.formats import cap_message, is_deep
from netlog.decode.framing import Lines
from netlog.decode.inflate import inflate
from netlog.decode.normalize import Budget, json_safe, parse_timestamp
from netlog.errors import DecodeError
from netlog.levels import SYSLOG_SEVERITY_LEVELS, level_from_number
from netlog.record import Record
from netlog.settings import DEFAULT_MAX_FRAME, DEFAULT_MAX_LINE

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "CHUNK_MAGIC",
    "CHUNK_TIMEOUT",
    "HELD_MESSAGES",
    "IN_FLIGHT",
    "MAX_CHUNKS",
    "ChunkReassembler",
    "GelfDatagrams",
    "GelfStreamDecoder",
    "from_gelf",
    "gelf_record",
]

#: The first two bytes of a chunk (GELF spec: "Chunking").
CHUNK_MAGIC: Final = b"\x1e\x0f"
#: Magic (2), message id (8), sequence number (1), sequence count (1).
_HEADER: Final = 12
#: At most this many chunks make one message (the spec's limit).
MAX_CHUNKS: Final = 128
#: Seconds within which all chunks of a message must arrive (the spec's 5 s).
CHUNK_TIMEOUT: Final = 5.0
#: Partial messages held at once, at most; the oldest is dropped for a new one.
IN_FLIGHT: Final = 4096
#: Bytes of chunks held at once, in units of ``--max-frame`` (32 MiB by default).
HELD_MESSAGES: Final = 32

#: What the record's format says.
FORMAT: Final = "gelf"
#: Docker's gelf driver's own fields: the ones that say a record came from a container.
#: Docker's level for each stream, so a text line's fallback is the stream's.
_STREAM_BY_LEVEL: Final = {6: "stdout", 3: "stderr"}
#: Where a sender names its own logger, first match wins (underscores removed).
_OWN_LOGGER: Final = ("logger", "logger_name", "facility")
_KNOWN_VERSIONS: Final = frozenset(("1.1", "1.0"))
#: Python, Java/.NET/Node stack lines, Go's goroutine dumps and panics.
_TRACEBACK: Final = re.compile(
    r"Traceback \(most recent call last\):"
    r'|^[ \t]+File ".*", line \d+'
    r"|^[ \t]+at .+:\d+\)?$"
    r"|^goroutine \d+ \["
    r"|^panic: ",
    re.MULTILINE,
)
_MISSING: Final = object()
#: Epoch numbers from here on are milliseconds (as :func:`parse_timestamp` reads them).
_MS_EPOCH: Final = 1e11


def looks_like_traceback(text: str) -> bool:
    """Tell whether ``full_message`` is a stack trace (it then goes to ``exc``)."""
    return _TRACEBACK.search(text) is not None


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    if value is None or value is _MISSING:
        return ""
    return orjson.dumps(value).decode()


def _level(value: Any, fields: dict[str, Any]) -> tuple[str, int | None]:
    """The level name of GELF's ``level`` and its number (``None`` when it is not one)."""
    if type(value) is str and value.isascii() and value.isdigit() and len(value) < 7:
        value = int(value)
    if type(value) is int:
        if 0 <= value < len(SYSLOG_SEVERITY_LEVELS):
            return SYSLOG_SEVERITY_LEVELS[value], value
        return level_from_number(value), value
    if value is _MISSING:
        return "info", None
    if type(value) is str and value:
        return value.lower(), None
    fields["level"] = value
    return "info", None


def gelf_record(
    payload: bytes,
    peer: str,
    received: float,
    notes: collections.Counter[str],
    *,
    max_line: int = DEFAULT_MAX_LINE,
) -> Record:
    """One uncompressed GELF payload as a record; ``DecodeError`` when it is not a JSON object."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("bad_json", f"GELF payload is not JSON: {exc}") from None
    if type(obj) is not dict:
        kind = type(obj).__name__
        raise DecodeError("not_an_object", f"GELF payload is a JSON {kind}, not an object")
    if is_deep(payload):
        # orjson parses deeper than it writes: the depth-limited copy is written.
        obj = json_safe(obj, Budget(1 << 62))
    record = from_gelf(obj, peer, received, notes)
    if len(record.message) > max_line:
        record = cap_message(record, max_line, notes)
    return record


def _message(
    obj: dict[str, Any], fields: dict[str, Any], notes: collections.Counter[str]
) -> tuple[str, str | None]:
    """The message and ``exc`` from ``short_message`` and ``full_message``."""
    message: Any = obj.pop("short_message", _MISSING)
    full = obj.pop("full_message", _MISSING)
    exc: str | None = None
    if type(full) is str and full and looks_like_traceback(full):
        exc = full
    elif full is not _MISSING:
        fields["full_message"] = full
    if message is _MISSING or message is None or message == "":
        notes["gelf_no_short_message"] += 1
        if type(fields.get("full_message")) is str and fields["full_message"]:
            message = fields.pop("full_message")
        else:
            message = obj.pop("message", "")
    return _text(message), exc


def from_gelf(
    obj: dict[str, Any], peer: str, received: float, notes: collections.Counter[str]
) -> Record:
    """A parsed GELF object as a record (see the module docstring); consumes ``obj``.

    Runs once per record: the common shapes (a text ``short_message``, a
    float ``timestamp``, a level 0-7, no ``full_message``) take one test
    each, and anything else goes through the helpers.
    """
    fields: dict[str, Any] = {}
    version = obj.pop("version", None)
    if version is not None and version not in _KNOWN_VERSIONS:
        notes["gelf_version"] += 1
        fields["version"] = version

    exc: str | None = None
    text = obj.pop("short_message", None)
    if "full_message" in obj or type(text) is not str or not text:
        obj["short_message"] = text
        text, exc = _message(obj, fields, notes)

    stamp = obj.pop("timestamp", _MISSING)
    if type(stamp) is float and 0.0 <= stamp < _MS_EPOCH:
        ts = stamp
    elif stamp is _MISSING:
        ts = received
    else:
        parsed = parse_timestamp(stamp)
        if parsed is None:
            fields["timestamp"] = stamp
        ts = received if parsed is None else parsed

    number = obj.pop("level", _MISSING)
    if type(number) is int and 0 <= number < len(SYSLOG_SEVERITY_LEVELS):
        level = SYSLOG_SEVERITY_LEVELS[number]
    else:
        level, number = _level(number, fields)
    container = "_container_id" in obj or "_container_name" in obj
    for key, value in obj.items():
        name = key[1:] if key[:1] == "_" and len(key) > 1 else key
        fields[key if name in fields else name] = value

    logger = ""
    for key in _OWN_LOGGER:
        value = fields.get(key)
        if type(value) is str and value:
            logger = fields.pop(key)
            break
    record = Record(ts, received, level, logger, text, fields, exc, peer, FORMAT)
    if container:
        record = _container_record(record, number, notes)
    return record


def _container_record(
    record: Record, number: int | None, notes: collections.Counter[str]
) -> Record:
    """A record from Docker's driver: its message is a line the container printed."""
    name = record.fields.get("container_name")
    container = name if type(name) is str else ""
    line = record.message.encode("utf-8", "surrogatepass")
    seen: collections.Counter[str] = collections.Counter()
    stream = _STREAM_BY_LEVEL.get(number) if number is not None else None
    printed = container_line(line, stream, record.peer, record.received, notes=seen, fmt=FORMAT)
    notes.update(seen)
    if printed is None:  # a blank line: nothing of its own to say
        return record._replace(logger=record.logger or container)
    if line.lstrip()[:1] == b"{" and "json_as_text" not in seen:
        # A JSON line: its own level, message, time and logger win; Docker's
        # fields (the container's name, id, image...) win over its keys.
        return printed._replace(
            ts=record.ts if printed.ts == record.received else printed.ts,
            logger=printed.logger or record.logger or container,
            fields={**printed.fields, **record.fields},
            exc=printed.exc or record.exc,
        )
    level = printed.level if stream is not None else leading_level(line) or record.level
    return record._replace(level=level, logger=record.logger or container)


class _Partial:
    """The chunks of one message received so far."""

    __slots__ = ("count", "have", "parts", "size", "started")

    def __init__(self, started: float, count: int) -> None:
        self.started = started
        self.count = count
        self.have = 0
        self.size = 0
        self.parts: list[bytes | None] = [None] * count


class ChunkReassembler:
    """Chunked GELF messages put back together, in bounded memory.

    A message's chunks are keyed by the sender's address and the 8-byte
    message id (a sender cannot complete or spoil another's message), and
    must all arrive within ``timeout`` seconds of the first, else the
    partial message expires (``dropped["gelf_expired"]``).  At most
    ``in_flight`` partial messages and ``held_bytes`` bytes of chunks are
    held; a chunk that would pass either bound first drops the oldest
    partial messages (``dropped["gelf_evicted"]``): a storm of chunks that
    never complete then costs only the storm's own oldest messages, while
    a real sender's chunks, which arrive within milliseconds of each other,
    still meet.  A message whose chunks pass ``max_message`` bytes is
    dropped at once (``frame_too_large``).  ``dropped`` is the counter
    these go to (the server's ``stats.dropped``), since they happen
    between datagrams rather than to the one being decoded.  The clock is
    injected (monotonic seconds).
    """

    def __init__(
        self,
        dropped: collections.Counter[str],
        *,
        timeout: float = CHUNK_TIMEOUT,
        in_flight: int = IN_FLIGHT,
        held_bytes: int = HELD_MESSAGES * DEFAULT_MAX_FRAME,
        max_message: int = DEFAULT_MAX_FRAME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dropped = dropped
        self.timeout = timeout
        self.in_flight = in_flight
        self.held_bytes = held_bytes
        self.max_message = max_message
        self._clock = clock
        self._partials: collections.OrderedDict[tuple[str, bytes], _Partial] = (
            collections.OrderedDict()
        )
        self.held = 0
        """Bytes of chunks held now."""

    def __len__(self) -> int:
        """Partial messages held now."""
        return len(self._partials)

    def add(self, chunk: bytes, peer: str) -> bytes | None:
        """Take one chunk datagram; the whole (still compressed) message once it is complete.

        Raises ``DecodeError``: ``bad_chunk`` (too short, a count of 0 or
        over 128, a count that differs from the message's first chunk),
        ``chunk_out_of_range`` (sequence number not below the count),
        ``chunk_duplicate`` (a sequence number already held; the first one
        is kept), ``frame_too_large`` (the message passes ``max_message``).
        """
        if len(chunk) < _HEADER or chunk[:2] != CHUNK_MAGIC:
            raise DecodeError("bad_chunk", f"{len(chunk)}-byte GELF chunk, shorter than its header")
        seq, count = chunk[10], chunk[11]
        if not 0 < count <= MAX_CHUNKS:
            raise DecodeError("bad_chunk", f"GELF chunk count {count} is not 1..{MAX_CHUNKS}")
        if seq >= count:
            raise DecodeError(
                "chunk_out_of_range", f"GELF chunk number {seq} of a {count}-chunk message"
            )
        now = self._clock()
        self.expire(now)
        payload = chunk[_HEADER:]
        if count == 1:
            return payload
        key = (peer, chunk[2:10])
        partial = self._partials.get(key)
        if partial is None:
            partial = self._partials[key] = _Partial(now, count)
        elif partial.count != count:
            raise DecodeError(
                "bad_chunk",
                f"GELF chunk says {count} chunks, its message's first said {partial.count}",
            )
        elif partial.parts[seq] is not None:
            raise DecodeError("chunk_duplicate", f"GELF chunk {seq} of a message received twice")
        size = len(payload)
        if partial.size + size > self.max_message:
            self._forget(key, partial)
            raise DecodeError(
                "frame_too_large", f"chunked GELF message passes {self.max_message} bytes"
            )
        if partial.have + 1 < count:  # the last chunk frees what it adds: no room needed
            self._make_room(key, size)
            if key not in self._partials:  # it was the oldest, so it made room itself
                self.dropped["gelf_evicted"] += 1
                return None
        partial.parts[seq] = payload
        partial.have += 1
        partial.size += size
        self.held += size
        if partial.have < count:
            return None
        self._forget(key, partial)
        return b"".join(part for part in partial.parts if part is not None)

    def abandon(self) -> None:
        """Give up on every partial message (shutdown): each is counted ``gelf_incomplete``."""
        if self._partials:
            self.dropped["gelf_incomplete"] += len(self._partials)
        self._partials.clear()
        self.held = 0

    def _forget(self, key: tuple[str, bytes], partial: _Partial) -> None:
        del self._partials[key]
        self.held -= partial.size

    def expire(self, now: float | None = None) -> None:
        """Drop the partial messages whose first chunk came ``timeout`` ago (oldest first).

        Called for every chunk, and by :class:`GelfDatagrams` for every whole
        datagram too, so expired messages are counted as soon as anything
        arrives; only the oldest few are looked at.
        """
        if now is None:
            now = self._clock()
        partials = self._partials
        while partials:
            key, oldest = next(iter(partials.items()))
            if now - oldest.started < self.timeout:
                return
            self._forget(key, oldest)
            self.dropped["gelf_expired"] += 1

    def _make_room(self, key: tuple[str, bytes], size: int) -> None:
        """Drop the oldest partial messages until ``size`` more bytes fit both bounds."""
        partials = self._partials
        while partials and (self.held + size > self.held_bytes or len(partials) > self.in_flight):
            oldest_key, oldest = next(iter(partials.items()))
            self._forget(oldest_key, oldest)
            if oldest_key != key:
                self.dropped["gelf_evicted"] += 1


class GelfDatagrams:
    """GELF over UDP: the ``decode`` of a datagram listener (``servers/logsink.py``).

    A datagram is a whole message or a chunk (:class:`ChunkReassembler`);
    a whole message is plain JSON, gzip or zlib, told from its first bytes
    and inflated to at most ``max_frame`` bytes (a few hundred bytes of
    gzip may claim gigabytes: past the cap it is ``decompressed_too_large``
    after ``max_frame`` bytes of work, never more).
    """

    def __init__(
        self,
        *,
        notes: collections.Counter[str],
        dropped: collections.Counter[str],
        max_frame: int = DEFAULT_MAX_FRAME,
        max_line: int = DEFAULT_MAX_LINE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notes = notes
        self.max_frame = max_frame
        self.max_line = max_line
        self.chunks = ChunkReassembler(
            dropped,
            held_bytes=HELD_MESSAGES * max_frame,
            max_message=max_frame,
            clock=clock,
        )

    def __call__(self, data: bytes, peer: str, received: float) -> Record | None:
        """One datagram's record, ``None`` for a chunk that completes nothing yet."""
        if data[:2] == CHUNK_MAGIC:
            message = self.chunks.add(data, peer)
            if message is None:
                return None
            data = message
        elif self.chunks:
            self.chunks.expire()
        if data[:1] == b"{":  # plain JSON, the common case: no inflating to try
            payload = data
        elif not data or data.isspace():
            raise DecodeError("empty", "empty GELF datagram")
        else:
            payload = inflate(data, self.max_frame)
        if len(payload) > self.max_frame:
            raise DecodeError(
                "frame_too_large",
                f"GELF message of {len(payload)} bytes exceeds the limit of {self.max_frame}",
            )
        return gelf_record(payload, peer, received, self.notes, max_line=self.max_line)


class GelfStreamDecoder(ConnectionBookkeeping):
    """GELF over TCP: NUL-terminated JSON frames, uncompressed (the spec's TCP framing).

    A :class:`~netlog.decode.stream.ConnectionDecoder`.  Framing is
    :class:`~netlog.decode.framing.Lines` with a NUL delimiter: a frame over
    ``max_frame`` is dropped (``line_too_long``) and the next frame is still
    found, at most ~``max_frame`` bytes are buffered; a frame that is not a
    GELF object is skipped (``bad_frame``) and the connection kept, as the
    line decoder does.  Empty frames (a NUL after a newline-ended sender's
    frame, keep-alives) are ignored.  At EOF a last frame without its NUL
    is decoded; when the server gives up (:meth:`abandon`) it is counted
    ``truncated``.  GELF over TCP expects no reply.  The only fatal error is
    data after EOF: no frame makes the stream unframeable.
    """

    def __init__(
        self,
        peer: str,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_line: int = DEFAULT_MAX_LINE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(peer, max_line=max_line, clock=clock)
        self._framer = Lines(max_frame, self._problem, delimiter=b"\0")

    @property
    def pending(self) -> int:
        """Bytes of a frame not yet complete."""
        return self._framer.pending

    def feed(self, data: bytes) -> list[Record]:
        """Records of the frames ``data`` completes; ``b""`` is EOF."""
        if self._error is not None or self._eof:
            raise self._refused()
        if data:
            frames = self._framer.push(data)
        else:
            self._eof = True
            frames = self._framer.finish()
        now = self._clock()
        out: list[Record] = []
        for frame in frames:
            if not frame or frame.isspace():
                continue
            try:
                out.append(gelf_record(frame, self.peer, now, self.notes, max_line=self.max_line))
            except DecodeError as exc:
                self._problem("bad_frame", f"skipped a bad GELF frame: {exc}")
        self.records += len(out)
        return out

    def abandon(self) -> None:
        """Give up without EOF: a frame held is half a record (``truncated``)."""
        if self._eof:
            return
        self._eof = True
        if self._framer.pending:
            self._problem(
                "truncated",
                f"connection given up inside a GELF frame ({self._framer.pending} bytes lost)",
            )
        self._framer.clear()

    def replies(self) -> bytes:
        """Nothing: GELF senders expect no answer."""
        return b""
