"""Fluentd's forward protocol v1 (Docker's ``fluentd`` driver, fluent-logger, Fluent Bit), sans-IO.

One connection carries MessagePack arrays, each one *frame*:

* Message ``[tag, time, record, option?]`` (fluent-logger, Docker's driver);
* Forward ``[tag, [[time, record], ...], option?]``;
* PackedForward ``[tag, bin|str of concatenated [time, record] entries, option?]``;
* CompressedPackedForward: the same with ``option["compressed"] == "gzip"``,
  the entries one or more concatenated gzip members (inflated under a cap
  by :mod:`netlog.decode.inflate`).

``time`` is an integer (seconds), a float, or EventTime (ext type 0: 4-byte
seconds, 4-byte nanoseconds, big-endian).  ``option["chunk"]`` asks for
``{"ack": chunk}``, which :meth:`ForwardDecoder.replies` hands the server;
the server sends it only after the frame's records are written to the store.
A top-level ``nil`` is a client's heartbeat and is ignored.

Why every frame is read twice: msgpack preallocates what a header claims
(a list of ``n`` slots, a dict presized for ``n`` keys) before the elements
arrive, so an array of a million claimed elements nested a thousand deep
costs gigabytes while only a few kilobytes were sent.  So a scanner
(``Unpacker.skip``, which builds no object) first finds where a frame ends
without allocating anything, and a frame is unpacked only once it is
complete and at most ``max_frame`` bytes: then every claimed element is
backed by at least one byte that is here, and building it costs memory in
proportion to the frame's size.  The packed entries are scanned the same
way before they are unpacked.

The connection policy (what is fatal), as for the other stream protocols:
a frame larger than ``max_frame``, bytes that are not MessagePack, a frame
that is not a forward message (wrong types, a time that is no time, a
record that is not a map), entries that do not inflate or inflate past the
cap: ``DecodeError`` and the connection is closed.  The frame is decoded
whole before any of its records is returned, so nothing of a bad frame is
written, and the frames before it are.

Mapping (format ``fluent``): a record with a ``log`` string is a line a
container or a tailed file printed (Docker's driver, Fluent Bit's tail):
:func:`netlog.decode.container.container_line` reads it (a JSON line keeps
its own level, a leading level word wins, else ``source``/``stream``
stdout is info and stderr error); the logger is the JSON line's own, else
the container's name (``/`` stripped), else the tag.  Any other record is a
JSON-like object (:func:`netlog.decode.normalize.from_json`: ``message``
or ``msg``, ``level`` or ``severity``...), whose logger falls back to
fluent-logger's ``sys_name`` and then the tag.  The tag is kept as
``fields["tag"]``.

Docker splits lines longer than 16 KiB into parts (``partial_message``,
``partial_id``, ``partial_ordinal``, ``partial_last``); they are joined per
connection.  A joined line that grows past ``max_line`` is written at once
as what is held, cut with the visible marker of
:func:`netlog.decode.formats.cap_message` (``notes["message_truncated"]``),
and the rest of its parts are discarded (``notes["partial_discarded"]``):
the start of a huge line is what a reader wants, and holding more would let
one container hold memory without bound.  Parts held when the peer closes
are written as they are (``notes["partial_unfinished"]``); when the server
gives up without EOF they are counted in ``dropped["truncated"]``.  Parts
are acknowledged when they are held, not when their line is written:
Docker's driver waits for each ack before it sends the next part.
"""

from __future__ import annotations

import itertools
import math
import struct
import time
from typing import TYPE_CHECKING, Any, Final

import msgpack
import orjson

from netlog.decode.connection import ConnectionBookkeeping
from netlog.decode.container import STREAM_LEVELS, container_line, leading_level
from netlog.decode.formats import DEEP_JSON, cap_message
from netlog.decode.inflate import inflate
from netlog.decode.normalize import Budget, expansion_budget, from_json, json_safe
from netlog.errors import DecodeError
from netlog.record import Record, new_record
from netlog.settings import DEFAULT_MAX_FRAME, DEFAULT_MAX_LINE

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["FORMAT", "ForwardDecoder", "event_time"]

