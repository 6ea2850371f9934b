"""A real server compacts its rotated files into Parquet and answers the same as from the JSONL.

Records go in through the stdlib SocketHandler into a store rotated every
8 KiB; the first query opens the engine and starts the compaction thread;
once every rotated file has its Parquet copy, the API's pages, histogram
and facets are compared with a JSONL-only engine reading the same files in
this process (read-only, as ``netlog query`` reads a served log dir).
"""

import time

from test_api import all_pages, get, send_stdlib, socket_logger
from test_http import metric, metric_values

from netlog.query.engine import Engine
from netlog.sinks.encode import format_time
from netlog.store import segments
from netlog.store.compact import SUFFIX, TEMP_MARK, parquet_path
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
        values = metric_values(server)
        assert metric(values, "netlog_compacted_files_total") >= len(files)
        assert metric(values, "netlog_compaction_failures_total") == 0
        now = float(round(time.time()))  # whole seconds: the same float through RFC 3339
        span = {"since": now - 3600, "until": now + 60}
        asked = {name: format_time(value) for name, value in span.items()}
        plain = Engine(server.log_dir, use_parquet=False)
        try:
            for q in ("", "kaputt", "level>=error", "user=u1", "n>100 -kaputt"):
                records, _ = all_pages(server, {"q": q}, 7)
                assert records == engine_pages(plain, q, 7), q
                assert len(records) > 0
                status, histogram = get(server, "/api/histogram", {"q": q, "buckets": 7, **asked})
                assert status == 200
                assert histogram == plain.histogram(q, buckets=7, **span)
                status, facets = get(server, "/api/facets", {"q": q, "field": "user", **asked})
                assert status == 200
                assert facets == plain.facets(q, field="user", **span)
        finally:
            plain.close()


def send_large(server, count, start=0):
    """``count`` records of about 800 bytes through a real SocketHandler (every 50th "kaputt")."""
    with socket_logger(server, "large") as logger:
        for i in range(start, start + count):
            word = " kaputt" if i % 50 == 0 else ""
            extra = {"n": i, "user": f"u{i % 3}", "blob": f"{i:08d}" * 60}
            logger.info("request %d done%s", i, word, extra=extra)


def engine_pages(engine, q, limit):
    """Every page of ``q`` from an engine in the test process, newest to oldest: its records."""
    records, before = [], None
    while True:
        page = engine.records(q, limit=limit, before=before)
        records += page["records"]
        before = page["next"]
        if before is None:
            return records


def live_segments(server):
    return sorted(server.log_dir.glob(f"{FILE_NAME}{segments.MARK}*{SUFFIX}"))


class TestServedSegments:
    """The serve process compacts the live file in segments; a search reads them, same answers."""

    def test_segments_of_the_live_file_while_records_keep_arriving(self, netlog_factory):
        server = netlog_factory()  # 100 MiB files: every record stays in the live file
        live = server.log_dir / FILE_NAME
        send_large(server, 12500)  # about 9.5 MiB: one 8 MiB segment and a tail
        wait_for(lambda: live.stat().st_size > segments.SEGMENT_BYTES + (1 << 20), 60, what="9 MiB")
        status, _ = get(server, "/api/records", {"q": "kaputt", "limit": 5})
        assert status == 200  # the first query opens the engine and starts compaction
        wait_for(lambda: live_segments(server), 60, what="a segment of the live file")
        [segment] = live_segments(server)
        assert str(live.stat().st_ino) in segment.name
        assert not list(server.log_dir.glob(f"*{TEMP_MARK}*"))
        plain = Engine(server.log_dir, use_parquet=False)
        try:
            for round_ in range(2):
                if round_:  # more records after the segment: in the tail
                    send_large(server, 100, start=12500)
                    wait_for(
                        lambda: get(server, "/api/records", {"q": "n>=12599", "limit": 1})[1][
                            "records"
                        ],
                        30,
                        what="the new records searchable",
                    )
                for q in ("kaputt", "user=u1 kaputt", "n>12450", "n<5"):
                    records, _ = all_pages(server, {"q": q}, 400)
                    assert records == engine_pages(plain, q, 400), q
                    assert records
                status, facets = get(server, "/api/facets", {"q": "kaputt", "field": "user"})
                assert status == 200
                assert facets["values"] == plain.facets("kaputt", field="user")["values"]
            assert live_segments(server) == [segment]  # still under two segments' worth
        finally:
            plain.close()
