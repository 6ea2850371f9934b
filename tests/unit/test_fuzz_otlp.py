"""The OTLP decoder's one rule, fuzzed: records (each encodable) or DecodeError, nothing else."""

import gzip

import orjson
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from otlpkit import any_value

from netlog.decode.otlp import JSON, MAX_RECORDS, PROTOBUF, decode_export
from netlog.errors import DecodeError
from netlog.record import Record
from netlog.sinks.encode import encode_line

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PEER = "127.0.0.1:1"
NOW = 1_800_000_000.0
LIMIT = 1 << 20

names = st.text(max_size=12)
scalars = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(names, inner, max_size=4)),
    max_leaves=20,
)


@st.composite
def requests(draw):
    """A valid ExportLogsServiceRequest with any field any value its type allows."""
    req = ExportLogsServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rl = req.resource_logs.add()
        for key, v in draw(st.dictionaries(names, values, max_size=3)).items():
            rl.resource.attributes.add(key=key, value=any_value(v))
        for _ in range(draw(st.integers(0, 2))):
            sl = rl.scope_logs.add()
            sl.scope.name = draw(names)
            for _ in range(draw(st.integers(0, 3))):
                lr = sl.log_records.add()
                lr.time_unix_nano = draw(st.integers(0, 2**64 - 1))
                lr.observed_time_unix_nano = draw(st.integers(0, 2**64 - 1))
                lr.severity_number = draw(st.integers(0, 30))
                lr.severity_text = draw(names)
                if draw(st.booleans()):
                    lr.body.CopyFrom(any_value(draw(values)))
                for key, v in draw(st.dictionaries(names, values, max_size=4)).items():
                    lr.attributes.add(key=key, value=any_value(v))
                lr.trace_id = draw(st.sampled_from([b"", bytes(16), b"\x01" * 16, b"\x02" * 3]))
                lr.span_id = draw(st.sampled_from([b"", bytes(8), b"\x01" * 8, b"\x02" * 9]))
                lr.event_name = draw(names)
    return req


def check(body, content_type, encoding=None):
    try:
        batch = decode_export(body, content_type, PEER, NOW, content_encoding=encoding, limit=LIMIT)
    except DecodeError as exc:
        reason = exc.reason
        assert reason
        return None
    assert batch.rejected >= 0
    assert len(batch.records) <= MAX_RECORDS
    for record in batch.records:
        assert isinstance(record, Record)
        assert record.format == "otlp"
        assert isinstance(record.message, str)
        encode_line(record)  # every record is writable as it is
    return batch


def mutate(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, byte in flips:
        if out:
            out[position % len(out)] = byte
    return bytes(out)


class TestFuzzOtlp:
    """Records or DecodeError, whatever the body."""

    @SETTINGS
    @given(st.binary(max_size=2048))
    def test_random_bytes_as_protobuf(self, data):
        check(data, PROTOBUF)

    @SETTINGS
    @given(st.binary(max_size=2048))
    def test_random_bytes_as_json(self, data):
        check(data, JSON)

    @SETTINGS
    @given(st.binary(max_size=512))
    def test_random_bytes_as_gzip(self, data):
        check(data, PROTOBUF, "gzip")

    @SETTINGS
    @given(requests())
    def test_valid_requests_decode_in_both_encodings(self, req):
        from_pb = check(req.SerializeToString(), PROTOBUF)
        assert from_pb is not None
        assert len(from_pb.records) + from_pb.rejected == sum(
            len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs
        )
        assert check(gzip.compress(req.SerializeToString()), PROTOBUF, "gzip") is not None
        doc = json_format.MessageToDict(req)
        check(orjson.dumps(doc), JSON)

    @SETTINGS
    @given(requests(), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8))
    def test_mutated_requests(self, req, flips):
        check(mutate(req.SerializeToString(), flips), PROTOBUF)
        doc = orjson.dumps(json_format.MessageToDict(req))
        check(mutate(doc, flips), JSON)
