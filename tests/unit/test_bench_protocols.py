"""``bench/protocols.py`` sends the same records in every wire form.

The bench compares what a record costs by protocol, so each rendered form
must carry the same records: decoded by netlog's own decoders (in-process,
as ``--decode-only`` does), every form gives the same messages, levels,
loggers, times, tracebacks and the application's four fields.
"""

from __future__ import annotations

import collections
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from netlog.decode.datagram import decode_datagram
from netlog.decode.forward import ForwardDecoder
from netlog.decode.gelf import GelfDatagrams, GelfStreamDecoder
from netlog.decode.otlp import PROTOBUF, decode_export
from netlog.decode.stream import StreamDecoder
from netlog.record import Record

BENCH = Path(__file__).resolve().parents[2] / "bench"
PEER = "127.0.0.1:5000"
NOW = 1_800_000_000.0
T0 = 1_700_000_000.0
COUNT = 40  # four tracebacks, every level and logger, two OTLP/PackedForward batches at 32


@pytest.fixture(scope="module")
def protocols() -> ModuleType:
    """bench/protocols.py, loaded as a script's module; sys.path and sys.modules restored after."""
    saved_path = list(sys.path)
    spec = importlib.util.spec_from_file_location("bench_protocols", BENCH / "protocols.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    try:
        spec.loader.exec_module(module)  # puts bench/ first on sys.path, imports harness
    finally:
        sys.path[:] = saved_path
        for name in (spec.name, "harness", "ingest"):  # bench's own: not for other tests to find
            sys.modules.pop(name, None)
    module.BATCH = 32  # type: ignore[attr-defined]
    return module


def decode(protocol: str, frames: list[bytes]) -> list[Record]:
    """The records netlog's decoder for ``protocol`` makes of ``frames``."""
    if protocol in {"json", "gelf_tcp", "fluent_message", "fluent_packed"}:
        factory = {
            "json": StreamDecoder,
            "gelf_tcp": GelfStreamDecoder,
            "fluent_message": ForwardDecoder,
            "fluent_packed": ForwardDecoder,
        }[protocol]
        decoder = factory(PEER, clock=lambda: NOW)
        records = decoder.feed(b"".join(frames)) + decoder.feed(b"")
        assert not decoder.dropped
        return records
    if protocol == "json_udp":
        return [decode_datagram(frame, PEER, NOW) for frame in frames]
    if protocol in {"gelf_udp", "gelf_udp_zlib"}:
        gelf = GelfDatagrams(notes=collections.Counter(), dropped=collections.Counter())
        return [r for r in (gelf(frame, PEER, NOW) for frame in frames) if r is not None]
    batches = [decode_export(frame, PROTOBUF, PEER, NOW, limit=1 << 20) for frame in frames]
    assert all(batch.rejected == 0 for batch in batches)
    return [record for batch in batches for record in batch.records]


def test_every_wire_form_carries_the_same_records(protocols: ModuleType) -> None:
    records = protocols.make_records(COUNT, T0)
    expected = [
        (r["message"], r["level"], r["logger"], round(r["ts"], 5), r["exc"], r["fields"])
        for r in records
    ]
    assert sum(r["exc"] is not None for r in records) == COUNT // 10
    for protocol in protocols.PROTOCOLS:
        decoded = decode(protocol, protocols.render(protocol, records))
        got = [
            (
                r.message,
                r.level,
                r.logger,
                round(r.ts, 5),
                r.exc,
                {key: r.fields.get(key) for key in records[0]["fields"]},
            )
            for r in sorted(decoded, key=lambda r: r.ts)
        ]
        assert got == expected, protocol
        assert {r.format for r in decoded} == {
            "json": {"json"},
            "json_udp": {"json"},
            "otlp": {"otlp"},
        }.get(protocol, {"gelf"} if protocol.startswith("gelf") else {"fluent"}), protocol
