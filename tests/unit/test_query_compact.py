"""Compacted files (Parquet beside rotated JSONL, segments of the live file) answer as the JSONL."""

import tempfile

import duckdb
import orjson
import pytest

from netlog.query import engine as engine_module
from netlog.query.engine import Engine
from netlog.record import new_id
from netlog.sinks.encode import format_time
from netlog.store import compact, segments
from netlog.store.writer import backup_name, rotated_paths

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


#: Small segments, so the live file of :func:`build` (about 17 KB) has several and a tail.
SEGMENT = 3000


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """The system temp dir the engine copies ranges into, watched: empty after each question."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


@pytest.fixture
def engines(tmp_path, private_tmp):
    """The same store as JSONL only and compacted: rotated files whole, the live one in segments."""
    store = tmp_path / "store"
    store.mkdir()
    build(store)
    plain = Engine(store, use_parquet=False)
    compacted = Engine(store)
    written = compacted.compact(segment_bytes=SEGMENT)
    assert len([p for p in written if segments.MARK not in p.name]) == 4
    assert len([p for p in written if segments.MARK in p.name]) >= 4
    yield store, plain, compacted
    assert list(private_tmp.iterdir()) == []  # every tail copy deleted
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
        path, plain, compacted = engines
        used = compacted._files()
        pieces = len(list(path.glob("*.seg-*.parquet")))
        assert [f.parquet is not None for f in used] == [True] * (4 + pieces) + [False]
        assert [f.segment is not None for f in used[4:-1]] == [True] * pieces
        live = (path / "records.jsonl").stat().st_size
        assert 0 < used[-1].tail < live  # the live file's tail, read as JSONL
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
            used = [f.parquet is None for f in fresh._files()]
            assert used[:4] == [False, False, True, False]
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

    def test_wide_lines_compact_within_the_memory_limit(self, tmp_path):
        """10 MiB of 1.4 KiB lines under compaction's own 256 MB: compacted, same answers."""
        lines = []
        for i in range(7500):
            when = T0 + i
            obj = {
                "ts": format_time(when),
                "received": format_time(when),
                "level": "info",
                "logger": "app",
                "message": "x" * 1000 + f" wide{i}",
                "fields": {"a": "y" * 200, "n": i},
                "peer": "10.0.0.1:5000",
                "format": "json",
                "id": new_id(when),
            }
            lines.append(orjson.dumps(obj) + b"\n")
        (tmp_path / backup_name(1)).write_bytes(b"".join(lines))
        (tmp_path / "records.jsonl").write_bytes(lines[0])
        engine = Engine(tmp_path)
        try:
            assert engine.compact() == [tmp_path / (backup_name(1) + ".parquet")]
            plain = Engine(tmp_path, use_parquet=False)
            try:
                for q in ("wide7", "n>7400", "a=" + "y" * 200):
                    assert engine.count(q) == plain.count(q) > 0
            finally:
                plain.close()
        finally:
            engine.close()

    def test_a_failed_compaction_is_counted_and_the_jsonl_answers(self, engines, monkeypatch):
        """Out of memory (a 4 MB cap): nothing written, counted, the same answers."""
        path, plain, _ = engines
        for parquet in path.glob("*.parquet"):
            parquet.unlink()
        monkeypatch.setattr(engine_module, "COMPACT_MEMORY", "4MB")
        engine = Engine(path)
        try:
            assert engine.compact(segment_bytes=1 << 40) == []
            assert engine.compact_failures == 4  # the four rotated files
            assert not list(path.glob("*.parquet"))
            assert answers(engine) == answers(plain)
            # The live file's segment fails the same way, and is counted too.
            assert engine.compact(limit=0, segment_bytes=1024) == []
            assert engine.compact_failures == 5
            assert not list(path.glob("*.parquet"))
            assert answers(engine) == answers(plain)
        finally:
            engine.close()


def answers(engine):
    """Every question over the whole store: pages of several queries, counts, histogram, facets."""
    span = {"since": T0 - 10, "until": T0 + 400}
    out = []
    for q in ("", "kaboom_timeout", "user=u2", "-kaboom_timeout level>=warning", "has:exc"):
        out.append(all_pages(engine, q, limit=7))
        out.append(engine.count(q))
        out.append(engine.histogram(q, buckets=13, **span))
        out.append(engine.facets(q, field="user", **span))
    records = [r for page in all_pages(engine, "", limit=100) for r in page["records"]]
    out.append([engine.record(r["id"]) for r in records[::7]])
    return out


