"""Compacted files (Parquet beside rotated JSONL) give the engine the same answers as the JSONL."""

import orjson
import pytest

from netlog.query.engine import Engine
from netlog.record import new_id
from netlog.sinks.encode import format_time
from netlog.store import compact
from netlog.store.writer import backup_name

T0 = 1_700_000_000.0
LEVELS = ("debug", "info", "info", "warning", "error", "critical", "INFO", "level 25")
LOGGERS = ("app", "app.db", "application", "worker", "auth")


def record_line(i):
    """A varied record: levels, loggers, nested fields, tracebacks, legacy lines without ids."""
    when = T0 + i
    obj = {
        "ts": format_time(when - 0.5),
        "received": format_time(when),
        "level": LEVELS[i % len(LEVELS)],
        "logger": LOGGERS[i % len(LOGGERS)],
        "message": f"request {i} took {i % 13}ms" + (" Kaboom_Timeout 100%" if i % 11 == 0 else ""),
        "fields": {
            "user": f"u{i % 4}",
            "n": i,
            "ratio": i / 7,
            "nested": {"deep": f"d{i % 3}", "list": [i, "x"]},
            "flag": i % 2 == 0,
        },
        "peer": f"10.0.0.{i % 5}:1234",
        "format": "json",
    }
    if i % 6 == 0:
        obj["exc"] = f"Traceback\nValueError: bad value {i}"
    if i % 9 == 0:
        obj["fields"]["note"] = "Ünïcode naïve café"
    if i % 10 != 7:
        obj["id"] = new_id(when)
    if i % 15 == 0:
        obj["host"] = "web-1"
    return orjson.dumps(obj) + b"\n"


def build(path):
    """Four rotated files and the live one; corrupt lines, and JSON that is not an object."""
    names = [backup_name(n) for n in range(1, 5)] + ["records.jsonl"]
    for n, name in enumerate(names):
        lines = [record_line(i) for i in range(n * 40, n * 40 + 40)]
        if n == 1:
            lines.insert(5, b"this is not json\n")
            lines.insert(20, b'{"torn": "half\n')
        if n == 3:
            lines.insert(0, b"\x00\xff garbage\n")
            lines.insert(9, b'  "just a string"\n')
        if n in {2, 4}:
            lines.insert(12, b"[1, 2, 3]\n" if n == 2 else b"42\n")
        (path / name).write_bytes(b"".join(lines))
    return names


QUERIES = [
    "",
    "kaboom_timeout",
    '"took 3ms"',
    "valueerror",
    "café",
    "-kaboom_timeout",
    "user=u2",
    "user!=u2",
    "nested.deep=d1",
    "n>100",
    "n<=30 ratio>2",
    "level>=warning",
    "level=info",
    "logger=app",
    "logger!=app",
    "peer=10.0.0.3:1234",
    "host=web-1",
    "has:exc",
    "has:note -has:exc",
    "flag=true",
    "100%",
    "message=nothing",
]


@pytest.fixture
def engines(tmp_path):
    """The same store read as JSONL only and with its rotated files compacted."""
    build(tmp_path)
    plain = Engine(tmp_path, use_parquet=False)
    compacted = Engine(tmp_path)
    written = compacted.compact()
    assert len(written) == 4
    yield tmp_path, plain, compacted
    plain.close()
    compacted.close()


def all_pages(engine, q, limit=7, **kw):
    pages = []
    before = None
    while True:
        page = engine.records(q, limit=limit, before=before, **kw)
        pages.append(page)
        before = page["next"]
        if before is None:
            return pages


