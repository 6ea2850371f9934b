"""The history search engine over a real store on disk (DuckDB, no server)."""

import time

import orjson
import pytest

from netlog.query.engine import MAX_LIMIT, Engine, QueryError, _FileSpan
from netlog.record import new_id
from netlog.sinks.encode import format_time
from netlog.store.writer import backup_name

T0 = 1_700_000_000.0


def line(
    i,
    *,
    level="info",
    logger="app",
    message=None,
    fields=None,
    exc=None,
    received=None,
    with_id=True,
):
    when = T0 + i if received is None else received
    obj = {
        "ts": format_time(when),
        "received": format_time(when),
        "level": level,
        "logger": logger,
        "message": f"message {i}" if message is None else message,
        "fields": {"n": i, "user": f"u{i % 3}"} if fields is None else fields,
        "peer": "127.0.0.1:1",
        "format": "json",
    }
    if exc is not None:
        obj["exc"] = exc
    if with_id:
        obj["id"] = new_id(when)
    return orjson.dumps(obj) + b"\n"


@pytest.fixture
def store(tmp_path):
    """Three files: two rotated (0-9, 10-19), the current one (20-29) ending in a torn line."""
    files = [tmp_path / backup_name(1), tmp_path / backup_name(2), tmp_path / "records.jsonl"]
    for n, path in enumerate(files):
        data = b"".join(line(i) for i in range(n * 10, n * 10 + 10))
        path.write_bytes(data)
    with (tmp_path / "records.jsonl").open("ab") as out:
        out.write(b'{"ts": "torn')
    engine = Engine(tmp_path)
    yield tmp_path, engine
    engine.close()


def messages(page):
    return [r["message"] for r in page["records"]]


class TestRecords:
    """Pages of matching records, newest first, with a cursor to the oldest."""

    def test_newest_first_across_rotated_files(self, store):
        _, engine = store
        page = engine.records("", limit=15)
        assert messages(page) == [f"message {i}" for i in range(29, 14, -1)]
        assert all(len(r["id"]) == 26 for r in page["records"])
        assert page["next"]

    def test_paging_reaches_the_oldest_without_gaps_or_repeats_while_records_arrive(self, store):
        path, engine = store
        seen = []
        page = engine.records("", limit=7)
        arrived = 0
        while True:
            seen += messages(page)
            # Records keep arriving at the newest end while the pages go back.
            with (path / "records.jsonl").open("ab") as out:
                out.write(b"\n" + line(100 + arrived))
            arrived += 1
            if page["next"] is None:
                break
            page = engine.records("", limit=7, before=page["next"])
        assert seen == [f"message {i}" for i in range(29, -1, -1)]

    def test_words_match_message_traceback_and_field_values(self, tmp_path):
        (tmp_path / "records.jsonl").write_bytes(
            line(1, message="Connection RESET by peer")
            + line(2, exc="Traceback\nTimeoutError: reset")
            + line(3, fields={"detail": "the reset button"})
            + line(4, fields={"reset": "a key, not a value"})
            + line(5, message="nothing here")
        )
        engine = Engine(tmp_path)
        found = engine.records("reset")["records"]
        assert [r["message"] for r in found] == [
            "message 3",
            "message 2",
            "Connection RESET by peer",
        ]
        assert messages(engine.records('"by peer"')) == ["Connection RESET by peer"]
        assert len(engine.records("-reset")["records"]) == 2

    def test_comparisons(self, store):
        _, engine = store
        assert messages(engine.records("n>=27")) == ["message 29", "message 28", "message 27"]
        assert messages(engine.records("n<2")) == ["message 1", "message 0"]
        assert len(engine.records("user=u1", limit=100)["records"]) == 10
        assert len(engine.records("user!=u1", limit=100)["records"]) == 20
        assert len(engine.records("-user=u1", limit=100)["records"]) == 20
        assert len(engine.records("has:user", limit=100)["records"]) == 30
        assert engine.records("has:nope")["records"] == []

    def test_levels_by_rank_and_loggers_with_children(self, tmp_path):
        (tmp_path / "records.jsonl").write_bytes(
            line(1, level="debug", logger="app")
            + line(2, level="warn", logger="app.db")
            + line(3, level="ERROR", logger="apple")
            + line(4, level="level 45", logger="other")
            + line(5, level="made-up", logger="app.db.pool")
        )
        engine = Engine(tmp_path)
        assert messages(engine.records("level>=warning")) == ["message 4", "message 3", "message 2"]
        assert messages(engine.records("logger=app")) == ["message 5", "message 2", "message 1"]
        assert messages(engine.records("level=error")) == ["message 3"]
        assert messages(engine.records("level<info")) == ["message 1"]

    def test_time_range(self, store):
        _, engine = store
        page = engine.records("", since=T0 + 5, until=T0 + 8)
        assert messages(page) == ["message 7", "message 6", "message 5"]

    def test_text_that_sql_or_like_would_treat_specially_is_literal(self, tmp_path):
        (tmp_path / "records.jsonl").write_bytes(
            line(1, message="100% done_ok")
            + line(2, message="100 x doneXok")
            + line(3, message='it\'s "quoted"')
        )
        engine = Engine(tmp_path)
        assert messages(engine.records('"100% done_ok"')) == ["100% done_ok"]
        assert messages(engine.records('"it\'s \\"quoted\\""')) == ['it\'s "quoted"']
        assert engine.records("x=';DROP TABLE x;--")["records"] == []

    def test_a_legacy_line_without_an_id_gets_a_stable_one(self, tmp_path):
        (tmp_path / "records.jsonl").write_bytes(line(1, with_id=False) + line(2))
        engine = Engine(tmp_path)
        first = engine.records("")["records"][1]
        assert first["id"].startswith("L")
        assert len(first["id"]) == 26
        assert engine.record(first["id"])["message"] == "message 1"
        assert engine.records("")["records"][1]["id"] == first["id"]


