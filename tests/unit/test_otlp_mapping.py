"""OTLP logs to records: the mapping, both encodings, compression and the bounds."""

import base64
import collections
import gzip
import zlib

import orjson
import pytest
from google.protobuf import json_format
from google.protobuf.internal.encoder import _VarintBytes
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from otlpkit import any_value, attrs

from netlog.decode.otlp import (
    JSON,
    MAX_ATTRIBUTES,
    MAX_DEPTH,
    MAX_GROUPS,
    MAX_RECORDS,
    MAX_VALUES,
    PROTOBUF,
    decode_export,
    encode_response,
)
from netlog.errors import DecodeError

PEER = "127.0.0.1:4000"
NOW = 1_800_000_000.0
LIMIT = 4 << 20
TRACE = bytes(range(1, 17))
SPAN = bytes(range(1, 9))


def request(*records, resource=None, scope="app.web", scope_attrs=None):
    """An ExportLogsServiceRequest of ``records`` (dicts of LogRecord fields)."""
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend(attrs(resource or {"service.name": "checkout"}))
    sl = rl.scope_logs.add()
    sl.scope.name = scope
    sl.scope.attributes.extend(attrs(scope_attrs or {}))
    for fields in records:
        lr = sl.log_records.add()
        for key, item in fields.items():
            if key == "body":
                lr.body.CopyFrom(any_value(item))
            elif key == "attributes":
                lr.attributes.extend(attrs(item))
            else:
                setattr(lr, key, item)
    return req


def decode(req, **kwargs):
    return decode_export(req.SerializeToString(), PROTOBUF, PEER, NOW, limit=LIMIT, **kwargs)


def one(**fields):
    batch = decode(request(fields))
    assert batch.rejected == 0
    (record,) = batch.records
    return record


class TestBody:
    """Every AnyValue kind a body may be becomes the message."""

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ("hello ünïcödé", "hello ünïcödé"),
            (42, "42"),
            (-(2**63), str(-(2**63))),
            (2.5, "2.5"),
            (True, "true"),
            (False, "false"),
            (b"\x00\xff", base64.b64encode(b"\x00\xff").decode()),
            ([1, "a", [True]], '[1,"a",[true]]'),
        ],
    )
    def test_scalar_and_array_bodies(self, body, message):
        record = one(body=body)
        assert record.message == message
        assert record.format == "otlp"
        assert "body" not in record.fields

    def test_kvlist_body_is_json_text_and_findable_fields(self):
        record = one(body={"user": "ada", "cart": {"items": 3}})
        assert orjson.loads(record.message) == {"user": "ada", "cart": {"items": 3}}
        assert record.fields["body"] == {"user": "ada", "cart": {"items": 3}}

    def test_no_body_is_an_empty_message(self):
        assert one(severity_number=9).message == ""

    def test_long_body_is_cut_to_max_line(self):
        notes = collections.Counter()
        batch = decode(request({"body": "x" * 5000}), max_line=1000, notes=notes)
        assert len(batch.records[0].message) == 1000
        assert "truncated" in batch.records[0].message
        assert notes["message_truncated"] == 1


class TestSeverity:
    """severity_number by OTLP's ranges; severity_text when there is no number."""

    @pytest.mark.parametrize(
        ("number", "level"),
        [
            (1, "trace"),
            (4, "trace"),
            (5, "debug"),
            (8, "debug"),
            (9, "info"),
            (12, "info"),
            (13, "warning"),
            (16, "warning"),
            (17, "error"),
            (20, "error"),
            (21, "critical"),
            (24, "critical"),
        ],
    )
    def test_number_ranges(self, number, level):
        assert one(severity_number=number).level == level

    def test_matching_text_is_not_repeated(self):
        record = one(severity_number=13, severity_text="WARN")
        assert record.level == "warning"
        assert "severity_text" not in record.fields

    def test_text_of_another_rank_is_kept(self):
        record = one(severity_number=10, severity_text="NOTICE")
        assert record.level == "info"
        assert record.fields["severity_text"] == "NOTICE"

    def test_text_alone(self):
        assert one(severity_text="Fatal").level == "fatal"

    def test_neither_is_info(self):
        assert one(body="x").level == "info"


class TestTimes:
    """time_unix_nano, else observed_time_unix_nano, else the receive time."""

    def test_time(self):
        record = one(time_unix_nano=1_700_000_000_123_456_789, observed_time_unix_nano=5)
        assert record.ts == pytest.approx(1_700_000_000.123_456_789)
        assert record.received == NOW

    def test_observed_when_time_is_zero(self):
        record = one(observed_time_unix_nano=1_700_000_001_000_000_000)
        assert record.ts == pytest.approx(1_700_000_001.0)

    def test_neither_is_received(self):
        assert one(body="x").ts == NOW


