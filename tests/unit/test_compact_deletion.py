"""A rotated file's Parquet copy goes when rotation or --max-age deletes the file."""

from netlog.query.engine import Engine
from netlog.record import Record
from netlog.store import segments
from netlog.store.compact import parquet_path
from netlog.store.writer import JsonlFileSink, rotated_paths

DAY = 86400.0
T0 = 1_700_000_000.0


def rec(received):
    return Record(received, received, "info", "app", "x" * 200, {}, None, "127.0.0.1:1", "json")


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def rotate_days(sink, days, start=T0):
    """One record a flush, each flush rotating (max_bytes is one record)."""
    for day in range(days):
        sink.write([rec(start + day * DAY)])
        sink.flush()


def compacted(tmp_path):
    """Compact every rotated file with the engine; the Parquet files there now."""
    engine = Engine(tmp_path)
    try:
        engine.compact()
    finally:
        engine.close()
    return sorted(tmp_path.glob("records.jsonl.*.parquet"))


class TestDeletedTogether:
    """Rotation pruning and --max-age delete the Parquet copy with its JSONL file."""

    def test_rotation_prunes_both(self, tmp_path):
        sink = JsonlFileSink(tmp_path, max_bytes=300, backups=3)
        sink.open()
        rotate_days(sink, 5)
        before = compacted(tmp_path)
        assert len(before) == 3
        rotate_days(sink, 2, start=T0 + 10 * DAY)
        sink.close()
        backups = [p for p in rotated_paths(tmp_path) if p.name != "records.jsonl"]
        survivors = [p for p in before if p.exists()]
        assert len(survivors) == 1  # two pruned with their JSONL
        assert all(parquet_path(p) in survivors or not parquet_path(p).exists() for p in backups)
        assert {p.name.removesuffix(".parquet") for p in survivors} <= {p.name for p in backups}

    def test_max_age_deletes_both(self, tmp_path):
        clock = Clock(T0)
        sink = JsonlFileSink(tmp_path, max_bytes=300, backups=100, max_age=2 * DAY, clock=clock)
        sink.open()
        rotate_days(sink, 5)
        before = compacted(tmp_path)
        assert len(before) == 4
        clock.now = T0 + 5 * DAY
        deleted = sink.expire()
        sink.close()
        assert deleted > 0
        gone = [p for p in before if not p.exists()]
        assert len(gone) == deleted
        for path in gone:
            assert not path.with_name(path.name.removesuffix(".parquet")).exists()
        for path in before:
            if path.exists():
                assert path.with_name(path.name.removesuffix(".parquet")).exists()


class TestSegmentsOfDeletedFiles:
    """Segments of a file rotation pruned (before its full copy) go at the next compaction."""

    def test_pruned_with_their_file(self, tmp_path):
        sink = JsonlFileSink(tmp_path, max_bytes=4000, backups=1)
        sink.open()
        for i in range(9):  # about 2.7 KB: below max_bytes, all in the live file
            sink.write([rec(T0 + i)])
        sink.flush()
        engine = Engine(tmp_path)
        try:
            made = engine.compact(segment_bytes=600)
            assert len(made) >= 3
            assert all(segments.MARK in p.name for p in made)
            rotate_days(sink, 40, start=T0 + DAY)  # rotates twice: the first file is pruned
            sink.close()
            assert all(p.exists() for p in made)  # rotation knows nothing of segments
            engine.compact(segment_bytes=1 << 30)
            assert not any(p.exists() for p in made)
        finally:
            engine.close()