def read_end(segment):
    """Where a segment ends, as its metadata says."""
    with duckdb.connect() as db:
        found = segments.read(db, segment)
    assert found is not None
    return found.end


def segment_files(path):
    return sorted(path.glob("records.jsonl.seg-*.parquet"))


class TestSegments:
    """The live file's segments: used while they match, never half-written, deleted when done."""

    def test_a_first_page_reads_the_tail_and_the_newest_segments_only(self, engines):
        _, plain, compacted = engines
        groups = []
        real = compacted._all

        def spy(sql, params, files):
            groups.append(list(files))
            return real(sql, params, files)

        compacted._all = spy
        page = compacted.records("", limit=3)
        assert page == plain.records("", limit=3)
        read = [f for group in groups for f in group if f.parquet is None or f.segment]
        assert read
        assert len(read) < len(compacted._files())  # not every source
        assert all(f.path.name == "records.jsonl" for f in read)  # nor a rotated file

    def test_a_rotated_file_with_segments_and_no_full_copy_yet(self, engines, private_tmp):
        """Rotation renames the file (same inode): its segments serve until its Parquet copy."""
        path, plain, _ = engines
        live = path / "records.jsonl"
        live.rename(path / backup_name(5))
        live.write_bytes(b"".join(record_line(i) for i in range(200, 230)))
        fresh = Engine(path)
        try:
            used = fresh._files()
            assert any(f.segment and f.path.name == backup_name(5) for f in used)
            assert answers(fresh) == answers(plain)
            before = segment_files(path)
            written = fresh.compact(segment_bytes=SEGMENT)
            assert path / (backup_name(5) + ".parquet") in written
            after = segment_files(path)
            assert not set(before) & set(after)  # the rotated file's segments are gone
            assert all(str(live.stat().st_ino) in p.name for p in after)  # the new live file's
            assert answers(fresh) == answers(plain)
        finally:
            fresh.close()
        assert list(private_tmp.iterdir()) == []

    def test_segments_of_a_replaced_live_file_are_not_read_and_are_deleted(self, engines):
        path, plain, compacted = engines
        live = path / "records.jsonl"
        old = segment_files(path)
        live.unlink()
        # another file (the filesystem may give it the same inode), other bytes
        live.write_bytes(b"".join(record_line(i) for i in range(500, 530)))
        assert all(f.segment is None for f in compacted._files())
        assert answers(compacted) == answers(plain)
        compacted.compact(segment_bytes=1 << 30)
        assert not any(p.exists() for p in old)

    def test_a_truncated_live_file_stops_the_chain(self, engines):
        path, plain, compacted = engines
        live = path / "records.jsonl"
        ends = [read_end(p) for p in segment_files(path)]
        with live.open("r+b") as f:
            f.truncate(ends[1] - 10)  # within the second segment: only the first is still good
        used = [f for f in compacted._files() if f.segment]
        assert len(used) == 1
        assert answers(compacted) == answers(plain)
        compacted.compact(segment_bytes=1 << 30)
        assert len(segment_files(path)) == 1

    def test_rewritten_bytes_under_a_segment_are_noticed(self, engines):
        """The same inode, the same size, other bytes before a segment's end: not used."""
        path, plain, _ = engines
        live = path / "records.jsonl"
        end = read_end(segment_files(path)[0])
        data = bytearray(live.read_bytes())
        data[end - 40 : end - 30] = b"X" * 10
        with live.open("r+b") as f:
            f.write(bytes(data))
        fresh = Engine(path)  # no cache of the earlier checks
        try:
            assert not any(f.segment for f in fresh._files())
            assert answers(fresh) == answers(plain)
        finally:
            fresh.close()

    def test_a_half_written_segment_is_never_read_and_is_removed(self, engines):
        path, plain, _ = engines
        first = segment_files(path)[0]
        temp = first.with_name(first.name + compact.TEMP_MARK + "999")
        temp.write_bytes(first.read_bytes()[:300])
        for segment in segment_files(path):
            segment.unlink()
        fresh = Engine(path)
        try:
            assert not any(f.segment for f in fresh._files())
            assert answers(fresh) == answers(plain)
            written = fresh.compact(segment_bytes=SEGMENT)
            assert first in written
            assert not temp.exists()
            assert fresh._files()[4].segment
            assert answers(fresh) == answers(plain)
        finally:
            fresh.close()

    def test_a_corrupt_segment_is_distrusted(self, engines):
        path, plain, _ = engines
        target = segment_files(path)[-1]
        with duckdb.connect() as db:
            chunks = db.execute(
                "SELECT data_page_offset, total_compressed_size FROM parquet_metadata(?)",
                [str(target)],
            ).fetchall()
        data = bytearray(target.read_bytes())
        for offset, size in chunks:  # every column's pages; the footer stays readable
            data[offset : offset + size] = bytes(size)
        target.write_bytes(bytes(data))
        fresh = Engine(path)
        try:
            assert answers(fresh) == answers(plain)
            assert fresh.parquet_failures >= 1
        finally:
            fresh.close()

    def test_records_arriving_after_the_segments_are_in_the_tail(self, engines):
        path, plain, compacted = engines
        with (path / "records.jsonl").open("ab") as f:
            f.write(b"".join(record_line(i) for i in range(200, 260)))
            f.write(b'{"torn": ')  # a line being written: read as today (skipped, counted)
        assert answers(compacted) == answers(plain)
        more = compacted.compact(segment_bytes=SEGMENT)
        assert more
        assert all(segments.MARK in p.name for p in more)
        assert answers(compacted) == answers(plain)

    def test_segment_names_are_no_store_files(self, engines):
        """Every reader of the log dir lists store files with rotated_paths: no segment there."""
        path, _, _ = engines
        names = [p.name for p in rotated_paths(path)]
        assert names == [backup_name(n) for n in range(1, 5)] + ["records.jsonl"]
        assert compact.remove_orphans(path) == 0
        assert len(segment_files(path)) >= 4

    def test_a_segment_of_another_inode_is_not_read(self, engines):
        """A file renamed over the live file (another inode): the old segments name the old one."""
        path, plain, compacted = engines
        live = path / "records.jsonl"
        copy = path / "copy"
        copy.write_bytes(live.read_bytes())
        copy.replace(live)
        assert not any(f.segment for f in compacted._files())
        assert answers(compacted) == answers(plain)

    def test_no_temp_dir_means_whole_files(self, engines, monkeypatch):
        """A tail that cannot be copied (temp dir gone or full): the JSONL answers, as before."""
        path, plain, _ = engines
        monkeypatch.setattr(tempfile, "tempdir", str(path / "no such dir"))
        fresh = Engine(path)
        try:
            assert answers(fresh) == answers(plain)
            assert fresh.tail_copy_failed
            assert not any(f.segment for f in fresh._files())
        finally:
            fresh.close()

    def test_a_long_uncovered_tail_means_the_whole_file(self, engines, monkeypatch):
        _, plain, compacted = engines
        monkeypatch.setattr(engine_module, "_MAX_TAIL", 0)  # the fixture's tail is longer
        assert not any(f.segment for f in compacted._files())
        assert answers(compacted) == answers(plain)