class TestIds:
    """trace_id and span_id as lower-case hex fields; a bad one rejects its record alone."""

    def test_hex_ids(self):
        record = one(trace_id=TRACE, span_id=SPAN, flags=1)
        assert record.fields["trace_id"] == TRACE.hex()
        assert record.fields["span_id"] == SPAN.hex()

    def test_zero_ids_are_absent(self):
        record = one(trace_id=bytes(16), span_id=bytes(8))
        assert "trace_id" not in record.fields
        assert "span_id" not in record.fields

    def test_bad_length_rejects_that_record_only(self):
        batch = decode(request({"body": "good"}, {"body": "bad", "trace_id": b"\x01" * 5}))
        assert [r.message for r in batch.records] == ["good"]
        assert batch.rejected == 1
        assert "trace_id" in batch.error


class TestResourceScopeAttributes:
    """Attributes nest by their dots; the record's win over the scope's, then the resource's."""

    def test_merged_and_nested(self):
        req = request(
            {"attributes": {"http.route": "/pay", "user": "ada", "deployment.env": "dev"}},
            resource={"service.name": "checkout", "deployment.env": "prod", "host.name": "h1"},
            scope_attrs={"lib": "bridge"},
        )
        (record,) = decode(req).records
        assert record.fields["service"] == {"name": "checkout"}
        assert record.fields["http"] == {"route": "/pay"}
        assert record.fields["deployment"] == {"env": "dev"}
        assert record.fields["host"] == {"name": "h1"}
        assert record.fields["user"] == "ada"
        assert record.fields["lib"] == "bridge"

    def test_logger_is_the_scope_name(self):
        assert one(body="x").logger == "app.web"

    def test_logger_is_service_name_without_a_scope_name(self):
        (record,) = decode(request({"body": "x"}, scope="")).records
        assert record.logger == "checkout"

    def test_names_that_cannot_nest_stay_flat(self):
        record = one(attributes={"a": "leaf", "a.b": 1, "x..y": 2, ".z": 3, "p.q.r.s.t.u.v.w.x": 4})
        assert record.fields["a"] == "leaf"
        assert record.fields["a.b"] == 1
        assert record.fields["x..y"] == 2
        assert record.fields[".z"] == 3
        assert record.fields["p.q.r.s.t.u.v.w.x"] == 4

    def test_event_name(self):
        assert one(event_name="checkout.paid").fields["event_name"] == "checkout.paid"

    def test_every_attribute_kind(self):
        record = one(
            attributes={
                "s": "t",
                "i": 7,
                "d": 0.5,
                "b": True,
                "y": b"\x01",
                "l": [1],
                "m": {"k": "v"},
            }
        )
        assert record.fields["s"] == "t"
        assert record.fields["i"] == 7
        assert record.fields["d"] == 0.5
        assert record.fields["b"] is True
        assert record.fields["y"] == "AQ=="
        assert record.fields["l"] == [1]
        assert record.fields["m"] == {"k": "v"}


class TestExceptions:
    """OTel's exception attributes become exc."""

    def test_stacktrace_is_exc_type_and_message_stay_findable(self):
        stack = "Traceback (most recent call last):\n  File \"a.py\", line 1\nKeyError: 'x'\n"
        record = one(
            attributes={
                "exception.type": "KeyError",
                "exception.message": "'x'",
                "exception.stacktrace": stack,
            }
        )
        assert record.exc == stack
        assert record.fields["exception"] == {"type": "KeyError", "message": "'x'"}

    def test_type_and_message_without_a_stack(self):
        record = one(attributes={"exception.type": "ValueError", "exception.message": "bad"})
        assert record.exc == "ValueError: bad"

    def test_no_exception(self):
        assert one(body="x").exc is None