class TestBadInput:
    """Each a QueryError with a message, nothing else."""

    @pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1])
    def test_limit(self, store, limit):
        with pytest.raises(QueryError, match="limit"):
            store[1].records("", limit=limit)

    @pytest.mark.parametrize("cursor", ["x", "!!!!", "W10", "a" * 500, "WyJhIiwxXQ"])
    def test_a_cursor_from_elsewhere(self, store, cursor):
        with pytest.raises(QueryError, match="cursor"):
            store[1].records("", before=cursor)

    def test_a_bad_query_and_an_impossible_range(self, store):
        with pytest.raises(QueryError, match="position"):
            store[1].records("level>=nope")
        with pytest.raises(QueryError, match="before until"):
            store[1].records("", since=T0 + 10, until=T0)
        with pytest.raises(QueryError, match="before until"):
            store[1].histogram("", since=T0 + 10, until=T0)

    @pytest.mark.parametrize("field", ["../etc/passwd", "a'b", "", "$[0]"])
    def test_a_field_that_is_not_a_name(self, store, field):
        with pytest.raises(QueryError):
            store[1].facets("", field=field)

    def test_buckets_and_top(self, store):
        with pytest.raises(QueryError):
            store[1].histogram("", buckets=0)
        with pytest.raises(QueryError):
            store[1].facets("", field="level", top=0)


class TestAggregates:
    """Histogram, facets, count, one record; corrupt lines skipped and counted."""

    def test_histogram_counts_levels_in_equal_buckets_and_counts_skipped_lines(self, tmp_path):
        (tmp_path / "records.jsonl").write_bytes(
            line(0, level="info")
            + line(1, level="error")
            + b"not json\n"
            + line(5, level="info")
            + line(9, level="warning")
        )
        engine = Engine(tmp_path)
        result = engine.histogram("", since=T0, until=T0 + 10, buckets=2)
        assert [b["counts"] for b in result["buckets"]] == [
            {"info": 1, "error": 1},
            {"info": 1, "warning": 1},
        ]
        assert result["buckets"][0]["start"] == "2023-11-14T22:13:20.000000Z"
        assert result["buckets"][1]["end"] == "2023-11-14T22:13:30.000000Z"
        assert result["skipped"] == 1
        filtered = engine.histogram("level>=warning", since=T0, until=T0 + 10, buckets=1)
        assert filtered["buckets"][0]["counts"] == {"error": 1, "warning": 1}

    def test_histogram_default_range_is_the_last_hour(self, tmp_path):
        now = time.time()
        (tmp_path / "records.jsonl").write_bytes(
            line(0, received=now - 7200) + line(1, received=now - 60)
        )
        result = Engine(tmp_path).histogram("")
        assert len(result["buckets"]) == 60
        assert sum(sum(b["counts"].values()) for b in result["buckets"]) == 1

    def test_facets(self, store):
        _, engine = store
        result = engine.facets("n>=3", since=T0, until=T0 + 100, field="user", top=2)
        assert result == {
            "field": "user",
            "values": [{"value": "u0", "count": 9}, {"value": "u1", "count": 9}],
            "other": 9,
        }
        assert engine.facets("", since=T0, until=T0 + 100, field="logger")["values"] == [
            {"value": "app", "count": 30}
        ]

    def test_count_and_record(self, store):
        _, engine = store
        assert engine.count("user=u2") == 10
        some = engine.records("", limit=30)["records"][17]
        assert engine.record(some["id"]) == some
        assert engine.record("0" * 26) is None
        assert engine.record("../../etc/passwd") is None

    def test_an_empty_or_missing_dir_has_no_records(self, tmp_path):
        engine = Engine(tmp_path / "nowhere")
        assert engine.records("") == {"records": [], "next": None}
        assert engine.count("") == 0
        assert engine.facets("", field="level")["values"] == []
        assert all(b["counts"] == {} for b in engine.histogram("")["buckets"])

    def test_a_symlink_in_the_store_is_not_followed(self, tmp_path):
        outside = tmp_path / "outside.jsonl"
        outside.write_bytes(line(1, message="secret"))
        store = tmp_path / "store"
        store.mkdir()
        (store / "records.jsonl").write_bytes(line(2))
        (store / backup_name(1)).symlink_to(outside)
        assert messages(Engine(store).records("")) == ["message 2"]


class TestFilesMovingUnderAQuery:
    """A file listed but gone when DuckDB opens it: the query runs again on a fresh listing."""

    def test_a_vanished_backup_costs_a_retry_not_an_error(self, store, monkeypatch):
        path, engine = store
        real = engine._files
        calls = []

        def listing():
            files = real()
            calls.append(1)
            if len(calls) == 1:
                files.insert(0, _FileSpan(path / backup_name(0), "", ""))  # pruned meanwhile
            return files

        monkeypatch.setattr(engine, "_files", listing)
        assert engine.count("") == 30
        assert len(calls) == 2

    def test_a_store_that_never_settles_is_a_query_error(self, store, monkeypatch):
        path, engine = store
        real = engine._files
        monkeypatch.setattr(engine, "_files", lambda: [_FileSpan(path / "gone", "", ""), *real()])
        with pytest.raises(QueryError, match="kept changing"):
            engine.count("")