@pytest.mark.usefixtures("private_tmp")
def test_a_received_time_shared_across_segments_pages_as_one_scan(tmp_path):
    """Records with one received time in several segments: ordered by id, none lost or repeated."""
    lines = []
    for i in range(90):
        obj = {"received": format_time(T0 + i // 30), "message": f"m {i}", "id": new_id(T0 + i)}
        lines.append(orjson.dumps(obj) + b"\n")
    # In receive order, as stored; within a time, ids against file order (another receiver thread)
    lines.sort(key=lambda line: orjson.loads(line)["id"], reverse=True)
    lines.sort(key=lambda line: orjson.loads(line)["received"])
    (tmp_path / "records.jsonl").write_bytes(b"".join(lines))
    plain = Engine(tmp_path, use_parquet=False)
    segmented = Engine(tmp_path)
    try:
        assert len(segmented.compact(segment_bytes=1000)) >= 5
        assert sum(1 for f in segmented._files() if f.segment) >= 5
        for limit in (1, 7, 40):
            pages = all_pages(segmented, "", limit=limit)
            assert pages == all_pages(plain, "", limit=limit)
            ids = [r["id"] for page in pages for r in page["records"]]
            assert sorted(ids) == sorted(orjson.loads(line)["id"] for line in lines)
    finally:
        plain.close()
        segmented.close()