class TestBounds:
    """Attributes, nesting, values and records a request may carry are capped; cuts counted."""

    def test_attributes_capped_and_counted(self):
        notes = collections.Counter()
        many = {f"k{i}": i for i in range(MAX_ATTRIBUTES + 100)}
        (record,) = decode(request({"attributes": many}), notes=notes).records
        assert "k0" in record.fields
        assert f"k{MAX_ATTRIBUTES}" not in record.fields
        assert record.fields["otlp_cut"] == 100
        assert notes["otlp_cut"] == 100

    def test_resource_attributes_capped(self):
        many = {f"r{i}": i for i in range(MAX_ATTRIBUTES + 7)}
        (record,) = decode(request({"body": "x"}, resource=many)).records
        assert record.fields["otlp_cut"] == 7

    def test_depth_capped(self):
        deep = "leaf"
        for _ in range(MAX_DEPTH + 5):
            deep = [deep]
        record = one(body=deep)
        assert record.fields["otlp_cut"] >= 1
        assert "leaf" not in record.message

    def test_values_budget(self):
        wide = [list(range(MAX_ATTRIBUTES)) for _ in range(MAX_ATTRIBUTES)]
        record = one(body=wide)
        kept = orjson.loads(record.message)
        assert 1 + len(kept) + sum(len(inner) for inner in kept) == MAX_VALUES
        # Cut: the rest of the list where the budget ran out, and each list after it as one.
        partial = next(inner for inner in kept if len(inner) < MAX_ATTRIBUTES)
        untouched = MAX_ATTRIBUTES - len(kept)
        assert record.fields["otlp_cut"] == MAX_ATTRIBUTES - len(partial) + untouched

    @pytest.mark.parametrize(
        "body",
        [
            b"\x0a\x00" * (MAX_GROUPS + 1),  # empty ResourceLogs
            # one ResourceLogs of empty ScopeLogs
            b"\x0a" + _VarintBytes(2 * (MAX_GROUPS + 1)) + b"\x12\x00" * (MAX_GROUPS + 1),
        ],
        ids=["resources", "scopes"],
    )
    def test_too_many_groups_refused_whole(self, body):
        assert len(ExportLogsServiceRequest.FromString(body).resource_logs) >= 1
        with pytest.raises(DecodeError) as caught:
            decode_export(body, PROTOBUF, PEER, NOW, limit=LIMIT)
        assert caught.value.reason == "too_many_groups"

    def test_too_many_groups_in_json(self):
        for doc in (
            {"resourceLogs": [{}] * (MAX_GROUPS + 1)},
            {"resourceLogs": [{"scopeLogs": [{}] * (MAX_GROUPS + 1)}]},
        ):
            with pytest.raises(DecodeError) as caught:
                decode_export(orjson.dumps(doc), JSON, PEER, NOW, limit=LIMIT)
            assert caught.value.reason == "too_many_groups"

    def test_groups_up_to_the_cap_are_taken(self):
        req = ExportLogsServiceRequest()
        for i in range(MAX_GROUPS):
            req.resource_logs.add().scope_logs.add().log_records.add().body.string_value = str(i)
        assert len(decode(req).records) == MAX_GROUPS

    def test_records_past_the_cap_are_rejected(self):
        req = request(*({"body": str(i)} for i in range(MAX_RECORDS + 3)))
        batch = decode(req)
        assert len(batch.records) == MAX_RECORDS
        assert batch.rejected == 3
        assert "smaller batches" in batch.error


def as_otlp_json(req):
    """OTLP/JSON as the specification writes it: camelCase, hex ids, integer enums."""
    doc = json_format.MessageToDict(req, use_integers_for_enums=True)
    for rl in doc.get("resourceLogs", []):
        for sl in rl.get("scopeLogs", []):
            for lr in sl.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in lr:
                        lr[key] = base64.b64decode(lr[key]).hex()
    return orjson.dumps(doc)


def json_of(log_records):
    """An OTLP/JSON request of one resource and one scope holding ``log_records``."""
    return orjson.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": log_records}]}]})


