"""The query API (the README's "Finding records") against a real server and its store.

Records go in through real clients (the stdlib SocketHandler, JSON over
HTTP); answers come back through ``http.client``.  What is checked: pages
newest first that reach the oldest record across rotated files without
skipping or repeating one while records arrive, the same ids as on disk, the
histogram and facets agreeing with the records, every bad input a 4xx with a
message, and the hub staying free (``/health``, ingest) while heavy queries
run and a client refuses to read.
"""

import contextlib
import http.client
import json
import logging
import logging.handlers
import socket
import threading
import time

import orjson
import pytest

from netlog.sinks.encode import format_time
from netlog.store.writer import rotated_paths
from netlogproc import HOST, wait_for
from netlogproc import http_get as get

TIMEOUT = 10.0


def post_json(server, *objects):
    conn = http.client.HTTPConnection(HOST, server.ports["http"], timeout=TIMEOUT)
    try:
        body = b"".join(json.dumps(obj).encode() + b"\n" for obj in objects)
        conn.request("POST", "/log", body, {"Content-Type": "application/x-ndjson"})
        assert conn.getresponse().status == 202
    finally:
        conn.close()


@contextlib.contextmanager
def socket_logger(server, name):
    """A stdlib logger of its own sending to ``server`` through a real SocketHandler."""
    handler = logging.handlers.SocketHandler(*server.address("log_tcp"))
    logger = logging.getLogger(f"{name}.{id(server)}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger
    finally:
        handler.close()


def send_stdlib(server, count, name="shop.api", start=0):
    """``count`` records through a real SocketHandler: every tenth an error with a traceback."""
    with socket_logger(server, name) as logger:
        for i in range(start, start + count):
            if i % 10 == 0:
                try:
                    raise TimeoutError("upstream kaputt")  # noqa: TRY301 - a real traceback
                except TimeoutError:
                    logger.exception("request %d failed", i, extra={"status": 500, "n": i})
            else:
                logger.info("request %d ok", i, extra={"status": 200, "user": f"u{i % 3}", "n": i})


def all_pages(server, params, limit):
    """Every page from the newest to the oldest; the records and how many pages."""
    records, pages, before = [], 0, None
    while True:
        query = {**params, "limit": limit, **({"before": before} if before else {})}
        status, page = get(server, "/api/records", query)
        assert status == 200, page
        records += page["records"]
        pages += 1
        before = page["next"]
        if before is None:
            return records, pages
        assert pages < 100


class TestRecords:
    """Pages of records newest first, to the oldest, as stored."""

    def test_pages_reach_the_oldest_across_rotated_files(self, netlog_factory):
        server = netlog_factory("--max-bytes", "8KiB", "--backups", "100")
        send_stdlib(server, 120)
        wait_for(lambda: len(all_pages(server, {}, 1000)[0]) == 120, what="120 records in the API")
        assert len(list(server.log_dir.glob("records.jsonl.*"))) > 3  # rotated many times

        status, first = get(server, "/api/records", {"limit": 25})
        assert status == 200
        assert isinstance(first["took_ms"], (int, float))
        # Records arriving between pages are newer than the cursor: no page
        # repeats or skips one because of them.
        send_stdlib(server, 30, start=1000)
        records = list(first["records"])
        before = first["next"]
        while before:
            status, page = get(server, "/api/records", {"limit": 25, "before": before})
            assert status == 200, page
            records += page["records"]
            before = page["next"]
        numbers = [r["fields"]["n"] for r in records]
        assert numbers == list(range(119, -1, -1))  # newest first, each once, to the oldest
        # Each exactly as stored, with its id.
        on_disk = {}
        for path in rotated_paths(server.log_dir):
            for line in path.read_bytes().splitlines():
                record = json.loads(line)
                on_disk[record["id"]] = record
        for record in records:
            assert record == on_disk[record["id"]]

    def test_query_time_range_and_one_record(self, netlog_factory):
        server = netlog_factory()
        send_stdlib(server, 40)
        post_json(server, {"event": "payment declined", "logger": "shop.pay", "level": "warning"})
        server.wait_records(41)
        status, page = get(server, "/api/records", {"q": "level>=error kaputt"})
        assert status == 200
        assert [r["fields"]["n"] for r in page["records"]] == [30, 20, 10, 0]
        assert all("TimeoutError: upstream kaputt" in r["exc"] for r in page["records"])
        status, page = get(server, "/api/records", {"q": '"payment DECLINED"', "since": "5m"})
        assert [r["message"] for r in page["records"]] == ["payment declined"]
        assert get(server, "/api/records", {"q": "user=u1 -n<20"})[1]["records"]
        future = format_time(time.time() + 3600)
        status, page = get(server, "/api/records", {"since": future})
        assert (status, page["records"], page["next"]) == (200, [], None)

        wanted = page_id = get(server, "/api/records", {"q": "payment"})[1]["records"][0]
        status, one = get(server, f"/api/records/{page_id['id']}")
        assert (status, one) == (200, wanted)
        status, missing = get(server, "/api/records/01ZZZZZZZZZZZZZZZZZZZZZZZZ")
        assert status == 404
        assert "no record" in missing["error"]

    def test_a_record_is_found_as_soon_as_it_was_taken(self, netlog_factory):
        """Not a flush interval later: the API writes what is queued before it reads."""
        server = netlog_factory("--flush-interval", "30")
        post_json(server, {"event": "just now", "level": "error"})
        assert get(server, "/api/records", {"q": "just"})[1]["records"][0]["message"] == "just now"

    def test_stored_lines_that_are_not_records_are_skipped_and_counted(self, netlog_factory):
        """JSON that is not an object, and text, in the store: skipped and counted, never a 500."""
        server = netlog_factory()
        post_json(server, {"event": "before"}, {"event": "before too"})
        server.wait_records(2)
        with (server.log_dir / "records.jsonl").open("ab") as store:  # no traffic meanwhile
            store.write(b'[1, 2, 3]\n"just a string"\n42\nnot json at all\n')
        post_json(server, {"event": "after"})
        wait_for(lambda: len(get(server, "/api/records", {})[1]["records"]) == 3, 10, what="3")
        for q in ("", "-before", "after"):
            status, page = get(server, "/api/records", {"q": q})
            assert status == 200, page
        assert [r["message"] for r in page["records"]] == ["after"]
        status, histogram = get(server, "/api/histogram", {})
        assert status == 200
        assert histogram["skipped"] == 4
        assert sum(sum(b["counts"].values()) for b in histogram["buckets"]) == 3


class TestHistogramAndFacets:
    """Counts over the range agree with the records."""

    def test_histogram_counts_per_level(self, netlog_factory):
        server = netlog_factory()
        send_stdlib(server, 50)
        server.wait_records(50)
        status, hist = get(server, "/api/histogram", {"since": "10m", "buckets": 20})
        assert status == 200
        assert len(hist["buckets"]) == 20
        totals = {}
        for bucket in hist["buckets"]:
            assert bucket["start"] < bucket["end"]
            for level, count in bucket["counts"].items():
                totals[level] = totals.get(level, 0) + count
        assert totals == {"info": 45, "error": 5}
        status, hist = get(server, "/api/histogram", {"q": "status=500"})  # the last hour
        assert sum(sum(b["counts"].values()) for b in hist["buckets"]) == 5
        assert len(hist["buckets"]) == 60

    def test_facets(self, netlog_factory):
        server = netlog_factory()
        send_stdlib(server, 30)
        server.wait_records(30)
        status, facets = get(server, "/api/facets", {"field": "user", "top": 2})
        assert status == 200
        assert facets["field"] == "user"
        # 27 with a user (9 each), 3 errors without one.
        assert [v["count"] for v in facets["values"]] == [9, 9]
        assert facets["other"] == 9
        status, facets = get(server, "/api/facets", {"field": "level", "q": "-kaputt"})
        assert facets["values"] == [{"value": "info", "count": 27}]


BAD = [
    ("/api/records", {"q": '"unclosed'}, "quote"),
    ("/api/records", {"q": "level>=loud"}, "level"),
    ("/api/records", {"q": "a..b=1"}, "field name"),
    ("/api/records", {"limit": 10**9}, "limit"),
    ("/api/records", {"limit": 0}, "limit"),
    ("/api/records", {"limit": "ten"}, "limit"),
    ("/api/records", {"before": "bm90IG91cnM"}, "cursor"),
    ("/api/records", {"before": "!" * 150}, "cursor"),
    ("/api/records", {"since": "1h", "until": "2h"}, "before until"),
    ("/api/records", {"since": "yesterday"}, "since"),
    ("/api/records", {"until": "9" * 400}, "until"),
    ("/api/records", {"limt": 5}, "unknown parameter"),
    ("/api/histogram", {"buckets": 0}, "buckets"),
    ("/api/histogram", {"buckets": 10**6}, "buckets"),
    ("/api/facets", {"field": "a b"}, "field name"),
    ("/api/facets", {"field": "user", "top": 0}, "top"),
    ("/api/records", {"q": "x" * 5000}, "long"),
]


class TestBadInput:
    """Each a 400 with a message; the server goes on answering."""

    def test_each_is_a_400_with_a_message(self, netlog):
        send_stdlib(netlog, 3)
        netlog.wait_records(3)
        for path, params, word in BAD:
            status, answer = get(netlog, path, params)
            assert status == 400, (path, params, answer)
            assert word in answer["error"].lower(), (params, answer)
        status, answer = get(netlog, "/api/records?limit=1&limit=2")
        assert (status, answer["error"]) == (400, "limit given more than once")
        status, answer = get(netlog, "/api/nothing")
        assert status == 404
        assert get(netlog, "/health") == (200, "ok\n")
        assert len(get(netlog, "/api/records")[1]["records"]) == 3
        metrics = get(netlog, "/metrics")[1]
        assert 'status="500"' not in metrics


def write_big_store(log_dir, count):
    """``count`` plausible records of the last hour in ``records.jsonl``, before a server starts."""
    log_dir.mkdir(parents=True)
    base = time.time() - 3000
    with (log_dir / "records.jsonl").open("wb") as out:
        batch = []
        for i in range(count):
            when = format_time(base + i * 0.005)
            batch.append(
                orjson.dumps(
                    {
                        "ts": when,
                        "received": when,
                        "level": "error" if i % 7 == 0 else "info",
                        "logger": f"app.m{i % 13}",
                        "message": f"request {i} served in {i % 997} ms",
                        "fields": {"user": f"u{i % 101}", "ms": i % 997},
                        "peer": "127.0.0.1:1",
                        "format": "json",
                    }
                )
                + b"\n"
            )
            if len(batch) == 10_000:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch))


