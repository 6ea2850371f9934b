"""OTLP logs (OpenTelemetry, ``POST /v1/logs``) into records, sans-IO.

A body is an ``ExportLogsServiceRequest``, decoded by the generated classes
of ``opentelemetry-proto`` (never a protobuf parser of our own), in one of
the two encodings OTLP/HTTP defines:

* ``application/x-protobuf``: the binary message (upb parses it in C).
* ``application/json``: OTLP's JSON mapping, which is protobuf's with two
  differences that ``google.protobuf.json_format`` does not know
  (opentelemetry-proto ``docs/specification.md``, "JSON Protobuf
  Encoding"): ``traceId``/``spanId`` are hex, not base64, so they are turned
  into base64 before ``ParseDict``; and unknown fields must be ignored.
  Keys may be lowerCamelCase or the proto names, 64-bit integers strings or
  numbers, enums integers: ``json_format`` takes all of them.

The body may be gzip- or deflate-compressed (``Content-Encoding``), and is
inflated by :func:`netlog.decode.inflate.inflate` under the same cap as a
plain body.

How a LogRecord becomes a :class:`~netlog.record.Record` (format ``otlp``):

* ``level``: ``severity_number`` by OTLP's ranges (1-4 ``trace``, 5-8
  ``debug``, 9-12 ``info``, 13-16 ``warning``, 17-20 ``error``, 21-24
  ``critical``); with no number, ``severity_text`` in lower case; else
  ``info``.  A ``severity_text`` that names another rank than the number's
  (``NOTICE`` with 10) is kept in ``fields["severity_text"]``.
* ``message``: the ``body``: a string as it is, a number or bool as JSON
  spells it, bytes as base64, an array or a key/value list as compact JSON;
  a key/value list is also kept as ``fields["body"]``, so ``body.user=ada``
  finds it.
* ``ts``: ``time_unix_nano``, else ``observed_time_unix_nano``, else the
  receive time.
* ``logger``: the instrumentation scope's name (the SDKs' logging bridges
  name the scope after the application's logger), else the resource's
  ``service.name``.
* ``fields``: the resource's attributes, then the scope's, then the
  record's (a later one wins), with dotted names nested
  (``service.name`` -> ``{"service": {"name": ...}}``), because netlog's
  query language reads dots as nesting: ``service.name=checkout`` and
  ``http.route=/pay`` then find what a user expects.  A name that cannot
  nest (it clashes with a value, or has empty or too many parts) is kept
  as it is.  ``trace_id`` and ``span_id`` as lower-case hex, so
  ``trace_id=...`` finds a trace's logs; ``event_name`` when given.
* ``exc``: ``exception.stacktrace``, else ``exception.type: exception.message``;
  the type and message stay in ``fields`` (``exception.type=KeyError``).

Bounds, so a small body cannot cost unbounded memory or time: at most
:data:`MAX_RECORDS` records a request (the rest are rejected and reported
as OTLP's partial success), :data:`MAX_ATTRIBUTES` attributes from each
source and entries in each array or key/value list, :data:`MAX_DEPTH`
levels of nesting and :data:`MAX_VALUES` values a record.  What is cut is
counted in ``fields["otlp_cut"]`` on the record and in ``notes["otlp_cut"]``
(an array or list cut whole counts as one).
The body itself is capped by the caller (``--otlp-max-body``), before and
after inflating.  A record whose ``trace_id`` is not 16 bytes or whose
``span_id`` is not 8 (or, in JSON, not hex) is rejected alone.
"""

from __future__ import annotations

import base64
import collections
from collections.abc import Callable
from typing import Any, Final, NamedTuple

import orjson

# No stubs for protobuf's runtime here; the generated classes have theirs.
from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError as ProtobufDecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from netlog.decode.formats import cap_message
from netlog.decode.inflate import inflate
from netlog.errors import DecodeError
from netlog.levels import known_rank
from netlog.record import Record, new_record
from netlog.settings import DEFAULT_MAX_LINE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