#: The ``format`` of every record this decoder makes.
FORMAT: Final = "fluent"
#: Docker's partial-message keys, removed from the fields of a joined line.
_PARTIAL_KEYS: Final = ("partial_message", "partial_id", "partial_ordinal", "partial_last")
#: Docker's keys that are not the line itself, kept as fields.
_LINE_KEYS: Final = ("log", *_PARTIAL_KEYS)
#: First characters that keep a line off the fast path: it may be JSON (after
#: spaces, too: `isspace` lines and leading blanks go the long way).
_NOT_PLAIN: Final = frozenset(("{", " ", "\t", "\r", "\n", "\f", "\v", ""))
#: Lines being joined at once per connection: Docker interleaves at most a
#: container's stdout and stderr; past this the oldest is written as it is.
MAX_OPEN_PARTIALS: Final = 8
#: Ids of over-long lines whose remaining parts are discarded, remembered per connection.
_MAX_DISCARDING: Final = 64
_EVENT_TIME: Final = struct.Struct(">II")
#: MessagePack's array 32 header: 0xdd, then the count.
_ARRAY32: Final = struct.Struct(">BI")
#: What msgpack raises on bytes it cannot decode (ExtraData, FormatError and
#: StackError are ValueErrors; an unhashable map key is a TypeError).
_UNPACK_ERRORS: Final = (ValueError, TypeError, OverflowError, msgpack.UnpackException)


def event_time(value: Any) -> float | None:
    """Epoch seconds from a forward-protocol time (int, float, EventTime), else ``None``."""
    kind = type(value)
    if kind is int:
        return float(value) if -(1 << 53) < value < (1 << 53) else None
    if kind is float:
        return value if math.isfinite(value) else None
    if isinstance(value, msgpack.ExtType):
        if value.code == 0 and len(value.data) == _EVENT_TIME.size:
            seconds, nanoseconds = _EVENT_TIME.unpack(value.data)
            return float(seconds + nanoseconds / 1e9)
        return None
    if isinstance(value, msgpack.Timestamp):
        return float(value.to_unix())
    return None


def _bad(text: str) -> DecodeError:
    return DecodeError("bad_frame", text)


def _unpack_whole(data: bytes) -> Any:
    """Unpack one complete, already scanned MessagePack object; limits are its own size."""
    size = len(data)
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            unicode_errors="surrogateescape",
            strict_map_key=False,
            max_bin_len=size,
            max_str_len=size,
            max_array_len=size,
            max_map_len=size // 2,
            max_ext_len=size,
        )
    except _UNPACK_ERRORS as exc:
        raise _bad(f"not MessagePack ({type(exc).__name__}: {exc})") from None


def _unpack_frames(data: bytes, count: int) -> list[Any] | None:
    """The ``count`` frames ``data`` holds (already scanned), or ``None`` if one does not unpack.

    One ``unpackb`` behind an array header of that count, as in
    :func:`_unpack_stream`: Docker's driver sends a frame a line, and a call
    with its limits for each cost as much as the frame's contents.  The
    scan has proved every claimed element is here, so the limits (the
    frames' size together) bound nothing that the bytes do not.
    """
    size = len(data)
    try:
        return msgpack.unpackb(  # type: ignore[no-any-return]
            _ARRAY32.pack(0xDD, count) + data,
            raw=False,
            unicode_errors="surrogateescape",
            strict_map_key=False,
            max_bin_len=size,
            max_str_len=size,
            max_array_len=max(size, count),
            max_map_len=size // 2,
            max_ext_len=size,
        )
    except _UNPACK_ERRORS:
        return None


