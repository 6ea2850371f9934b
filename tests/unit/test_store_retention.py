"""--max-age: rotated files whose newest record is older are deleted, never records.jsonl."""

import os

from netlog.record import Record
from netlog.sinks.encode import encode_line
from netlog.store.writer import FILE_NAME, JsonlFileSink, rotated_paths

DAY = 86400.0
T0 = 1_700_000_000.0


def rec(received, size=200):
    return Record(received, received, "info", "app", "x" * size, {}, None, "127.0.0.1:1", "json")


def rec_line(received):
    return encode_line(rec(received))


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def fill(sink, start, days, per_day=3):
    """Records over ``days`` days, each flush rotating (max_bytes is one record)."""
    for day in range(days):
        for i in range(per_day):
            sink.write([rec(start + day * DAY + i)])
            sink.flush()


class TestMaxAge:
    """Retention by age, checked at flush and after rotation."""

    def test_old_backups_go_young_ones_and_the_current_file_stay(self, tmp_path):
        clock = Clock(T0)
        reports = []
        sink = JsonlFileSink(
            tmp_path,
            max_bytes=300,
            backups=1000,
            max_age=2 * DAY,
            clock=clock,
            report=lambda message, _key=None: reports.append(message),
        )
        sink.open()
        fill(sink, T0, 5)
        before = rotated_paths(tmp_path)
        clock.now = T0 + 5 * DAY  # records of days 0..4; keep what is newer than day 3
        deleted = sink.expire()
        after = rotated_paths(tmp_path)
        assert deleted == sink.expired > 0
        assert len(after) == len(before) - deleted
        assert after[-1].name == FILE_NAME
        newest_deleted_day = 2  # days 0, 1, 2 are older than 2 days before day 5
        assert (
            len(after) - 1 == (5 - newest_deleted_day - 1) * 3 - 1
        )  # minus the current file's record
        assert any("older than --max-age" in message for message in reports)
        sink.close()

    def test_the_current_file_is_never_deleted_however_old(self, tmp_path):
        clock = Clock(T0 + 100 * DAY)
        sink = JsonlFileSink(tmp_path, max_age=DAY, clock=clock)
        sink.open()
        sink.write([rec(T0)])
        sink.flush()
        assert sink.expire() == 0
        assert (tmp_path / FILE_NAME).stat().st_size > 0
        sink.close()

    def test_off_by_default(self, tmp_path):
        clock = Clock(T0)
        sink = JsonlFileSink(tmp_path, max_bytes=300, backups=1000, clock=clock)
        sink.open()
        fill(sink, T0, 2)
        clock.now = T0 + 1000 * DAY
        sink.flush()
        assert sink.expire() == 0
        assert len(rotated_paths(tmp_path)) == 6
        sink.close()

    def test_flush_looks_at_most_once_a_minute_and_after_a_rotation(self, tmp_path):
        clock = Clock(T0)
        sink = JsonlFileSink(tmp_path, max_bytes=300, backups=1000, max_age=DAY, clock=clock)
        sink.open()
        fill(sink, T0, 1)
        count = len(rotated_paths(tmp_path))
        clock.now = T0 + 3 * DAY
        sink.write([rec(clock.now, size=10)])
        sink.flush()  # looks first (the old backups go), then rotates the old current file
        assert sink.expired == count - 1
        assert len(rotated_paths(tmp_path)) == 2
        clock.now += 1  # not a minute later, but a rotation happened: look again
        sink.flush()
        assert sink.expired == count
        assert len(rotated_paths(tmp_path)) == 1
        (tmp_path / f"{FILE_NAME}.0000000099").write_bytes(rec_line(T0))
        sink._backup_paths.append(tmp_path / f"{FILE_NAME}.0000000099")
        clock.now += 30
        sink.flush()  # within the minute, no rotation: not looked at
        assert sink.expired == count
        clock.now += 31
        sink.flush()
        assert sink.expired == count + 1
        sink.close()

    def test_a_backup_without_a_readable_time_goes_by_its_mtime(self, tmp_path):
        clock = Clock(T0 + 10 * DAY)
        old = tmp_path / f"{FILE_NAME}.0000000001"
        old.write_bytes(b"not a record\n")
        os.utime(old, (T0, T0))
        sink = JsonlFileSink(tmp_path, max_age=DAY, clock=clock)
        sink.open()
        assert sink.expire() == 1
        assert not old.exists()
        sink.close()