__all__ = [
    "JSON",
    "MAX_ATTRIBUTES",
    "MAX_DEPTH",
    "MAX_GROUPS",
    "MAX_RECORDS",
    "MAX_VALUES",
    "PROTOBUF",
    "OtlpBatch",
    "decode_export",
    "encode_response",
    "media_of",
]

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
#: Records taken from one request; the rest are rejected (partial success).
#: The SDKs send 512 a batch, the Collector's batch processor 8192.
MAX_RECORDS: Final = 10_000
#: Resource groups, and scope groups in all, one request may hold (SDKs send
#: one of each, the Collector one a service and library); more is refused.
MAX_GROUPS: Final = 1000
#: Attributes taken from each of a record's, its scope's and its resource's
#: lists, and entries from each array or key/value list (the SDKs' own
#: default attribute limit is 128).
MAX_ATTRIBUTES: Final = 256
#: Levels of arrays and key/value lists inside one value.
MAX_DEPTH: Final = 16
#: Values (scalars and containers) one record may carry in all.
MAX_VALUES: Final = 4096
#: Parts a dotted attribute name may nest into.
MAX_NAME_PARTS: Final = 8
#: The codings ``Content-Encoding`` may name, as :func:`inflate` calls them.
_CODINGS: Final = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "zlib"}
_FORMAT: Final = "otlp"
#: ``severity_number`` // 4 (after minus one) to the level records carry.
_LEVELS: Final = ("trace", "debug", "info", "warning", "error", "critical")
_TRACE_ID_BYTES: Final = 16
_SPAN_ID_BYTES: Final = 8


class OtlpBatch(NamedTuple):
    """What one request gave: its records, and what OTLP's partial success reports."""

    records: list[Record]
    rejected: int
    """Log records refused (bad ids, past :data:`MAX_RECORDS`)."""
    error: str
    """Why, for ``partial_success.error_message``; empty when none was."""


