"""OTLP's fast paths give the fields the general rule gives.

``netlog.decode.otlp`` puts a scope's inherited attributes (resource, then
scope) once and copies the result for each record (``_Template``), reads
a non-empty string attribute or body without ``_value``, and sets a name
without dots without ``_put``; all for speed only (``bench/protocols.py``).
Each record's fields must still be what putting every inherited attribute
and then the record's own, one by one, gives (``reference_put`` below is
that rule as the module states it), and no record may see another's.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from otlpkit import attrs

from netlog.decode.otlp import MAX_NAME_PARTS, PROTOBUF, decode_export

PEER = "127.0.0.1:4000"
NOW = 1_800_000_000.0


def reference_put(fields: dict[str, Any], key: str, value: Any) -> None:
    """Dotted names nest; a name that cannot nest is kept as it is (the module's rule)."""
    parts = key.split(".")
    if 1 < len(parts) <= MAX_NAME_PARTS and all(parts):
        node = fields
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if type(child) is not dict:
                break
            node = child
        else:
            if type(node.get(parts[-1])) is not dict or type(value) is dict:
                node[parts[-1]] = value
                return
    if type(fields.get(key)) is not dict or type(value) is dict:
        fields[key] = value


def reference(*groups: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for group in groups:
        for key, value in group.items():
            reference_put(fields, key, value)
    return fields


RESOURCE = {"service.name": "checkout", "host.name": "web-1", "deployment": "prod", "k8s.pod": ""}
SCOPE = {"lib.version": "1.2", "service.namespace": "shop", "deployment.region": "eu"}
OWN = [
    {"user": "ada", "http.route": "/pay", "service.version": "2.0"},  # nests into inherited
    {"user": "bob", "empty": "", "count": 3},  # the same top-level names, none nested
    {"service": "flat wins?", "deployment.region": "us", "host.name": {"short": "w1"}},
    {"a.b.c.d.e.f.g.h.i": "too deep to nest", "x..y": "empty part", "lib": 7},
    {"exception.type": "KeyError", "exception.stacktrace": "Traceback...", "exception": "x"},
    {},
]


def test_every_record_gets_the_inherited_fields_and_its_own_as_the_rule_says() -> None:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(attrs(RESOURCE))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "app"
    scope_logs.scope.attributes.extend(attrs(SCOPE))
    for own in OWN:
        log_record = scope_logs.log_records.add()
        log_record.attributes.extend(attrs(own))
        log_record.body.string_value = ""

    batch = decode_export(request.SerializeToString(), PROTOBUF, PEER, NOW, limit=1 << 20)

    assert len(batch.records) == len(OWN)
    for record, own in zip(batch.records, OWN, strict=True):
        expected = reference(RESOURCE, SCOPE, own)
        if "exception.stacktrace" in own:
            assert record.exc == own["exception.stacktrace"]
            del expected["exception"]["stacktrace"]  # it is the exc; the type stays a field
        else:
            assert record.exc is None
        assert record.fields == expected
        assert record.message == ""


def test_records_do_not_share_the_dicts_they_nest_into() -> None:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(attrs({"service.name": "checkout"}))
    scope_logs = resource_logs.scope_logs.add()
    for version in ("1", "2"):
        log_record = scope_logs.log_records.add()
        log_record.attributes.extend(attrs({"service.version": version}))

    first, second = decode_export(
        request.SerializeToString(), PROTOBUF, PEER, NOW, limit=1 << 20
    ).records

    assert first.fields == {"service": {"name": "checkout", "version": "1"}}
    assert second.fields == {"service": {"name": "checkout", "version": "2"}}
    assert first.fields["service"] is not second.fields["service"]


def test_records_without_dotted_names_share_inherited_dicts_that_no_record_changes() -> None:
    """A record with no dotted name of its own copies only the top level (``_Template.fields``).

    The nesting dicts it then shares must stay as inherited whatever the
    records after it do: here one puts ``exception.stacktrace`` into the
    inherited ``exception`` group, which ``_exception`` then empties.
    """
    inherited = {"service.name": "checkout", "exception.stacktrace": "resource's text"}
    own: list[dict[str, Any]] = [{}, {"user": "ada"}, {"exception.stacktrace": "own"}, {"n": 1}]
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(attrs(inherited))
    scope_logs = resource_logs.scope_logs.add()
    for attributes in own:
        scope_logs.log_records.add().attributes.extend(attrs(attributes))

    records = decode_export(request.SerializeToString(), PROTOBUF, PEER, NOW, limit=1 << 20).records

    assert [r.exc for r in records] == [None, None, "own", None]
    assert records[2].fields == {"service": {"name": "checkout"}}  # its emptied group removed
    for record, attributes in zip(records, own, strict=True):
        if "exception.stacktrace" not in attributes:
            assert record.fields == reference(inherited, attributes)
    assert records[0].fields["service"] is records[1].fields["service"]  # shared, unchanged
    assert records[2].fields["service"] is not records[0].fields["service"]
