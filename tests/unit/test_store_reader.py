"""The store's reading side on real files in tmp_path: whole lines, rotation, records back."""

import json
import os

import pytest
from recordkit import rec

from netlog.sinks.encode import encode_line
from netlog.store.lines import BLOCK, complete_end
from netlog.store.reader import (
    Follower,
    close_files,
    last_lines,
    lines_backwards,
    lines_forwards,
    open_files,
)
from netlog.store.records import record_from_json
from netlog.store.writer import FILE_NAME, JsonlFileSink, rotated_paths


def polled(follower):
    return [json.loads(line)["fields"]["i"] for line in follower.poll() if line.strip()]


class TestCompleteEnd:
    """complete_end: the offset past the last newline, searched backwards block by block."""

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            (b"", 0),
            (b"no newline", 0),
            (b"a\n", 2),
            (b"a\nb\n", 4),
            (b"a\nhalf", 2),
            (b"\n", 1),
            (b"a\n" + b"x" * (3 * BLOCK), 2),  # the newline is several blocks back
            (b"x" * (BLOCK - 1) + b"\n" + b"y" * 10, BLOCK),  # at a block's edge
        ],
    )
    def test_ends(self, tmp_path, data, expected):
        path = tmp_path / "f"
        path.write_bytes(data)
        fd = os.open(path, os.O_RDONLY)
        try:
            assert complete_end(fd) == expected
            assert complete_end(fd, len(data)) == expected
        finally:
            os.close(fd)

    def test_size_bounds_the_search(self, tmp_path):
        path = tmp_path / "f"
        path.write_bytes(b"a\nb\nc")
        fd = os.open(path, os.O_RDONLY)
        try:
            assert complete_end(fd, 3) == 2
            assert complete_end(fd, 4) == 4
            assert complete_end(fd, 1) == 0
        finally:
            os.close(fd)


def number(line):
    return json.loads(line)["fields"]["i"] if line.strip() else None


class TestReadingLines:
    """lines_forwards, lines_backwards and last_lines over a log dir's files."""

    def test_forwards_and_backwards_agree(self, tmp_path):
        path = tmp_path / "f"
        lines = [b"x" * (i * 7919 % (2 * BLOCK)) + str(i).encode() for i in range(40)]
        path.write_bytes(b"\n".join(lines) + b"\n")
        fd = os.open(path, os.O_RDONLY)
        try:
            end = complete_end(fd)
            assert list(lines_forwards(fd, 0, end)) == lines
            backwards = list(lines_backwards(fd, end))
            assert backwards[0] == b""  # after the last newline
            assert backwards[1:] == list(reversed(lines))
        finally:
            os.close(fd)

    def test_last_lines_across_rotation(self, tmp_path):
        sink = JsonlFileSink(tmp_path, max_bytes=1000, backups=10)
        sink.open()
        sink.write([rec(i) for i in range(40)])
        sink.flush()
        sink.close()
        assert len(rotated_paths(tmp_path)) >= 3
        files = open_files(rotated_paths(tmp_path), tmp_path / FILE_NAME, log_dir=True)
        try:
            assert [i for _, i in last_lines(files, 5, number)] == list(range(35, 40))
            assert [i for _, i in last_lines(files, None, number)] == list(range(40))
            assert last_lines(files, 0, number) == []
        finally:
            close_files(files)

    def test_backups_of_an_earlier_version_then_new_ones(self, tmp_path):
        """Issue 15 item 12: old ``.N`` backups (``.1`` newest) come before sequence numbers."""
        for name, ids in [("records.jsonl.2", [0, 1]), ("records.jsonl.1", [2, 3])]:
            (tmp_path / name).write_bytes(b"".join(encode_line(rec(i)) for i in ids))
        (tmp_path / FILE_NAME).write_bytes(encode_line(rec(4)))
        sink = JsonlFileSink(tmp_path, max_bytes=600, backups=100)
        sink.open()
        follower = Follower(tmp_path / FILE_NAME)
        assert polled(follower) == [4]
        for i in range(5, 40):
            sink.write([rec(i)])
            sink.flush()
        sink.close()
        assert polled(follower) == list(range(5, 40))
        follower.close()
        assert [p.name for p in rotated_paths(tmp_path)][:2] == [
            "records.jsonl.2",
            "records.jsonl.1",
        ]
        files = open_files(rotated_paths(tmp_path), tmp_path / FILE_NAME, log_dir=True)
        try:
            assert [i for _, i in last_lines(files, None, number)] == list(range(40))
            assert [i for _, i in last_lines(files, 3, number)] == [37, 38, 39]
        finally:
            close_files(files)