def media_of(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` (no parameters, lower case)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_export(
    body: bytes,
    content_type: str | None,
    peer: str,
    received: float,
    *,
    content_encoding: str | None = None,
    limit: int,
    max_line: int = DEFAULT_MAX_LINE,
    notes: collections.Counter[str] | None = None,
) -> OtlpBatch:
    """Decode one ``ExportLogsServiceRequest`` body; ``DecodeError`` if it is not one.

    Reasons: ``unsupported_media_type`` and ``unsupported_encoding`` (HTTP
    415), ``decompressed_too_large`` (413), ``bad_compression``,
    ``bad_protobuf``, ``bad_json`` (400).  ``limit`` caps the inflated size.
    """
    media = media_of(content_type)
    if media not in (PROTOBUF, JSON):
        raise DecodeError(
            "unsupported_media_type",
            f"Content-Type {media!r}: OTLP/HTTP takes {PROTOBUF} or {JSON}",
        )
    coding = (content_encoding or "identity").strip().lower()
    if coding not in ("identity", "") and coding not in _CODINGS:
        raise DecodeError(
            "unsupported_encoding", f"Content-Encoding {coding!r}: only gzip or deflate"
        )
    if coding in _CODINGS:
        body = inflate(body, limit, _CODINGS[coding])
    if notes is None:
        notes = collections.Counter()
    rejected: collections.Counter[str] = collections.Counter()
    request = _parse_protobuf(body) if media == PROTOBUF else _parse_json(body, rejected)
    return _Mapper(peer, received, max_line, notes, rejected).batch(request)


def encode_response(media: str, rejected: int, error: str) -> bytes:
    """An ``ExportLogsServiceResponse`` in the request's encoding (JSON unless protobuf).

    ``partial_success`` is set only when records were rejected or there is
    something to say, as the specification asks.
    """
    response = ExportLogsServiceResponse()
    if rejected or error:
        response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = error
    if media == PROTOBUF:
        return bytes(response.SerializeToString())
    return orjson.dumps(json_format.MessageToDict(response))


# --- the two encodings --------------------------------------------------------


def _parse_protobuf(body: bytes) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(body)
    except (ProtobufDecodeError, RecursionError, ValueError) as exc:
        raise DecodeError("bad_protobuf", f"not an ExportLogsServiceRequest: {exc}") from None
    return request


def _parse_json(body: bytes, rejected: collections.Counter[str]) -> ExportLogsServiceRequest:
    """OTLP/JSON: hex ids made base64 and the lists cut to the bounds, then ``ParseDict``.

    The cuts happen on the parsed JSON, before ``ParseDict`` (which walks
    every node in Python), so a body of a million attributes costs the walk
    of what is kept, not of all of it.
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("bad_json", f"not JSON: {exc}") from None
    if type(value) is not dict:
        raise DecodeError("bad_json", "an ExportLogsServiceRequest is a JSON object")
    _prepare_json(value, rejected)
    request = ExportLogsServiceRequest()
    try:
        json_format.ParseDict(value, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise DecodeError("bad_json", f"not an ExportLogsServiceRequest: {exc}") from None
    return request


def _get_list(obj: dict[str, Any], *names: str) -> list[Any]:
    """The list under the first of ``names`` present (lowerCamelCase or proto name)."""
    for name in names:
        value = obj.get(name)
        if type(value) is list:
            return value
    return []


def _prepare_json(request: dict[str, Any], rejected: collections.Counter[str]) -> None:
    """Make the ids base64 and cut the lists, in place; refused records are removed."""
    taken = 0
    resource_list = [
        r
        for r in _get_list(request, "resourceLogs", "resource_logs")[: MAX_GROUPS + 1]
        if type(r) is dict
    ]
    _check_groups(len(resource_list), lambda: sum(len(_scopes_of(r)) for r in resource_list))
    for resource_logs in resource_list:
        _cut_attributes(resource_logs.get("resource"))
        for scope_logs in _scopes_of(resource_logs):
            if type(scope_logs) is dict:
                _cut_attributes(scope_logs.get("scope"))
                taken += _prepare_records(_records_of(scope_logs), MAX_RECORDS - taken, rejected)


def _prepare_records(records: list[Any], room: int, rejected: collections.Counter[str]) -> int:
    """Cut ``records`` to ``room`` and prepare each kept one, in place; how many are kept."""
    if len(records) > room:
        rejected["too_many"] += len(records) - room
        del records[room:]
    kept = []
    for record in records:
        if type(record) is dict:
            if not _hex_ids_to_base64(record):
                rejected["bad_id"] += 1
                continue
            _cut_attributes(record)
            if "body" in record:
                record["body"] = _cut_value(record["body"], 0)
        kept.append(record)
    records[:] = kept
    return len(kept)


def _records_of(scope_logs: Any) -> list[Any]:
    if type(scope_logs) is not dict:
        return []
    return _get_list(scope_logs, "logRecords", "log_records")


def _scopes_of(resource_logs: dict[str, Any]) -> list[Any]:
    return _get_list(resource_logs, "scopeLogs", "scope_logs")


def _check_groups(resources: int, scopes: Callable[[], int]) -> None:
    """Refuse a request of more than :data:`MAX_GROUPS` resource or scope groups.

    Refused whole, before any is mapped: a body of millions of empty groups
    would otherwise cost seconds of the server's one thread to walk.
    ``scopes`` is called only once the resources are known to be few.
    """
    if resources > MAX_GROUPS or scopes() > MAX_GROUPS:
        raise DecodeError(
            "too_many_groups",
            f"more than {MAX_GROUPS} resource or scope groups in one request",
        )


def _hex_ids_to_base64(record: dict[str, Any]) -> bool:
    """Turn the record's hex ``traceId``/``spanId`` into protobuf JSON's base64; False if bad."""
    for names, size in (
        (("traceId", "trace_id"), _TRACE_ID_BYTES),
        (("spanId", "span_id"), _SPAN_ID_BYTES),
    ):
        for name in names:
            text = record.get(name)
            if text is None or text == "":
                continue
            if type(text) is not str:
                return False
            try:
                raw = bytes.fromhex(text)
            except ValueError:
                return False
            if len(raw) != size:
                return False
            record[name] = base64.b64encode(raw).decode("ascii")
    return True


def _cut_attributes(obj: Any) -> None:
    if type(obj) is not dict:
        return
    attributes = obj.get("attributes")
    if type(attributes) is list:
        del attributes[MAX_ATTRIBUTES:]
        for item in attributes:
            if type(item) is dict and "value" in item:
                item["value"] = _cut_value(item["value"], 0)


def _cut_value(value: Any, depth: int) -> Any:
    """An AnyValue's JSON, its lists cut to :data:`MAX_ATTRIBUTES`, its depth to :data:`MAX_DEPTH`.

    Only bounds the work ``ParseDict`` is given; the mapping counts the cuts
    again on what it reads (the protobuf path has no such step).
    """
    if type(value) is not dict:
        return value
    for name in ("arrayValue", "array_value", "kvlistValue", "kvlist_value"):
        inner = value.get(name)
        if type(inner) is dict:
            items = inner.get("values")
            if type(items) is list:
                if depth >= MAX_DEPTH:
                    items.clear()
                    continue
                del items[MAX_ATTRIBUTES:]
                for index, item in enumerate(items):
                    if type(item) is dict and "value" in item and "key" in item:
                        item["value"] = _cut_value(item["value"], depth + 1)
                    else:
                        items[index] = _cut_value(item, depth + 1)
    return value


# --- LogRecord -> Record ------------------------------------------------------


class _Budget:
    """Values one record may still take, and how many were cut."""

    __slots__ = ("cut", "left")

    def __init__(self) -> None:
        self.left = MAX_VALUES
        self.cut = 0


class _Mapper:
    """Turns one parsed request into records, under the bounds."""

    def __init__(
        self,
        peer: str,
        received: float,
        max_line: int,
        notes: collections.Counter[str],
        rejected: collections.Counter[str],
    ) -> None:
        self.peer = peer
        self.received = received
        self.max_line = max_line
        self.notes = notes
        self.rejected = rejected

    def batch(self, request: ExportLogsServiceRequest) -> OtlpBatch:
        records: list[Record] = []
        resources = request.resource_logs
        _check_groups(len(resources), lambda: sum(len(rl.scope_logs) for rl in resources))
        for resource_logs in resources:
            resource_budget = _Budget()
            resource = self._pairs(resource_logs.resource.attributes, resource_budget)
            service = next((v for k, v in resource if k == "service.name"), None)
            for scope_logs in resource_logs.scope_logs:
                log_records = scope_logs.log_records
                room = max(0, MAX_RECORDS - len(records))
                if len(log_records) > room:
                    # Counted, never walked: a body may hold millions.
                    self.rejected["too_many"] += len(log_records) - room
                if not room:
                    continue
                scope_budget = _Budget()
                scope = self._pairs(scope_logs.scope.attributes, scope_budget)
                inherited = resource_budget.cut + scope_budget.cut
                logger = scope_logs.scope.name or (service if type(service) is str else "")
                template = _Template(resource + scope)
                for log_record in log_records[:room]:
                    record = self._record(log_record, template, logger, inherited)
                    if record is not None:
                        records.append(record)
        return OtlpBatch(records, sum(self.rejected.values()), self._error())

    def _error(self) -> str:
        parts = []
        if self.rejected["bad_id"]:
            parts.append(
                f"{self.rejected['bad_id']} log records with a trace_id not 16 bytes"
                " or a span_id not 8 bytes (hex in JSON)"
            )
        if self.rejected["too_many"]:
            parts.append(
                f"{self.rejected['too_many']} log records past the {MAX_RECORDS}"
                " a request takes: send smaller batches"
            )
        return "; ".join(parts)

    def _record(
        self,
        log_record: LogRecord,
        inherited: _Template,
        logger: str,
        inherited_cut: int,
    ) -> Record | None:
        trace_id, span_id = bytes(log_record.trace_id), bytes(log_record.span_id)
        if len(trace_id) not in (0, _TRACE_ID_BYTES) or len(span_id) not in (0, _SPAN_ID_BYTES):
            self.rejected["bad_id"] += 1
            return None
        budget = _Budget()
        budget.cut = inherited_cut
        pairs = self._pairs(log_record.attributes, budget)
        fields = inherited.fields(pairs)
        for key, value in pairs:
            if "." in key or type(fields.get(key)) is dict:
                _put(fields, key, value)
            else:  # _put's first case, without the call
                fields[key] = value
        # exception.type/message/stacktrace always make fields["exception"] (_put's setdefault).
        exc = _exception(pairs, fields) if "exception" in fields else None
        body = self._body(log_record, budget)
        if type(body) is dict:
            _put(fields, "body", body)
        message = _message(body)
        if any(trace_id):
            fields["trace_id"] = trace_id.hex()
        if any(span_id):
            fields["span_id"] = span_id.hex()
        if log_record.event_name:
            fields["event_name"] = log_record.event_name
        level = _level(log_record.severity_number, log_record.severity_text, fields)
        nanos = log_record.time_unix_nano or log_record.observed_time_unix_nano
        ts = nanos / 1e9 if nanos else self.received
        if budget.cut:
            fields["otlp_cut"] = budget.cut
            self.notes["otlp_cut"] += budget.cut
        # new_record: Record's own __new__ is a Python function (its defaults given here).
        record = new_record(
            Record,
            (ts, self.received, level, logger, message, fields, exc, self.peer, _FORMAT, "", ""),
        )
        if len(message) > self.max_line:
            record = cap_message(record, self.max_line, self.notes)
        return record

    def _body(self, log_record: LogRecord, budget: _Budget) -> Any:
        """The record's body as :meth:`_value` reads it (``None`` when it has none)."""
        if not log_record.HasField("body"):
            return None
        any_value = log_record.body
        text = any_value.string_value  # not empty: the oneof's string, as in _pairs
        if text and budget.left > 0:
            budget.left -= 1
            return text
        return self._value(any_value, budget, 0)

    def _pairs(self, attributes: Any, budget: _Budget) -> list[tuple[str, Any]]:
        """The first :data:`MAX_ATTRIBUTES` attributes as (name, value); the rest counted."""
        count = len(attributes)
        if count > MAX_ATTRIBUTES:
            budget.cut += count - MAX_ATTRIBUTES
        out = []
        for kv in attributes[:MAX_ATTRIBUTES]:
            value = kv.value
            # A string, the common attribute, without the call (as _value reads it): a
            # oneof's other members read as their defaults, so a non-empty one is the set one.
            text = value.string_value
            if text and budget.left > 0:
                budget.left -= 1
                out.append((kv.key, text))
            else:
                out.append((kv.key, self._value(value, budget, 0)))
        return out

    def _value(self, value: AnyValue, budget: _Budget, depth: int) -> Any:  # noqa: PLR0911 - one flat switch of AnyValue's kinds
        """An AnyValue as JSON-ready Python, within the record's budget."""
        if budget.left <= 0:
            budget.cut += 1
            return None
        budget.left -= 1
        kind = value.WhichOneof("value")
        if kind == "string_value":
            return value.string_value
        if kind == "bool_value":
            return value.bool_value
        if kind == "int_value":
            return value.int_value
        if kind == "double_value":
            return value.double_value
        if kind == "bytes_value":
            return base64.b64encode(value.bytes_value).decode("ascii")
        if kind in ("array_value", "kvlist_value"):
            return self._container(value, kind == "array_value", budget, depth)
        return None

    def _container(self, value: AnyValue, array: bool, budget: _Budget, depth: int) -> Any:
        """An array (list) or key/value list (dict): capped in length, depth and the budget."""
        items: Any = value.array_value.values if array else value.kvlist_value.values
        if depth >= MAX_DEPTH:
            budget.cut += len(items)
            return [] if array else {}
        if len(items) > MAX_ATTRIBUTES:
            budget.cut += len(items) - MAX_ATTRIBUTES
        kept = items[:MAX_ATTRIBUTES]
        out: list[Any] = []
        for index, item in enumerate(kept):
            if budget.left <= 0:
                budget.cut += len(kept) - index
                break
            if array:
                out.append(self._value(item, budget, depth + 1))
            else:
                out.append((item.key, self._value(item.value, budget, depth + 1)))
        return out if array else dict(out)


class _Template:
    """The fields a scope's records inherit (resource, then scope attributes), put once.

    Every record of a scope starts from the same inherited attributes, so
    they are put (:func:`_put`) once and each record gets a copy of the
    result: the nesting dicts :func:`_put` made are copied (a record's own
    attributes may nest into them), the attribute values themselves are
    shared as they were when each record put them again, so the fields are
    what putting the inherited attributes again for every record gives.
    """

    __slots__ = ("_flat", "_nested")

    def __init__(self, inherited: list[tuple[str, Any]]) -> None:
        tree: dict[str, Any] = {}
        for key, value in inherited:
            _put(tree, key, value)
        values = {id(value) for _, value in inherited if type(value) is dict}
        self._flat, self._nested = _Template._split(tree, values)

    @staticmethod
    def _split(node: dict[str, Any], values: set[int]) -> tuple[dict[str, Any], list[Any]]:
        """``node`` as what a shallow copy gives, and the nesting dicts to copy under it."""
        nested = [
            (key, _Template._split(value, values))
            for key, value in node.items()
            if type(value) is dict and id(value) not in values
        ]
        return node, nested

    def fields(self, own: list[tuple[str, Any]]) -> dict[str, Any]:
        """A record's own copy of the inherited fields, before its ``own`` attributes are put.

        Only a dotted name may nest into an inherited dict (:func:`_put`;
        what else a record sets is set at the top), so a record none of
        whose own names has a dot gets a copy of the top level only: the
        inherited nesting dicts are then shared, as the inherited values
        are, and no record changes them.
        """
        nested = self._nested
        if nested:
            for key, _ in own:
                if "." in key:
                    return _Template._copy(self._flat, nested)
        return dict(self._flat)

    @staticmethod
    def _copy(flat: dict[str, Any], nested: list[Any]) -> dict[str, Any]:
        out = dict(flat)
        for key, (inner_flat, inner_nested) in nested:
            out[key] = _Template._copy(inner_flat, inner_nested)
        return out


def _put(fields: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` in ``fields``, nesting its dotted parts; kept flat when it cannot nest."""
    if "." not in key:  # the common name: nothing to nest
        if type(fields.get(key)) is not dict or type(value) is dict:
            fields[key] = value
        return
    parts = key.split(".")
    if 1 < len(parts) <= MAX_NAME_PARTS and all(parts):
        node = fields
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if type(child) is not dict:
                break
            node = child
        else:
            last = parts[-1]
            if type(node.get(last)) is not dict or type(value) is dict:
                node[last] = value
                return
    if type(fields.get(key)) is not dict or type(value) is dict:
        fields[key] = value


def _exception(pairs: list[tuple[str, Any]], fields: dict[str, Any]) -> str | None:
    """The traceback text of OTel's exception attributes; the stack is moved out of fields."""
    found = dict(pair for pair in pairs if pair[0].startswith("exception."))
    stack = found.get("exception.stacktrace")
    if isinstance(stack, str) and stack:
        group = fields.get("exception")
        if type(group) is dict:
            group.pop("stacktrace", None)
            if not group:
                del fields["exception"]
        fields.pop("exception.stacktrace", None)
        return stack
    kind, text = found.get("exception.type"), found.get("exception.message")
    if kind is None and text is None:
        return None
    return ": ".join(str(part) for part in (kind, text) if part is not None)


def _message(body: Any) -> str:
    if body is None:
        return ""
    if type(body) is str:
        return body
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS).decode()


#: :func:`known_rank` of the severity texts seen (a sender uses a handful), bounded.
_RANK_OF: dict[str, int | None] = {}
_RANKS_KEPT: Final = 256


def _rank(text: str) -> int | None:
    """:func:`known_rank`, remembered: it runs twice a record."""
    try:
        return _RANK_OF[text]
    except KeyError:
        rank = _RANK_OF[text] = known_rank(text)
        if len(_RANK_OF) > _RANKS_KEPT:
            _RANK_OF.clear()
        return rank


def _level(number: int, text: str, fields: dict[str, Any]) -> str:
    """The level by ``severity_number``'s range, else ``severity_text``; a differing text kept."""
    if 1 <= number <= 24:  # OTLP's SeverityNumber range
        level = _LEVELS[(number - 1) // 4]
        if text and _rank(text) != _rank(level):
            fields["severity_text"] = text
        return level
    if text:
        return text.strip().lower()[:64] or "info"
    return "info"
