import errno
import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netlog.record import Record
from netlog.report import Reporter
from netlog.sinks.encode import encode_line
from netlog.store import writer
from netlog.store.writer import (
    FILE_NAME,
    LOCK_NAME,
    JsonlFileSink,
    LogDirInUse,
    backup_name,
    rotated_paths,
)


def rec(i, message="hello", **fields):
    return Record(
        ts=1700000000.0 + i,
        received=1700000000.5 + i,
        level="info",
        logger="app",
        message=message,
        fields={"i": i, **fields},
        exc=None,
        peer="127.0.0.1:5000",
        format="json",
    )


def read_ids(path):
    """Parse every line of a file (all must be complete JSON) and return their ids."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"{path.name} ends mid-line"
    return [json.loads(line)["fields"]["i"] for line in data.splitlines()]


def all_ids(directory):
    return [i for path in rotated_paths(directory) for i in read_ids(path)]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def swap_fd(sink, fd):
    """Point the sink at another descriptor (e.g. /dev/full); returns the old one."""
    old = sink._fd
    sink._fd = fd
    return old


class ListReporter(Reporter):
    """The server's Reporter, rate limiting as it does, keeping its messages in a list."""

    def __init__(self, messages, clock):
        super().__init__(clock=clock)
        self.messages = messages

    def write(self, line):
        self.messages.append(line.removeprefix("netlog: "))


@pytest.fixture
def reports():
    return []