class TestRecordFromJson:
    """Stored lines back into records."""

    def test_record_from_json_round_trip(self):
        record = rec(3, exc="Traceback\n  boom", fields={"user": "ada"})
        assert record_from_json(json.loads(encode_line(record))) == record

    def test_record_from_foreign_json(self):
        record = record_from_json({"message": 5, "level": None})
        assert record.message == "5"
        assert record.level == "null"
        assert record.fields == {}


class TestFollower:
    """Follower.poll: appends, half lines, rotation and truncation."""

    def lines(self, follower):
        return [json.loads(line)["fields"]["i"] for line in follower.poll() if line.strip()]

    def test_appends_and_half_lines(self, tmp_path):
        path = tmp_path / FILE_NAME
        path.write_bytes(b"")
        follower = Follower(path)
        assert follower.poll() == []
        with path.open("ab") as handle:
            handle.write(b'{"fields": {"i": 1}}\n{"fields": {"i"')
            handle.flush()
            assert self.lines(follower) == [1]
            handle.write(b": 2}}\n")
        assert self.lines(follower) == [2]
        follower.close()

    def test_rotation_reads_the_old_file_to_its_end(self, tmp_path):
        sink = JsonlFileSink(tmp_path, max_bytes=600, backups=5)
        sink.open()
        follower = Follower(tmp_path / FILE_NAME)
        seen = []
        for i in range(30):
            sink.write([rec(i)])
            sink.flush()  # one rotation every few records
            if i % 2:
                seen += self.lines(follower)
        seen += self.lines(follower)
        sink.close()
        follower.close()
        assert seen == list(range(30))

    def test_two_rotations_between_polls(self, tmp_path):
        sink = JsonlFileSink(tmp_path, max_bytes=600, backups=10)
        sink.open()
        sink.write([rec(0)])
        sink.flush()
        follower = Follower(tmp_path / FILE_NAME)
        assert self.lines(follower) == [0]
        for i in range(1, 12):  # several rotations, no poll
            sink.write([rec(i)])
            sink.flush()
        assert len(list(tmp_path.glob(FILE_NAME + ".*"))) >= 3
        assert self.lines(follower) == list(range(1, 12))
        sink.close()
        follower.close()

    def test_truncation_starts_again(self, tmp_path):
        path = tmp_path / FILE_NAME
        path.write_bytes(b'{"fields": {"i": 1}}\n{"fields": {"i": 2}}\n')
        follower = Follower(path)
        assert self.lines(follower) == [1, 2]
        with path.open("r+b") as handle:
            handle.truncate(0)
            handle.write(b'{"fields": {"i": 3}}\n')
        assert self.lines(follower) == [3]
        follower.close()

    def test_file_appears_later(self, tmp_path):
        path = tmp_path / "later" / FILE_NAME
        follower = Follower(path)
        assert follower.poll() == []
        path.parent.mkdir()
        path.write_bytes(b'{"fields": {"i": 9}}\n')
        assert self.lines(follower) == [9]
        follower.close()

    def test_deleted_file_replaced(self, tmp_path):
        path = tmp_path / FILE_NAME
        path.write_bytes(b'{"fields": {"i": 1}}\n')
        follower = Follower(path)
        assert self.lines(follower) == [1]
        path.unlink()
        assert follower.poll() == []
        path.write_bytes(b'{"fields": {"i": 2}}\n')
        assert self.lines(follower) == [2]
        follower.close()