class TestJson:
    """OTLP/JSON: hex ids, camelCase or proto names, 64-bit integers as strings, unknown keys."""

    def test_same_records_as_protobuf(self):
        req = request(
            {
                "body": {"k": [1, 2]},
                "severity_number": 17,
                "time_unix_nano": 1_700_000_000_000_000_001,
                "trace_id": TRACE,
                "span_id": SPAN,
                "attributes": {"n": 2**62, "exception.type": "E"},
            }
        )
        from_json = decode_export(as_otlp_json(req), JSON, PEER, NOW, limit=LIMIT)
        from_pb = decode(req)
        assert from_json.records == from_pb.records
        assert from_json.records[0].fields["trace_id"] == TRACE.hex()
        assert from_json.records[0].fields["n"] == 2**62

    def test_spec_example_shape(self):
        body = orjson.dumps(
            {
                "resourceLogs": [
                    {
                        "resource": {
                            "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                        },
                        "scopeLogs": [
                            {
                                "scope": {"name": "my.library", "version": "1.0.0"},
                                "logRecords": [
                                    {
                                        "timeUnixNano": "1544712660300000000",
                                        "observedTimeUnixNano": "1544712660300000000",
                                        "severityNumber": 10,
                                        "severityText": "Information",
                                        "traceId": "5B8EFFF798038103D269B633813FC60C",
                                        "spanId": "EEE19B7EC3C1B174",
                                        "body": {"stringValue": "Example log record"},
                                        "attributes": [
                                            {"key": "int.attribute", "value": {"intValue": "10"}},
                                            {"key": "unknown", "somethingNew": 1},
                                        ],
                                        "futureField": True,
                                    }
                                ],
                            }
                        ],
                    }
                ]
            }
        )
        (record,) = decode_export(
            body, "application/json; charset=utf-8", PEER, NOW, limit=LIMIT
        ).records
        assert record.message == "Example log record"
        assert record.level == "info"
        assert record.logger == "my.library"
        assert record.ts == pytest.approx(1544712660.3)
        assert record.fields["trace_id"] == "5b8efff798038103d269b633813fc60c"
        assert record.fields["span_id"] == "eee19b7ec3c1b174"
        assert record.fields["int"] == {"attribute": 10}
        assert record.fields["service"] == {"name": "svc"}

    def test_proto_field_names_accepted(self):
        body = orjson.dumps(
            {
                "resource_logs": [
                    {
                        "scope_logs": [
                            {
                                "log_records": [
                                    {"body": {"string_value": "x"}, "trace_id": TRACE.hex()}
                                ]
                            }
                        ]
                    }
                ]
            }
        )
        (record,) = decode_export(body, JSON, PEER, NOW, limit=LIMIT).records
        assert record.message == "x"
        assert record.fields["trace_id"] == TRACE.hex()

    def test_bad_hex_rejects_that_record(self):
        body = json_of([{"body": {"stringValue": "ok"}}, {"traceId": "zz"}])
        batch = decode_export(body, JSON, PEER, NOW, limit=LIMIT)
        assert [r.message for r in batch.records] == ["ok"]
        assert batch.rejected == 1

    @pytest.mark.parametrize(
        "body",
        [
            b"{",
            b"[]",
            b'"x"',
            b'{"resourceLogs": 5}',
            json_of([{"timeUnixNano": "abc"}]),
        ],
    )
    def test_not_a_request(self, body):
        with pytest.raises(DecodeError) as caught:
            decode_export(body, JSON, PEER, NOW, limit=LIMIT)
        assert caught.value.reason == "bad_json"

    def test_json_lists_cut_before_parsing(self):
        many = [{"key": f"k{i}", "value": {"intValue": i}} for i in range(MAX_ATTRIBUTES * 4)]
        body = orjson.dumps(
            {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"attributes": many}]}]}]}
        )
        (record,) = decode_export(body, JSON, PEER, NOW, limit=LIMIT).records
        assert len([k for k in record.fields if k.startswith("k")]) == MAX_ATTRIBUTES


class TestEnvelope:
    """Content types, compression and the response OTLP asks for."""

    def test_gzip_and_deflate(self):
        raw = request({"body": "zipped"}).SerializeToString()
        for coding, packed in (("gzip", gzip.compress(raw)), ("deflate", zlib.compress(raw))):
            batch = decode_export(packed, PROTOBUF, PEER, NOW, content_encoding=coding, limit=LIMIT)
            assert batch.records[0].message == "zipped"

    def test_gzip_bomb_stops_at_the_limit(self):
        bomb = gzip.compress(b"\x00" * (50 << 20))
        with pytest.raises(DecodeError) as caught:
            decode_export(bomb, PROTOBUF, PEER, NOW, content_encoding="gzip", limit=1 << 20)
        assert caught.value.reason == "decompressed_too_large"

    @pytest.mark.parametrize(
        ("content_type", "encoding", "reason"),
        [
            ("text/plain", None, "unsupported_media_type"),
            (None, None, "unsupported_media_type"),
            (PROTOBUF, "br", "unsupported_encoding"),
        ],
    )
    def test_refused_envelopes(self, content_type, encoding, reason):
        with pytest.raises(DecodeError) as caught:
            decode_export(b"x", content_type, PEER, NOW, content_encoding=encoding, limit=LIMIT)
        assert caught.value.reason == reason

    def test_bad_protobuf(self):
        with pytest.raises(DecodeError) as caught:
            decode_export(b"\xff\xff\xff", PROTOBUF, PEER, NOW, limit=LIMIT)
        assert caught.value.reason == "bad_protobuf"

    def test_empty_body_is_an_empty_request(self):
        batch = decode_export(b"", PROTOBUF, PEER, NOW, limit=LIMIT)
        assert batch.records == []
        assert batch.rejected == 0

    def test_responses(self):
        full = ExportLogsServiceResponse.FromString(encode_response(PROTOBUF, 0, ""))
        assert not full.HasField("partial_success")
        partial = ExportLogsServiceResponse.FromString(encode_response(PROTOBUF, 2, "why"))
        assert partial.partial_success.rejected_log_records == 2
        assert partial.partial_success.error_message == "why"
        assert orjson.loads(encode_response(JSON, 0, "")) == {}
        assert orjson.loads(encode_response(JSON, 2, "why")) == {
            "partialSuccess": {"rejectedLogRecords": "2", "errorMessage": "why"}
        }