class TestSameAnswers:
    """Every question answered the same with and without the Parquet files."""

    def test_the_compacted_engine_reads_parquet(self, engines):
        _, plain, compacted = engines
        used = [f.parquet for f in compacted._files()]
        assert [p is not None for p in used] == [True, True, True, True, False]
        assert all(f.parquet is None for f in plain._files())

    @pytest.mark.parametrize("q", QUERIES)
    def test_pages_and_cursors(self, engines, q):
        _, plain, compacted = engines
        assert all_pages(compacted, q) == all_pages(plain, q)

    @pytest.mark.parametrize("q", QUERIES)
    def test_counts_histograms_and_facets(self, engines, q):
        _, plain, compacted = engines
        span = {"since": T0 - 10, "until": T0 + 300}
        assert compacted.count(q) == plain.count(q)
        assert compacted.count(q, since=T0 + 50, until=T0 + 130) == plain.count(
            q, since=T0 + 50, until=T0 + 130
        )
        assert compacted.histogram(q, buckets=17, **span) == plain.histogram(q, buckets=17, **span)
        for field in ("level", "logger", "user", "nested.deep", "host", "exc", "fields.flag"):
            assert compacted.facets(q, field=field, top=3, **span) == plain.facets(
                q, field=field, top=3, **span
            )

    def test_a_time_range_and_a_page_from_the_middle(self, engines):
        _, plain, compacted = engines
        kw = {"since": T0 + 35.5, "until": T0 + 121}
        assert all_pages(compacted, "", limit=9, **kw) == all_pages(plain, "", limit=9, **kw)
        assert all_pages(compacted, "user=u1", limit=3, **kw) == all_pages(
            plain, "user=u1", limit=3, **kw
        )

    def test_corrupt_lines_are_skipped_and_counted_the_same(self, engines):
        _, plain, compacted = engines
        span = {"since": T0 - 10, "until": T0 + 300}
        skipped = compacted.histogram("", **span)["skipped"]
        assert skipped == plain.histogram("", **span)["skipped"]
        # the torn, the text, the garbage line; a string, an array, a number
        assert skipped == 6

    def test_every_record_by_id_including_legacy_ones(self, engines):
        _, plain, compacted = engines
        records = [r for page in all_pages(plain, "", limit=100) for r in page["records"]]
        assert len(records) == 200
        assert any(r["id"].startswith("L") for r in records)
        for record in records:
            assert compacted.record(record["id"]) == plain.record(record["id"]) == record


class TestNotUsed:
    """A missing, stale, corrupt or half-written Parquet file: the JSONL is read instead."""

    def answers(self, engine):
        span = {"since": T0 - 10, "until": T0 + 300}
        return (
            all_pages(engine, "kaboom_timeout"),
            engine.histogram("level>=info", **span),
            engine.facets("", field="user", **span),
        )

    def test_a_corrupt_parquet_file(self, engines):
        path, plain, _compacted = engines
        target = path / (backup_name(2) + ".parquet")
        data = target.read_bytes()
        half = len(data) // 2  # the data pages; the footer (metadata) stays readable
        target.write_bytes(data[:8] + bytes(half - 8) + data[half:])
        fresh = Engine(path)
        try:
            assert self.answers(fresh) == self.answers(plain)
            assert fresh.parquet_failures >= 1
        finally:
            fresh.close()

    def test_a_truncated_parquet_file(self, engines):
        path, plain, _ = engines
        target = path / (backup_name(3) + ".parquet")
        target.write_bytes(target.read_bytes()[:500])
        fresh = Engine(path)
        try:
            assert [f.parquet is None for f in fresh._files()] == [False, False, True, False, True]
            assert self.answers(fresh) == self.answers(plain)
        finally:
            fresh.close()

    def test_a_stale_parquet_file(self, engines):
        """A log dir emptied by hand reuses sequence numbers: the old Parquet file is not read."""
        path, _, compacted = engines
        stale = (path / (backup_name(1) + ".parquet")).read_bytes()
        for name in path.iterdir():
            name.unlink()
        line = record_line(1000)
        (path / backup_name(1)).write_bytes(line)
        (path / (backup_name(1) + ".parquet")).write_bytes(stale)
        assert compacted.records("")["records"] == [orjson.loads(line)]
        assert compacted.count("") == 1

    def test_a_half_written_temporary_is_never_read_and_is_removed(self, engines):
        path, plain, _ = engines
        real = path / (backup_name(4) + ".parquet")
        temp = real.with_name(real.name + compact.TEMP_MARK + "999")
        temp.write_bytes(real.read_bytes()[:300])
        real.unlink()
        fresh = Engine(path)
        try:
            assert fresh._files()[3].parquet is None
            assert self.answers(fresh) == self.answers(plain)
            assert fresh.compact() == [real]
            assert not temp.exists()
            assert fresh._files()[3].parquet == real
            assert self.answers(fresh) == self.answers(plain)
        finally:
            fresh.close()


class TestCompaction:
    """What is compacted, once, and what is cleaned."""

    def test_only_rotated_files_once(self, engines):
        path, _, compacted = engines
        assert compacted.compact() == []
        assert not (path / "records.jsonl.parquet").exists()

    def test_an_orphan_parquet_file_is_removed(self, engines):
        path, _, compacted = engines
        (path / backup_name(1)).unlink()
        compacted.compact()
        assert not (path / (backup_name(1) + ".parquet")).exists()
        assert (path / (backup_name(2) + ".parquet")).exists()