@pytest.fixture
def reporter(reports, clock):
    return ListReporter(reports, clock)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def tiny_fs(tmp_path):
    """A real 64 KiB tmpfs, so ENOSPC comes from the kernel; skipped where mount is denied."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root/CAP_SYS_ADMIN): {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def remount(mountpoint, options):
    subprocess.run(["mount", "-o", f"remount,{options}", str(mountpoint)], check=True)


class TestOpen:
    """open() creates, appends, and fails loudly only when it cannot write at all."""

    def test_creates_directory_and_file(self, tmp_path):
        sink = JsonlFileSink(tmp_path / "a" / "b")
        sink.open()
        assert sink.path == tmp_path / "a" / "b" / FILE_NAME
        assert sink.path.exists()
        sink.close()

    def test_appends_never_truncates(self, tmp_path):
        (tmp_path / FILE_NAME).write_bytes(encode_line(rec(0)))
        sink = JsonlFileSink(tmp_path)
        sink.open()
        sink.write([rec(1)])
        sink.close()
        assert read_ids(tmp_path / FILE_NAME) == [0, 1]

    def test_parent_is_a_file(self, tmp_path):
        (tmp_path / "file").write_text("x")
        with pytest.raises(OSError, match="file"):
            JsonlFileSink(tmp_path / "file" / "logs").open()

    def test_directory_is_a_file(self, tmp_path):
        (tmp_path / "logs").write_text("x")
        with pytest.raises(OSError):
            JsonlFileSink(tmp_path / "logs").open()

    def test_records_path_is_a_directory(self, tmp_path):
        (tmp_path / FILE_NAME).mkdir()
        with pytest.raises(OSError):
            JsonlFileSink(tmp_path).open()

    def test_read_only_filesystem(self, tiny_fs):
        remount(tiny_fs, "ro")
        with pytest.raises(OSError) as info:
            JsonlFileSink(tiny_fs / "logs").open()
        assert info.value.errno == errno.EROFS

    def test_open_twice_is_harmless(self, tmp_path):
        sink = JsonlFileSink(tmp_path)
        sink.open()
        fd = sink._fd
        sink.open()
        assert sink._fd == fd
        sink.close()

    def test_records_written_before_open_are_kept(self, tmp_path):
        sink = JsonlFileSink(tmp_path)
        sink.write([rec(0)])
        sink.flush()  # nowhere to write yet: a no-op, not an error
        assert sink.write_errors == 0
        sink.open()
        sink.close()
        assert read_ids(sink.path) == [0]


class TestTornTail:
    """A torn last line left by a crash is moved aside, complete lines stay."""

    def test_moves_partial_line(self, tmp_path, reports, reporter):
        path = tmp_path / FILE_NAME
        path.write_bytes(encode_line(rec(0)) + encode_line(rec(1)) + b'{"ts":"20')
        sink = JsonlFileSink(tmp_path, report=reporter)
        sink.open()
        sink.write([rec(2)])
        sink.close()
        assert read_ids(path) == [0, 1, 2]
        (torn,) = tmp_path.glob("records.torn.*")
        assert torn.read_bytes() == b'{"ts":"20'
        assert any("torn" in message for message in reports)

    def test_file_without_any_newline(self, tmp_path):
        path = tmp_path / FILE_NAME
        path.write_bytes(b"x" * 3_000_000)  # longer than the scan chunk
        sink = JsonlFileSink(tmp_path)
        sink.open()
        sink.close()
        assert path.read_bytes() == b""
        (torn,) = tmp_path.glob("records.torn.*")
        assert torn.stat().st_size == 3_000_000

    def test_two_repairs_in_the_same_second(self, tmp_path):
        path = tmp_path / FILE_NAME
        for _ in range(2):
            path.write_bytes(b"ok\npartial")
            sink = JsonlFileSink(tmp_path)
            sink.open()
            sink.close()
        assert len(list(tmp_path.glob("records.torn.*"))) == 2

    def test_full_disk_does_not_stop_the_start(self, tmp_path, reports, reporter, monkeypatch):
        """Issue 15 item 11: no room for the copy: truncate, keep the bytes, save them later."""
        path = tmp_path / FILE_NAME
        path.write_bytes(encode_line(rec(0)) + b'{"ts":"20')

        def no_space(*_args):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(writer, "_copy_range", no_space)
        monkeypatch.setattr(writer, "_write_all", no_space)
        sink = JsonlFileSink(tmp_path, report=reporter)
        sink.open()
        assert read_ids(path) == [0]
        assert not list(tmp_path.glob("records.torn.*"))  # no partial copy left
        assert any("disk is full" in message for message in reports)
        sink.write([rec(1)])
        sink.flush()  # still no room for the torn bytes; the record itself goes
        assert not list(tmp_path.glob("records.torn.*"))
        monkeypatch.undo()
        sink.write([rec(2)])
        sink.flush()
        (torn,) = tmp_path.glob("records.torn.*")
        assert torn.read_bytes() == b'{"ts":"20'
        sink.close()
        assert read_ids(path) == [0, 1, 2]
        assert any("saved the 9 torn bytes" in message for message in reports)

    def test_intact_file_untouched(self, tmp_path):
        path = tmp_path / FILE_NAME
        path.write_bytes(encode_line(rec(0)))
        sink = JsonlFileSink(tmp_path)
        sink.open()
        sink.close()
        assert read_ids(path) == [0]
        assert not list(tmp_path.glob("records.torn.*"))


class TestRotation:
    """Rotation happens between lines, keeps `backups` files and drops the oldest."""

    def test_never_splits_a_line(self, tmp_path):
        sink = JsonlFileSink(tmp_path, max_bytes=2_000, backups=1_000)
        for start in range(0, 1000, 37):  # many flushes of uneven batches
            sink.write(rec(i, message="m" * (i % 50)) for i in range(start, min(start + 37, 1000)))
            if start == 0:
                sink.open()
            sink.flush()
        sink.close()
        paths = rotated_paths(tmp_path)
        assert len(paths) > 10
        for path in paths:
            assert path.stat().st_size <= 2_000
        assert all_ids(tmp_path) == list(range(1000))
        assert sink.written == 1000
        assert sink.dropped == 0

    def test_oldest_deleted_beyond_backups(self, tmp_path):
        sink = JsonlFileSink(tmp_path, max_bytes=1_000, backups=3)
        sink.open()
        for i in range(500):
            sink.write([rec(i)])
            if i % 10 == 0:
                sink.flush()
        sink.close()
        paths = rotated_paths(tmp_path)
        rotations = sink._next_seq - 1
        assert rotations > 3
        assert [p.name for p in paths] == [
            *(backup_name(seq) for seq in range(rotations - 2, rotations + 1)),
            "records.jsonl",
        ]
        ids = all_ids(tmp_path)
        assert ids == list(range(ids[0], 500))  # the newest, consecutive, in order
        assert ids[0] > 0
        assert sink.written == 500

    def test_backups_zero_starts_a_new_file(self, tmp_path):
        sink = JsonlFileSink(tmp_path, max_bytes=1_000, backups=0)
        sink.open()
        sink.write(rec(i) for i in range(100))
        sink.close()
        assert rotated_paths(tmp_path) == [tmp_path / FILE_NAME]
        ids = read_ids(tmp_path / FILE_NAME)
        assert ids == list(range(ids[0], 100))
        assert (tmp_path / FILE_NAME).stat().st_size <= 1_000

    def test_reader_of_unlinked_file_keeps_data(self, tmp_path):
        sink = JsonlFileSink(tmp_path, max_bytes=1_000, backups=0)
        sink.open()
        sink.write([rec(0)])
        sink.flush()
        with (tmp_path / FILE_NAME).open("rb") as reader:
            sink.write(rec(i) for i in range(1, 100))
            sink.flush()
            assert reader.readline() == encode_line(rec(0))
        sink.close()

    def test_oversized_line_goes_alone(self, tmp_path):
        sink = JsonlFileSink(tmp_path, max_bytes=500, backups=5)
        sink.open()
        sink.write([rec(0), rec(1, message="x" * 2_000), rec(2)])
        sink.close()
        assert [read_ids(p) for p in rotated_paths(tmp_path)] == [[0], [1], [2]]

    def test_existing_file_size_counts(self, tmp_path):
        (tmp_path / FILE_NAME).write_bytes(encode_line(rec(0, message="x" * 900)))
        sink = JsonlFileSink(tmp_path, max_bytes=1_000, backups=2)
        sink.open()
        sink.write([rec(1, message="y" * 200)])
        sink.close()
        assert [read_ids(p) for p in rotated_paths(tmp_path)] == [[0], [1]]

    def test_no_rotation_when_disabled(self, tmp_path):
        sink = JsonlFileSink(tmp_path, max_bytes=0)
        sink.open()
        sink.write(rec(i) for i in range(100))
        sink.close()
        assert rotated_paths(tmp_path) == [tmp_path / FILE_NAME]
        assert read_ids(tmp_path / FILE_NAME) == list(range(100))

    def test_rotation_failure_keeps_writing(self, tmp_path, reports, monkeypatch, reporter):
        sink = JsonlFileSink(tmp_path, max_bytes=500, backups=2, report=reporter)
        sink.open()

        def refuse(*_args):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(os, "rename", refuse)
        sink.write(rec(i) for i in range(20))
        sink.flush()
        monkeypatch.undo()
        assert sink.written == 20
        assert sink.write_errors == 1
        assert "cannot rotate" in reports[0]
        assert read_ids(tmp_path / FILE_NAME) == list(range(20))
        sink.write([rec(20)])
        sink.close()
        assert all_ids(tmp_path) == list(range(21))


class TestRotationCost:
    """Issue 15 item 12: a rotation is O(1) file operations whatever ``backups`` is."""

    def test_one_rename_per_rotation_with_1000_backups(self, tmp_path, monkeypatch):
        sink = JsonlFileSink(tmp_path, max_bytes=1_000, backups=1_000)
        sink.open()
        renames = []
        real_rename = os.rename
        monkeypatch.setattr(os, "rename", lambda *a: (renames.append(a), real_rename(*a)))
        for i in range(600):
            sink.write([rec(i)])
            sink.flush()
        sink.close()
        rotations = sink._next_seq - 1
        assert rotations > 50
        assert len(renames) == rotations
        assert all_ids(tmp_path) == list(range(600))

    def test_restart_continues_the_sequence(self, tmp_path):
        for start in (0, 100):
            sink = JsonlFileSink(tmp_path, max_bytes=1_000, backups=1_000)
            sink.open()
            sink.write(rec(i) for i in range(start, start + 100))
            sink.close()
        assert all_ids(tmp_path) == list(range(200))

    def test_old_style_backups_read_first_and_pruned_first(self, tmp_path):
        # What an earlier version left: .3 the oldest, .1 the newest, then the current file.
        for name, ids in [
            ("records.jsonl.3", [0]),
            ("records.jsonl.2", [1]),
            ("records.jsonl.1", [2]),
            (FILE_NAME, [3]),
        ]:
            (tmp_path / name).write_bytes(b"".join(encode_line(rec(i)) for i in ids))
        assert all_ids(tmp_path) == [0, 1, 2, 3]
        sink = JsonlFileSink(tmp_path, max_bytes=1, backups=4)
        sink.open()
        for i in range(4, 7):
            sink.write([rec(i)])
            sink.flush()
        sink.close()
        # Four backups kept: the oldest old-style ones went first.
        names = [p.name for p in rotated_paths(tmp_path)]
        assert names == [
            "records.jsonl.1",
            backup_name(1),
            backup_name(2),
            backup_name(3),
            FILE_NAME,
        ]
        assert all_ids(tmp_path) == [2, 3, 4, 5, 6]

    def test_lowered_backups_shrink_gradually(self, tmp_path):
        for seq in range(1, 11):
            (tmp_path / backup_name(seq)).write_bytes(encode_line(rec(seq)))
        sink = JsonlFileSink(tmp_path, max_bytes=1, backups=2)
        sink.open()
        sink.write([rec(100)])
        sink.flush()
        sink.write([rec(101)])
        sink.flush()  # one rotation: at most two unlinks
        assert len(rotated_paths(tmp_path)) == 1 + 11 - 2 + 1 - 1
        for i in range(102, 120):
            sink.write([rec(i)])
            sink.flush()
        sink.close()
        assert len(rotated_paths(tmp_path)) == 3


class TestLogDirLock:
    """Issue 15 item 10: one writer per log dir."""

    def test_second_sink_refused_while_the_first_is_open(self, tmp_path):
        first = JsonlFileSink(tmp_path)
        first.open()
        second = JsonlFileSink(tmp_path)
        with pytest.raises(LogDirInUse) as caught:
            second.open()
        assert f"pid {os.getpid()}" in str(caught.value)
        assert str(tmp_path) in str(caught.value)
        first.close()
        second.open()  # free again once the first has closed
        second.close()

    def test_lock_held_by_another_process(self, tmp_path):
        script = (
            "import fcntl, os, time\n"
            f"fd = os.open({str(tmp_path / LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(30)\n"
        )
        holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline() == "locked\n"
            with pytest.raises(LogDirInUse):
                JsonlFileSink(tmp_path).open()
        finally:
            holder.kill()
            holder.wait(10)


class TestDeletedWhileOpen:
    """Issue 15 item 9: the file or the whole dir deleted under the sink."""

    def test_dir_deleted_then_recreated_and_reported(self, tmp_path, reports, reporter):
        directory = tmp_path / "logs"
        sink = JsonlFileSink(directory, report=reporter)
        sink.open()
        sink.write(rec(i) for i in range(10))
        sink.flush()
        for path in directory.iterdir():
            path.unlink()
        directory.rmdir()
        sink.write(rec(i) for i in range(10, 15))
        sink.flush()
        assert read_ids(directory / FILE_NAME) == list(range(10, 15))
        assert sink.recreated == 1
        assert any("deleted or moved away" in r for r in reports)
        # The recreated dir is locked again.
        with pytest.raises(LogDirInUse):
            JsonlFileSink(directory).open()
        sink.close()

    def test_moved_file_replaced(self, tmp_path):
        sink = JsonlFileSink(tmp_path)
        sink.open()
        sink.write([rec(0)])
        sink.flush()
        (tmp_path / FILE_NAME).rename(tmp_path / "elsewhere")
        sink.write([rec(1)])
        sink.close()
        assert read_ids(tmp_path / "elsewhere") == [0]
        assert read_ids(tmp_path / FILE_NAME) == [1]

    def test_one_stat_per_flush_not_per_record(self, tmp_path, monkeypatch):
        sink = JsonlFileSink(tmp_path)
        sink.open()
        calls = []
        real_stat = type(tmp_path).stat
        monkeypatch.setattr(
            type(tmp_path),
            "stat",
            lambda self, **kw: (calls.append(self), real_stat(self, **kw))[1],
        )
        sink.write(rec(i) for i in range(1000))
        sink.flush()
        monkeypatch.undo()
        assert len(calls) == 1
        sink.close()

    def test_reopen_for_logrotate(self, tmp_path):
        sink = JsonlFileSink(tmp_path)
        sink.open()
        sink.write([rec(0)])
        sink.flush()
        (tmp_path / FILE_NAME).rename(tmp_path / "rotated")
        sink.write([rec(1)])
        sink.reopen()  # what is queued goes to the file open until now
        sink.write([rec(2)])
        sink.close()
        assert read_ids(tmp_path / "rotated") == [0, 1]
        assert read_ids(tmp_path / FILE_NAME) == [2]

    def test_cannot_recreate_keeps_the_lines_queued(self, tmp_path, reports, reporter):
        directory = tmp_path / "logs"
        sink = JsonlFileSink(directory, report=reporter)
        sink.open()
        shutil.rmtree(directory)
        directory.write_text("a file where the dir was")
        sink.write(rec(i) for i in range(3))
        sink.flush()
        assert sink.pending_lines == 3
        assert sink.write_errors == 1
        assert any("cannot recreate" in r for r in reports)
        directory.unlink()
        sink.flush()
        assert read_ids(directory / FILE_NAME) == [0, 1, 2]
        assert any("again after 1 failed attempt" in r for r in reports)
        sink.close()

    def test_recreated_dir_locked_by_another(self, tmp_path, reports, reporter):
        directory = tmp_path / "logs"
        sink = JsonlFileSink(directory, report=reporter)
        sink.open()
        shutil.rmtree(directory)
        other = JsonlFileSink(directory)
        other.open()  # a second server started on the empty dir
        sink.write([rec(0)])
        sink.flush()
        assert any("both are writing it now" in r for r in reports)
        other.close()
        sink.close()

    def test_reopen_failure_is_reported_and_writing_goes_on(self, tmp_path, reports, reporter):
        directory = tmp_path / "logs"
        sink = JsonlFileSink(directory, report=reporter)
        sink.open()
        shutil.rmtree(directory)
        directory.write_text("a file where the dir was")
        sink.write([rec(0)])
        sink.reopen()
        assert any("cannot reopen" in r for r in reports)
        assert sink.written == 1  # into the file still open: reopen does not lose it
        directory.unlink()
        sink.close()


class TestTornTailOnFullDisk:
    """Issue 15 item 11, the edges: a huge torn tail, and a disk that never frees."""

    @staticmethod
    def no_space(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    def test_torn_bytes_lost_only_if_the_disk_never_frees(
        self, tmp_path, reports, reporter, monkeypatch
    ):
        (tmp_path / FILE_NAME).write_bytes(encode_line(rec(0)) + b"torn")
        monkeypatch.setattr(writer, "_copy_range", self.no_space)
        monkeypatch.setattr(writer, "_write_all", self.no_space)
        sink = JsonlFileSink(tmp_path, report=reporter)
        sink.open()
        sink.close()
        assert any("4 torn bytes" in r and "lost" in r for r in reports)

    def test_too_large_to_hold_in_memory_fails_the_start(self, tmp_path, monkeypatch):
        (tmp_path / FILE_NAME).write_bytes(b"x" * 100)
        monkeypatch.setattr(writer, "_copy_range", self.no_space)
        monkeypatch.setattr(writer, "_TORN_IN_MEMORY", 10)
        with pytest.raises(OSError, match="No space"):
            JsonlFileSink(tmp_path).open()
        assert (tmp_path / FILE_NAME).stat().st_size == 100  # untouched
        monkeypatch.undo()
        sink = JsonlFileSink(tmp_path)
        sink.open()  # the lock was released
        sink.close()


class TestRotatedPaths:
    """rotated_paths lists the numbered files oldest first, then the current one."""

    def test_old_names_before_sequence_numbers(self, tmp_path):
        for name in [
            FILE_NAME,
            "records.jsonl.1",
            "records.jsonl.2",
            backup_name(9),
            backup_name(10),
            backup_name(100),
        ]:
            (tmp_path / name).write_text("")
        assert [p.name for p in rotated_paths(tmp_path)] == [
            "records.jsonl.2",
            "records.jsonl.1",
            backup_name(9),
            backup_name(10),
            backup_name(100),
            FILE_NAME,
        ]

    def test_order_and_filtering(self, tmp_path):
        for name in [
            "records.jsonl",
            "records.jsonl.1",
            "records.jsonl.10",
            "records.jsonl.2",
            "records.jsonl.old",
            "records.torn.1700000000",
            "other.jsonl.1",
        ]:
            (tmp_path / name).write_text("")
        assert [p.name for p in rotated_paths(tmp_path)] == [
            "records.jsonl.10",
            "records.jsonl.2",
            "records.jsonl.1",
            "records.jsonl",
        ]

    def test_missing_directory(self, tmp_path):
        assert rotated_paths(tmp_path / "nope") == []


class TestWriteLines:
    """Pre-encoded lines (the pipeline's path) are written as they are, one line each."""

    def test_lines_as_they_are(self, tmp_path):
        sink = JsonlFileSink(tmp_path)
        sink.open()
        sink.write_lines([b'{"a":1}\n', b'{"a":2}\n'])
        sink.write([rec(3)])
        sink.close()
        data = (tmp_path / FILE_NAME).read_bytes()
        assert data == b'{"a":1}\n{"a":2}\n' + encode_line(rec(3))
        assert sink.written == 3
        assert sink.pending_bytes == 0

    def test_write_is_encode_then_write_lines(self, tmp_path):
        records = [rec(i, message="\u2028\x1b") for i in range(3)]
        by_records, by_lines = JsonlFileSink(tmp_path / "a"), JsonlFileSink(tmp_path / "b")
        for sink in (by_records, by_lines):
            sink.open()
        by_records.write(records)
        by_lines.write_lines([encode_line(record) for record in records])
        assert by_records.pending_bytes == by_lines.pending_bytes
        by_records.close()
        by_lines.close()
        assert by_records.path.read_bytes() == by_lines.path.read_bytes()


class TestDiskFull:
    """A failing disk keeps data in memory, reports rarely, and recovers."""

    def test_dev_full(self, tmp_path, reports, clock, reporter):
        sink = JsonlFileSink(tmp_path, report=reporter)
        sink.open()
        good = swap_fd(sink, os.open("/dev/full", os.O_WRONLY))
        sink.write(rec(i) for i in range(10))
        sink.flush()
        assert sink.write_errors == 1
        assert sink.written == 0
        assert sink.pending_lines == 10
        assert sink.pending_bytes == sum(len(encode_line(rec(i))) for i in range(10))
        assert len(reports) == 1
        assert reports[0].startswith("disk full: cannot write ")

        for _ in range(5):  # within the 10 s window: counted, not reported
            clock.now += 1
            sink.flush()
        assert sink.write_errors == 6
        assert len(reports) == 1

        clock.now += 10
        sink.flush()
        assert sink.write_errors == 7
        assert len(reports) == 2
        assert reports[1].startswith("disk full: ")
        assert reports[1].endswith("(5 similar suppressed)")

        os.close(swap_fd(sink, good))  # space is back
        sink.write([rec(10)])
        sink.flush()
        assert sink.written == 11
        assert sink.pending_bytes == 0
        assert reports[-1].endswith(" again after 7 failed attempts")
        sink.close()
        assert read_ids(tmp_path / FILE_NAME) == list(range(11))
        assert sink.dropped == 0

    def test_overflow_drops_oldest_whole_lines(self, tmp_path, reports, reporter):
        newest = sum(len(encode_line(rec(i))) for i in range(15, 25))
        sink = JsonlFileSink(tmp_path, max_pending=newest, report=reporter)
        sink.open()
        good = swap_fd(sink, os.open("/dev/full", os.O_WRONLY))
        for i in range(25):
            sink.write([rec(i)])
        assert sink.dropped == 15
        assert sink.pending_lines == 10
        assert sink.pending_bytes == newest
        assert any("dropped" in message for message in reports)
        os.close(swap_fd(sink, good))
        sink.close()
        assert read_ids(tmp_path / FILE_NAME) == list(range(15, 25))
        assert sink.written + sink.dropped == 25

    def test_overflow_before_open(self, tmp_path):
        line_size = len(encode_line(rec(0)))
        sink = JsonlFileSink(tmp_path, max_pending=3 * line_size)
        sink.write(rec(i) for i in range(5))
        assert sink.dropped == 2
        sink.open()
        sink.close()
        assert read_ids(tmp_path / FILE_NAME) == [2, 3, 4]

    def test_overflow_flushes_first_when_disk_works(self, tmp_path):
        line_size = len(encode_line(rec(0)))
        sink = JsonlFileSink(tmp_path, max_pending=3 * line_size)
        sink.open()
        sink.write(rec(i) for i in range(5))
        sink.write(rec(i) for i in range(5, 8))
        assert sink.dropped == 0
        sink.close()
        assert read_ids(tmp_path / FILE_NAME) == list(range(8))

    def test_close_while_full_counts_dropped(self, tmp_path, reports, reporter):
        sink = JsonlFileSink(tmp_path, report=reporter)
        sink.open()
        good = swap_fd(sink, os.open("/dev/full", os.O_WRONLY))
        sink.write(rec(i) for i in range(4))
        sink.close()  # must not raise
        os.close(good)
        assert sink.dropped == 4
        assert sink.written == 0
        assert "lost" in reports[-1]

    def test_partial_write_finishes_the_line(self, tmp_path, monkeypatch):
        """A write cut short mid-line is completed later, and that line is never dropped."""
        line_size = len(encode_line(rec(0)))
        sink = JsonlFileSink(tmp_path, max_pending=3 * line_size)
        sink.open()
        real_write = os.write
        budget = [line_size + 10]  # one line and a bit, then the disk is full

        def short_write(fd, data):
            if budget[0] <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            count = real_write(fd, bytes(data[: budget[0]]))
            budget[0] -= count
            return count

        monkeypatch.setattr(os, "write", short_write)
        sink.write(rec(i) for i in range(3))
        sink.flush()
        assert sink.written == 1
        assert sink.write_errors == 1
        assert sink._head_done == 10
        # Overflow while the head is half written: the head survives.
        sink.write(rec(i) for i in range(3, 6))
        assert sink.dropped == 2
        budget[0] = 10**9  # space is back
        sink.flush()
        monkeypatch.undo()
        sink.close()
        assert read_ids(tmp_path / FILE_NAME) == [0, 1, 4, 5]
        assert sink.written + sink.dropped == 6

    def test_real_tiny_filesystem(self, tiny_fs, reports, reporter):
        directory = tiny_fs / "logs"
        sink = JsonlFileSink(directory, report=reporter)
        sink.open()
        total = 0
        while sink.write_errors == 0:
            sink.write(rec(total + i, message="z" * 300) for i in range(20))
            total += 20
            sink.flush()
            assert total < 10_000, "the 64 KiB filesystem never filled up"
        assert sink.pending_lines > 0
        assert reports[0].startswith("disk full")
        written_while_full = sink.written
        sink.flush()
        assert sink.written == written_while_full
        remount(tiny_fs, "size=4m")  # space returns
        sink.write(rec(total + i) for i in range(5))
        total += 5
        sink.close()
        assert sink.written == total
        assert read_ids(directory / FILE_NAME) == list(range(total))

    def test_rotation_into_a_full_disk(self, tiny_fs):
        directory = tiny_fs / "logs"
        sink = JsonlFileSink(directory, max_bytes=8_000, backups=20)
        sink.open()
        for i in range(400):
            sink.write([rec(i, message=uuid.uuid4().hex * 4)])
            if i % 7 == 0:
                sink.flush()
        sink.flush()
        assert sink.write_errors > 0
        for path in rotated_paths(directory)[:-1]:
            read_ids(path)  # rotated files hold whole lines even while the disk is full
        remount(tiny_fs, "size=8m")
        sink.close()
        ids = all_ids(directory)
        assert ids == list(range(400))
        assert sink.written == 400


class TestSync:
    """sync() flushes and fsyncs; errors are reported, not raised."""

    def test_sync_writes(self, tmp_path):
        sink = JsonlFileSink(tmp_path)
        sink.open()
        sink.write([rec(0)])
        sink.sync()
        assert read_ids(tmp_path / FILE_NAME) == [0]
        sink.close()

    def test_fsync_error_reported(self, tmp_path, reports, monkeypatch, reporter):
        sink = JsonlFileSink(tmp_path, report=reporter)
        sink.open()

        def broken_fsync(_fd):
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(os, "fsync", broken_fsync)
        sink.write([rec(0)])
        sink.sync()
        monkeypatch.undo()
        assert sink.write_errors == 1
        assert reports[0].startswith("I/O error: cannot fsync")
        sink.close()

    def test_broken_reporter_is_ignored(self, tmp_path):
        class Exploding(Reporter):
            def write(self, line):
                raise RuntimeError(line)

        sink = JsonlFileSink(tmp_path, report=Exploding())
        sink.open()
        good = swap_fd(sink, os.open("/dev/full", os.O_WRONLY))
        sink.write([rec(0)])
        sink.flush()
        os.close(swap_fd(sink, good))
        sink.close()
        assert sink.write_errors == 1


class TestChunks:
    """A batch queued as one chunk (``write_chunk``) is written as its lines would be."""

    @settings(
        max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        batches=st.lists(st.lists(st.integers(0, 120), min_size=1, max_size=12), max_size=12),
        budgets=st.lists(st.integers(0, 700), max_size=8),
        max_bytes=st.sampled_from([0, 300, 1_000, 5_000]),
    )
    def test_short_writes_and_rotation_keep_every_line_whole(
        self, tmp_path_factory, batches, budgets, max_bytes
    ):
        """Writes cut short anywhere, rotation anywhere: every line, in order, whole."""
        directory = tmp_path_factory.mktemp("chunks")
        sink = JsonlFileSink(directory, max_bytes=max_bytes, backups=10_000)
        sink.open()
        real_write = os.write
        left = list(budgets)

        def short_write(fd, data):
            """The next budget's bytes at most; ENOSPC once it is spent; then unlimited."""
            if not left:
                return real_write(fd, data)
            budget = left.pop(0)
            if budget == 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, bytes(data[:budget]))

        n = 0
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(os, "write", short_write)
            for sizes in batches:
                lines = [
                    encode_line(rec(n + k, message="m" * size)) for k, size in enumerate(sizes)
                ]
                sink.write_chunk(b"".join(lines), len(lines))
                n += len(lines)
                sink.flush()
                assert sink.written + sink.pending_lines == n
        sink.close()
        assert sink.written == n
        assert sink.dropped == 0
        assert all_ids(directory) == list(range(n))  # each file whole lines (read_ids parses each)
        if max_bytes:
            for path in rotated_paths(directory)[:-1]:
                assert path.stat().st_size <= max(max_bytes, 700)

    def test_overflow_drops_the_oldest_lines_inside_a_chunk(self, tmp_path):
        line_size = len(encode_line(rec(0)))
        sink = JsonlFileSink(tmp_path, max_pending=4 * line_size)
        lines = [encode_line(rec(i)) for i in range(7)]
        sink.write_chunk(b"".join(lines), 7)  # not open yet: nothing can be written
        assert sink.dropped == 3
        assert sink.pending_lines == 4
        assert sink.pending_bytes == 4 * line_size
        sink.open()
        sink.close()
        assert read_ids(tmp_path / FILE_NAME) == [3, 4, 5, 6]