def _scan_entries(data: bytes) -> list[int]:
    """Where each object of a complete MessagePack stream starts, found without building any."""
    size = len(data)
    scanner = msgpack.Unpacker(max_buffer_size=max(size, 1))
    scanner.feed(data)
    starts: list[int] = []
    append, skip, tell = starts.append, scanner.skip, scanner.tell
    position = 0
    try:
        while position < size:
            append(position)
            skip()
            position = tell()
    except msgpack.OutOfData:
        raise _bad("packed entries end inside an entry") from None
    except _UNPACK_ERRORS as exc:
        raise _bad(f"packed entries are not MessagePack ({type(exc).__name__}: {exc})") from None
    return starts


def _build_entries(framed: bytes | bytearray, count: int, size: int) -> list[Any]:
    """The ``count`` objects of ``framed`` (scanned; behind an array 32 header) by one ``unpackb``.

    The limits are ``size``, the objects' bytes: the scan has proved every
    claimed element is here.
    """
    try:
        return msgpack.unpackb(  # type: ignore[no-any-return]
            framed,
            raw=False,
            unicode_errors="surrogateescape",
            strict_map_key=False,
            max_bin_len=size,
            max_str_len=size,
            max_array_len=max(size, count),
            max_map_len=size // 2,
            max_ext_len=size,
        )
    except _UNPACK_ERRORS as exc:
        raise _bad(f"packed entries are not MessagePack ({type(exc).__name__}: {exc})") from None


#: A packed entry as Fluent Bit writes it: a 2-array whose time is EventTime
#: (fixext 8 of type 0).
_EVENT_ENTRY: Final = b"\x92\xd7\x00"


def _unpack_entries(data: bytes) -> tuple[list[Any], bool]:
    """The objects of complete packed entries, scanned before built; and whether times are bytes.

    The scan proves every claimed element is here and finds where each
    entry starts; they are then built by one ``unpackb`` of the same bytes
    behind an array header of their count (an ``Unpacker`` iterated object
    by object costs twice as much a record), so building them costs memory
    in proportion to ``data``.

    msgpack builds an ``ExtType`` for each EventTime through a Python
    ``__new__``: 0.7 µs an entry, half of what building the rest of a
    Docker record costs.  So when every entry starts with ``[EventTime`` (a
    2-array header, then fixext 8 of type 0: every entry Fluent Bit
    sends), the two bytes after each entry's header are rewritten, in the
    copy made for the array header anyway, to bin 8 of length 8: the same
    size, so the same structure, and only each entry's time changes, to its
    8 bytes, which :meth:`ForwardDecoder._entry` reads as EventTime when
    ``True`` is returned.  Otherwise nothing is rewritten (``False``).
    """
    starts = _scan_entries(data)
    count = len(starts)
    size = len(data)
    header = _ARRAY32.pack(0xDD, count)
    if not count or not all(map(data.startswith, itertools.repeat(_EVENT_ENTRY, count), starts)):
        return _build_entries(header + data, count, size), False
    framed = bytearray(header)
    framed += data
    offset = len(header) + 1  # each entry's time header, past the array 32 header and its own
    for start in starts:
        framed[start + offset] = 0xC4  # bin 8 ...
        framed[start + offset + 1] = 8  # ... of 8 bytes: where the ext's type (0) was
    return _build_entries(framed, count, size), True


class _Origin:
    """Where a printed line came from (tag, time, Docker's keys, stream), and its split parts."""

    __slots__ = ("meta", "parts", "size", "stream", "tag", "ts")

    def __init__(self, tag: str, ts: float, meta: dict[str, Any], stream: Any) -> None:
        self.tag = tag
        self.ts = ts
        self.meta = meta
        """Docker's other keys (``container_name``...), kept as fields."""
        self.stream = stream if type(stream) is str else None
        self.parts: list[bytes] = []
        self.size = 0