class TestTheHubStaysFree:
    """Queries run off the event loop: health checks and ingest go on meanwhile."""

    def test_health_and_ingest_during_heavy_queries(self, netlog_factory, tmp_path):
        count = 300_000  # about 78 MB: one such query takes seconds here
        write_big_store(tmp_path / "netlog0" / "data", count)
        server = netlog_factory()
        done = []
        answers = []

        def heavy():
            # A negated word and a phrase: every line is read and tested.
            answers.append(get(server, "/api/histogram", {"q": '-u1 "served in"'}, timeout=120))
            done.append(time.monotonic())

        queries = [threading.Thread(target=heavy) for _ in range(4)]
        for thread in queries:
            thread.start()
        healthy_while_busy = 0
        sent = 0
        try:
            with socket.create_connection(server.address("log_tcp"), timeout=TIMEOUT) as conn:
                while len(done) < len(queries) and sent < 400:
                    # Within a second, or the socket timeout fails the test.
                    assert get(server, "/health", timeout=1.0) == (200, "ok\n")
                    conn.sendall(b'{"event": "during", "n": %d}\n' % sent)
                    sent += 1
                    if not done:
                        healthy_while_busy += 1
                    time.sleep(0.02)
        finally:
            for thread in queries:
                thread.join(timeout=120)
        assert healthy_while_busy >= 5, "the queries ended before the checks began"
        assert [status for status, _ in answers] == [200] * 4
        total = sum(sum(b["counts"].values()) for b in answers[0][1]["buckets"])
        assert 0 < total < count
        on_disk = server.wait_records(count + sent)
        assert [r["fields"]["n"] for r in on_disk[count:]] == list(range(sent))

    def test_a_client_that_does_not_read_holds_nothing_up(self, netlog_factory):
        server = netlog_factory("--idle-timeout", "60")
        big = "x" * 8000
        for start in range(0, 1000, 100):
            post_json(server, *({"event": f"{i} {big}"} for i in range(start, start + 100)))
        server.wait_records(1000)
        slow = socket.create_connection(server.address("http"), timeout=TIMEOUT)
        try:
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.sendall(b"GET /api/records?limit=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            first = slow.recv(100)
            assert first.startswith(b"HTTP/1.1 200")  # the answer began: ~8 MB now wait on us
            assert get(server, "/health", timeout=1.0) == (200, "ok\n")
            status, page = get(server, "/api/records", {"limit": 2})
            assert status == 200
            assert [r["message"].split()[0] for r in page["records"]] == ["999", "998"]
            post_json(server, {"event": "still taking records"})
            server.wait_records(1001)
        finally:
            slow.close()


@pytest.mark.parametrize("path", ["/api/records", "/api/histogram", "/api/facets"])
def test_without_any_record_yet(netlog, path):
    """An empty store answers empty, not an error."""
    status, answer = get(netlog, path)
    assert status == 200
    assert answer.get("records", []) == []
