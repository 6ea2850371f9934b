"""A real server compacts its rotated files into Parquet and answers the same as from the JSONL.

Records go in through the stdlib SocketHandler into a store rotated every
8 KiB; the first query opens the engine and starts the compaction thread;
once every rotated file has its Parquet copy, the API's pages, histogram
and facets are compared with a JSONL-only engine reading the same files in
this process (read-only, as ``netlog query`` reads a served log dir).
"""

import time

from test_api import all_pages, get, send_stdlib

from netlog.query.engine import Engine
from netlog.sinks.encode import format_time
from netlog.store.compact import TEMP_MARK, parquet_path
from netlog.store.writer import FILE_NAME, rotated_paths
from netlogproc import wait_for


def rotated(server):
    return [p for p in rotated_paths(server.log_dir) if p.name != FILE_NAME]


class TestServedCompaction:
    """The serve process compacts off the hub and its answers do not change."""

    def test_compacted_after_the_first_query_with_the_same_answers(self, netlog_factory):
        server = netlog_factory("--max-bytes", "8KiB", "--backups", "100")
        send_stdlib(server, 150)
        wait_for(lambda: len(all_pages(server, {}, 1000)[0]) == 150, what="150 records")
        files = rotated(server)
        assert len(files) > 3
        wait_for(
            lambda: all(parquet_path(p).exists() for p in files), 30, what="every file compacted"
        )
        assert not list(server.log_dir.glob(f"*{TEMP_MARK}*"))
        now = float(round(time.time()))  # whole seconds: the same float through RFC 3339
        span = {"since": now - 3600, "until": now + 60}
        asked = {name: format_time(value) for name, value in span.items()}
        plain = Engine(server.log_dir, use_parquet=False)
        try:
            for q in ("", "kaputt", "level>=error", "user=u1", "n>100 -kaputt"):
                records, _ = all_pages(server, {"q": q}, 7)
                expected = []
                before = None
                while True:
                    page = plain.records(q, limit=7, before=before)
                    expected += page["records"]
                    before = page["next"]
                    if before is None:
                        break
                assert records == expected, q
                assert len(records) > 0
                status, histogram = get(server, "/api/histogram", {"q": q, "buckets": 7, **asked})
                assert status == 200
                assert histogram == plain.histogram(q, buckets=7, **span)
                status, facets = get(server, "/api/facets", {"q": q, "field": "user", **asked})
                assert status == 200
                assert facets == plain.facets(q, field="user", **span)
        finally:
            plain.close()