class ForwardDecoder(ConnectionBookkeeping):
    """Decode one forward-protocol connection (a :class:`~netlog.decode.stream.ConnectionDecoder`).

    ``max_frame`` bounds one frame (and what its entries may inflate to,
    :func:`~netlog.decode.normalize.expansion_budget`), ``max_line`` one
    message and one joined partial line; ``clock`` gives ``received``.
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
        self.max_frame = max_frame
        self._inflate_limit = expansion_budget(max_frame)
        # The scanner finds frame ends without building objects; it may
        # hold up to one frame plus one piece fed (each at most max_frame).
        self._scanner = msgpack.Unpacker(max_buffer_size=2 * max_frame)
        self._buffer = bytearray()
        """The stream's bytes from the start of the frame not yet complete."""
        self._offset = 0
        """Stream offset of ``_buffer[0]``."""
        self._acks: list[bytes] = []
        self._partials: dict[str, _Origin] = {}
        self._partial_bytes = 0
        self._discarding: dict[str, None] = {}

    # --- the ConnectionDecoder protocol ------------------------------------

    @property
    def pending(self) -> int:
        """Bytes held that are not yet a record: half a frame, and parts of split lines."""
        return len(self._buffer) + self._partial_bytes

    def feed(self, data: bytes) -> list[Record]:
        """Records completed by ``data``; ``b""`` is EOF; raises ``DecodeError`` when fatal.

        Records of the good frames before a fatal problem are returned and
        the *next* call raises, as :class:`~netlog.decode.stream.StreamDecoder` does.
        """
        if self._error is not None or self._eof:
            raise self._refused()
        out: list[Record] = []
        now = self._clock()
        try:
            if data:
                self._take(data, now, out)
            else:
                self._finish(now, out)
        except DecodeError as exc:
            self._error = exc
            self._release()
            if not out:
                raise
        self.records += len(out)
        return out

    def abandon(self) -> None:
        """Give up without EOF: half a frame and parts of split lines are counted as lost."""
        if self._eof or self._error is not None:
            return
        self._eof = True
        if self._buffer:
            self._problem(
                "truncated",
                f"connection given up inside a forward frame ({len(self._buffer)} bytes lost)",
            )
        if self._partials:
            self._problem(
                "truncated",
                f"connection given up inside {len(self._partials)} split lines "
                f"({self._partial_bytes} bytes lost)",
            )
        self._release()

    def replies(self) -> bytes:
        """``{"ack": chunk}`` for each frame with a ``chunk`` option fed since the last call."""
        acks, self._acks = self._acks, []
        return b"".join(acks)

    # --- framing -------------------------------------------------------------

    def _take(self, data: bytes, now: float, out: list[Record]) -> None:
        step = self.max_frame
        for start in range(0, len(data), step):
            piece = data[start : start + step]
            self._buffer += piece
            try:
                self._scanner.feed(piece)
            except msgpack.BufferFull:  # never expected: the check below comes first
                raise self._too_large() from None
            ends = self._frame_ends()
            if ends:
                base = self._offset
                whole = bytes(self._buffer[: ends[-1] - base])
                del self._buffer[: ends[-1] - base]
                self._offset = ends[-1]
                messages = _unpack_frames(whole, len(ends) - 1)
                if messages is None:  # one is bad: frame by frame, so the ones before it count
                    for a, b in itertools.pairwise(ends):
                        self._message(_unpack_whole(whole[a - base : b - base]), now, out)
                else:
                    for message in messages:
                        self._message(message, now, out)
            if len(self._buffer) > self.max_frame:
                raise self._too_large()

    def _too_large(self) -> DecodeError:
        return DecodeError(
            "frame_too_large", f"forward frame larger than {self.max_frame} bytes (--max-frame)"
        )

    def _frame_ends(self) -> list[int]:
        """Stream offsets ``[start, end1, end2...]`` of the frames completed so far."""
        scanner = self._scanner
        ends = [self._offset]
        while True:
            try:
                scanner.skip()
            except msgpack.OutOfData:
                break
            except _UNPACK_ERRORS as exc:
                raise _bad(f"not MessagePack ({type(exc).__name__}: {exc})") from None
            ends.append(scanner.tell())
        return ends if len(ends) > 1 else []

    def _finish(self, now: float, out: list[Record]) -> None:
        self._eof = True
        if self._buffer:
            self._problem(
                "truncated", f"connection closed inside a forward frame ({len(self._buffer)} bytes)"
            )
        for key in list(self._partials):
            self.notes["partial_unfinished"] += 1
            self._emit_partial(key, now, out, truncated=False)
        self._release()

    def _release(self) -> None:
        self._buffer = bytearray()
        self._scanner = msgpack.Unpacker(max_buffer_size=1)
        self._partials.clear()
        self._partial_bytes = 0

    # --- one frame -------------------------------------------------------------

    def _message(self, message: Any, now: float, out: list[Record]) -> None:
        """Decode one whole frame, unpacked; its records are added only if all of it is good."""
        if message is None:
            return  # a client's heartbeat
        if type(message) is not list or not 2 <= len(message) <= 4:
            raise _bad(f"not a forward message: {type(message).__name__}")
        tag = message[0]
        if type(tag) is not str:
            raise _bad("forward message tag is not a string")
        records: list[Record] = []
        entry = self._entry
        second = message[1]
        kind = type(second)
        if kind is list or kind is bytes or kind is str:  # Forward, PackedForward
            option = self._option(message, 2)
            entries, event_bytes = (second, False) if kind is list else self._packed(second, option)
            for item in entries:
                if type(item) is not list or len(item) != 2:
                    raise _bad("forward entry is not [time, record]")
                entry(tag, item[0], item[1], event_bytes, now, records)
        else:  # Message: [tag, time, record, option?]
            if len(message) < 3:
                raise _bad("forward message has no record")
            option = self._option(message, 3) if len(message) == 4 else None
            entry(tag, second, message[2], False, now, records)  # noqa: FBT003 - positional: per record
        out.extend(records)
        if option is not None:
            chunk = option.get("chunk")
            if chunk is not None:
                # The chunk id echoed as it came: bytes that were not UTF-8 included.
                ack = msgpack.packb({"ack": chunk}, unicode_errors="surrogateescape")
                self._acks.append(ack)

    def _entry(  # noqa: PLR0917 - one call per record, its fast path inline
        self,
        tag: str,
        when: Any,
        body: Any,
        event_bytes: bool,
        now: float,
        out: list[Record],
    ) -> None:
        """One ``[time, record]``: a Docker JSON line to :meth:`_json_line` now, else ``_record``.

        ``event_bytes`` says the entries' times are EventTimes made
        ``bytes`` by :func:`_unpack_entries`.  A record with a ``log`` string
        that is a JSON object (a containerised structured logger, through
        Docker's driver or Fluent Bit's tail), every key and value a
        ``str`` and no partial-message key, skips the layers between
        (``_entries``, ``_record``, ``event_time``, the line encoded to
        bytes): Docker's driver sends a frame a record, and those were most
        of 1 µs of its 7.  Anything else goes through :meth:`_record`
        unchanged.
        """
        kind = type(when)
        if kind is bytes and event_bytes:
            seconds, nanoseconds = _EVENT_TIME.unpack(when)
            ts = float(seconds + nanoseconds / 1e9)
        elif kind is int and -(1 << 53) < when < (1 << 53):
            ts = float(when)
        else:
            parsed = event_time(when)
            if parsed is None:
                raise _bad("forward entry has no valid time")
            ts = parsed
        if type(body) is not dict:
            raise _bad("forward record is not a map")
        line = body.get("log")
        if type(line) is str and line[:1] == "{" and "partial_message" not in body:
            for key, value in body.items():  # as _record's check: json_safe not needed
                if type(key) is not str or type(value) is not str:
                    break
            else:
                try:
                    obj = orjson.loads(line)  # a str with surrogates raises, as its bytes would
                except orjson.JSONDecodeError:
                    obj = None  # text after all: _record notes it
                if type(obj) is dict:
                    del body["log"]  # the rest is the line's metadata (body is this decoder's own)
                    self._json_line(tag, ts, body, obj, line, now, out)
                    return
        self._record(tag, ts, body, now, out)

    @staticmethod
    def _option(message: list[Any], index: int) -> dict[Any, Any] | None:
        if len(message) <= index or message[index] is None:
            return None
        if len(message) > index + 1:
            raise _bad("forward message has too many elements")
        option = message[index]
        if type(option) is not dict:
            raise _bad("forward option is not a map")
        return option

    def _packed(
        self, entries: bytes | str, option: dict[Any, Any] | None
    ) -> tuple[list[Any], bool]:
        # A str (out_forward's choice) holds the raw bytes; surrogateescape
        # gives them back exactly.
        data = entries if type(entries) is bytes else entries.encode("utf-8", "surrogateescape")  # type: ignore[union-attr]
        if option is not None and option.get("compressed") == "gzip":
            data = inflate(data, self._inflate_limit, "gzip", members=True)
        return _unpack_entries(data)

    # --- one record ------------------------------------------------------------

    def _record(
        self, tag: str, ts: float, body: dict[Any, Any], now: float, out: list[Record]
    ) -> None:
        for key, value in body.items():  # Docker's records: every key and value a str
            if type(key) is not str or type(value) is not str:
                body = json_safe(body, Budget(expansion_budget(self.max_frame)))
                break
        line = body.get("log")
        if type(line) is str:
            if body.get("partial_message") == "true" and type(body.get("partial_id")) is str:
                self._partial(tag, ts, body, now, out)
                return
            del body["log"]  # the rest is the line's metadata (body is this decoder's own)
            if line[:1] == "{":
                raw = line.encode("utf-8", "surrogateescape")
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    obj = None  # text after all: the long way notes it
                if type(obj) is dict:
                    self._json_line(tag, ts, body, obj, line, now, out)
                    return
            stream = body.get("source") or body.get("stream")
            if line.isascii() and line[:1] not in _NOT_PLAIN and not line.isspace():
                self._plain_line(tag, ts, body, stream, line, now, out)
                return
            raw = line.encode("utf-8", "surrogateescape")
            self._line(_Origin(tag, ts, body, stream), raw, now, out)
            return
        record = from_json(body, self.peer, now, fmt=FORMAT)
        fields = record.fields
        logger = record.logger
        if not logger:
            name = fields.get("sys_name")
            logger = name if type(name) is str and name else tag
        fields.setdefault("tag", tag)
        record = record._replace(ts=ts if record.ts == now else record.ts, logger=logger)
        if len(record.message) > self.max_line:
            record = cap_message(record, self.max_line, self.notes)
        out.append(record)

    def _plain_line(  # noqa: PLR0917 - one call per line: no object to carry the arguments
        self,
        tag: str,
        ts: float,
        meta: dict[str, Any],
        stream: Any,
        line: str,
        now: float,
        out: list[Record],
    ) -> None:
        """:meth:`_line` for the common line: ASCII text, not JSON-looking, not blank.

        It is :func:`~netlog.decode.container.container_line`'s text branch
        inlined (its level rule, :func:`~netlog.decode.container.leading_level`
        and :data:`~netlog.decode.container.STREAM_LEVELS`, called as they
        are), because a Docker driver sends one record per printed line and
        the call layers were most of the cost.
        """
        source = stream if type(stream) is str else ""
        level = leading_level(line.encode()) or STREAM_LEVELS.get(source, "info")
        name = meta.get("container_name")
        logger = tag
        if type(name) is str:
            name = meta["container_name"] = name.lstrip("/")
            logger = name or tag
        if "tag" not in meta:
            meta["tag"] = tag
        record = Record(ts, now, level, logger, line, meta, None, self.peer, FORMAT)
        if len(line) > self.max_line:
            record = cap_message(record, self.max_line, self.notes)
        out.append(record)

    def _json_line(  # noqa: PLR0917 - one call per line, as _plain_line
        self,
        tag: str,
        ts: float,
        meta: dict[str, Any],
        obj: dict[str, Any],
        line: str,
        now: float,
        out: list[Record],
    ) -> None:
        """:meth:`_line` for a line that is a JSON object (a containerised structured logger).

        ``orjson`` has parsed ``line`` already, so there is no second pass
        through :func:`~netlog.decode.container.container_line`, whose JSON
        branch is :func:`~netlog.decode.normalize.from_json` (called here as
        it is) plus a counter of notes a record, most of the cost at
        Docker's one record a line.  A line ``orjson`` refuses goes the
        long way, which notes it (``json_as_text``) as for every transport.
        """
        # is_deep, on the str: the brackets are ASCII, so counted alike.
        deep = len(line) > DEEP_JSON and line.count("{") + line.count("[") > DEEP_JSON
        own_ts, _, level, logger, message, fields, exc, peer, _, rid, host = from_json(
            obj, self.peer, now, deep=deep, fmt=FORMAT
        )
        fields.update(meta)
        name = meta.get("container_name")
        if type(name) is str:
            name = fields["container_name"] = name.lstrip("/")
        logger = logger or (name if type(name) is str and name else tag)
        if "tag" not in fields:
            fields["tag"] = tag
        if own_ts != now:
            ts = own_ts
        # new_record: Record's own __new__ is a Python function, a third of this line's cost.
        record = new_record(
            Record, (ts, now, level, logger, message, fields, exc, peer, FORMAT, rid, host)
        )
        if len(message) > self.max_line:
            record = cap_message(record, self.max_line, self.notes)
        out.append(record)

    def _line(
        self, origin: _Origin, raw: bytes, now: float, out: list[Record], *, truncated: bool = False
    ) -> None:
        record = container_line(raw, origin.stream, self.peer, now, notes=self.notes, fmt=FORMAT)
        if record is None:
            return  # a blank line
        fields = record.fields
        meta = origin.meta
        fields.update(meta)
        name = meta.get("container_name")
        if type(name) is str:
            name = fields["container_name"] = name.lstrip("/")
        logger = record.logger or (name if type(name) is str and name else origin.tag)
        if "tag" not in fields:
            fields["tag"] = origin.tag
        ts = origin.ts if record.ts == now else record.ts
        record = Record(
            ts, now, record.level, logger, record.message, fields, record.exc, self.peer, FORMAT
        )
        if truncated or len(record.message) > self.max_line:
            record = cap_message(record, min(self.max_line, len(record.message)), self.notes)
        out.append(record)

    def _partial(
        self, tag: str, ts: float, body: dict[str, Any], now: float, out: list[Record]
    ) -> None:
        key = body["partial_id"]
        last = body.get("partial_last") == "true"
        if key in self._discarding:
            self.notes["partial_discarded"] += 1
            if last:
                del self._discarding[key]
            return
        held = self._partials.get(key)
        if held is None:
            if len(self._partials) >= MAX_OPEN_PARTIALS:
                oldest = next(iter(self._partials))
                self.notes["partial_unfinished"] += 1
                self._emit_partial(oldest, now, out, truncated=False)
            meta = {k: v for k, v in body.items() if k not in _LINE_KEYS}
            stream = body.get("source") or body.get("stream")
            held = self._partials[key] = _Origin(tag, ts, meta, stream)
        part = body["log"].encode("utf-8", "surrogateescape")
        held.parts.append(part)
        held.size += len(part)
        self._partial_bytes += len(part)
        if held.size > self.max_line:
            self._emit_partial(key, now, out, truncated=True)
            if not last:
                self._discarding[key] = None
                if len(self._discarding) > _MAX_DISCARDING:
                    del self._discarding[next(iter(self._discarding))]
        elif last:
            self._emit_partial(key, now, out, truncated=False)

    def _emit_partial(self, key: str, now: float, out: list[Record], *, truncated: bool) -> None:
        held = self._partials.pop(key)
        self._partial_bytes -= held.size
        raw = b"".join(held.parts)
        if truncated:
            raw = raw[: self.max_line]
        self._line(held, raw, now, out, truncated=truncated)
