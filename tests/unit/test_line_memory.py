"""Queued lines cost their size: orjson's ~4 KiB output buffers must not be kept."""

import logging
import tracemalloc

from netlog.client import SinkHandler
from netlog.record import Record
from netlog.sinks.encode import encode_line


def bytes_per_item(make, count=2000):
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make(i) for i in range(count)]
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(kept) == count
    return used / count, len(kept[0])


class TestCompactLines:
    """A line held in a queue takes about its own length in memory."""

    def test_encode_line(self):
        def make(i):
            record = Record(1.0, 2.0, "info", "app", f"m{i}", {"n": i}, None, "1.2.3.4:5", "json")
            return encode_line(record)

        per_line, length = bytes_per_item(make)
        assert per_line < length + 200, f"{per_line:.0f} bytes held for a {length}-byte line"

    def test_encode_line_slow_path(self):
        def make(i):
            record = Record(1.0, 2.0, "info", "app", f"m{i}\ud800", {}, None, "p", "json")
            return encode_line(record)

        per_line, length = bytes_per_item(make)
        assert per_line < length + 200

    def test_sink_handler_json_wire(self):
        handler = SinkHandler("127.0.0.1", 9, wire="json", warn_undelivered=False)
        try:

            def make(i):
                return handler._encode(logging.makeLogRecord({"msg": f"m{i}", "n": i}))

            per_line, length = bytes_per_item(make)
        finally:
            handler.close(timeout=0)
        assert per_line < length + 200
