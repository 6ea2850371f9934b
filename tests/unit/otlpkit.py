"""OTLP protobuf values built from Python values, as the SDKs build them.

Shared by the mapping, fast-path and fuzz tests of the OTLP decoder, so all
send it the same encoding of a value.
"""

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def any_value(v):
    """An AnyValue from a Python value; anything else (None) is the empty AnyValue."""
    out = AnyValue()
    if isinstance(v, bool):
        out.bool_value = v
    elif isinstance(v, int):
        out.int_value = v
    elif isinstance(v, float):
        out.double_value = v
    elif isinstance(v, str):
        out.string_value = v
    elif isinstance(v, bytes):
        out.bytes_value = v
    elif isinstance(v, list):
        out.array_value.values.extend(any_value(i) for i in v)
    elif isinstance(v, dict):
        out.kvlist_value.values.extend(KeyValue(key=k, value=any_value(i)) for k, i in v.items())
    return out


def attrs(mapping):
    """A mapping as OTLP attributes (a list of KeyValue)."""
    return [KeyValue(key=k, value=any_value(v)) for k, v in mapping.items()]
