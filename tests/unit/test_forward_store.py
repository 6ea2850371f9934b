"""The forwarder's side of the store: cursor, batches, rotation, torn and corrupt lines."""

import time

import pytest

from netlog.forward.failures import FailureLog
from netlog.forward.forwarder import Backoff
from netlog.forward.positions import Position, PositionsFile, positions_path, unshipped
from netlog.forward.reader import StoreReader
from netlog.record import Record, new_id
from netlog.sinks.encode import encode_line
from netlog.store.writer import FILE_NAME, JsonlFileSink, rotated_paths


def line(i, size=100):
    now = time.time()
    record = Record(now, now, "info", "app", f"m{i} " + "x" * size, {"i": i}, None, "h:1", "json")
    return encode_line(record, new_id(now))


def read_all(reader):
    """Every batch until caught up: (ids, batches)."""
    ids, batches = [], []
    while (batch := reader.read()) is not None:
        batches.append(batch)
        ids += [item.id for item in batch.lines]
    return ids, batches


def ids_of(lines):
    return [line_id_of(item) for item in lines]


def line_id_of(raw):
    return raw[-29:-3].decode()


@pytest.fixture
def sink(tmp_path):
    store = JsonlFileSink(tmp_path, max_bytes=2000, backups=1000)
    store.open()
    yield store
    store.close()


def write(sink, lines):
    sink.write_lines(lines)
    sink.flush()


class TestReader:
    """Reading stored lines in batches from a position."""

    def test_every_line_once_in_order_across_rotations(self, sink, tmp_path):
        """Lines spread over many rotated files come back once each, oldest first."""
        lines = [line(i) for i in range(100)]
        write(sink, lines)
        assert len(rotated_paths(tmp_path)) > 5
        reader = StoreReader(tmp_path, None, max_count=7, max_bytes=10_000)
        ids, batches = read_all(reader)
        assert ids == ids_of(lines)
        assert all(len(b.lines) <= 7 for b in batches)
        assert reader.behind() == 0

    def test_batch_bounded_in_bytes_a_longer_line_taken_whole(self, sink, tmp_path):
        """max_bytes cuts batches at whole lines; one line longer than that is one batch."""
        lines = [line(0), line(1, size=5000), line(2)]
        write(sink, lines)
        reader = StoreReader(tmp_path, None, max_count=100, max_bytes=300)
        ids, batches = read_all(reader)
        assert ids == ids_of(lines)
        assert [len(b.lines) for b in batches] == [1, 1, 1]
        assert batches[1].lines[0].line == lines[1][:-1]

    def test_rotation_while_reading(self, sink, tmp_path):
        """A rename between batches: the old file is finished first, then the new one."""
        first = [line(i) for i in range(10)]
        write(sink, first)
        reader = StoreReader(tmp_path, None, max_count=4)
        got = [item.id for item in reader.read().lines]
        more = [line(i) for i in range(10, 60)]
        write(sink, more)  # rotates the file the reader has open, several times
        ids, _ = read_all(reader)
        assert got + ids == ids_of(first + more)

    def test_live_file_read_to_its_last_complete_line(self, tmp_path):
        """A line still being written (no newline yet) waits; completed, it comes once."""
        path = tmp_path / FILE_NAME
        whole, torn = line(0), line(1)
        path.write_bytes(whole + torn[:40])
        reader = StoreReader(tmp_path, None)
        ids, _ = read_all(reader)
        assert ids == ids_of([whole])
        with path.open("ab") as f:
            f.write(torn[40:])
        ids, _ = read_all(reader)
        assert ids == ids_of([torn])

    def test_corrupt_lines_skipped_and_counted_never_shipped(self, tmp_path):
        """Not JSON, no id, a torn line glued to the next: skipped, counted; the rest ship."""
        good = [line(i) for i in range(3)]
        glued = line(9)[:50] + good[2]  # a torn line the next record was appended to
        data = good[0] + b"not json at all\n" + b'{"no":"id"}\n' + good[1] + glued
        (tmp_path / FILE_NAME).write_bytes(data)
        reader = StoreReader(tmp_path, None)
        ids, batches = read_all(reader)
        assert ids == ids_of(good[:2])
        assert reader.corrupt == 3
        assert sum(b.corrupt for b in batches) == 3
        assert all(item.line.startswith(b"{") for b in batches for item in b.lines)


class TestPosition:
    """The cursor survives restarts, renames and deletions."""

    def test_resume_from_saved_position_after_rotation(self, sink, tmp_path):
        """Saved on records.jsonl, which is then rotated: found again under its new name."""
        first = [line(i) for i in range(5)]
        write(sink, first)
        reader = StoreReader(tmp_path, None, max_count=3)
        batch = reader.read()
        reader.close()
        store = PositionsFile(positions_path(tmp_path, "nats"))
        store.save(batch.position, force=True)
        more = [line(i) for i in range(5, 40)]
        write(sink, more)
        saved = PositionsFile(positions_path(tmp_path, "nats")).load()
        assert saved == batch.position
        resumed = StoreReader(tmp_path, saved)
        ids, _ = read_all(resumed)
        assert ids == ids_of((first + more)[3:])

    def test_saved_file_gone_starts_at_oldest_left(self, sink, tmp_path):
        """The cursor's file was deleted: start at the oldest file left, say so, count it."""
        write(sink, [line(i) for i in range(60)])
        files = rotated_paths(tmp_path)
        st = files[1].stat()
        position = Position(st.st_dev, st.st_ino, "", 10, files[1].name)
        files[0].unlink()
        files[1].unlink()
        said = []
        reader = StoreReader(tmp_path, position, report=said.append)
        batch = reader.read()
        assert batch.position.name == files[2].name
        assert reader.lost_files == 1
        assert len(said) == 1

    def test_reused_inode_is_not_the_saved_file(self, tmp_path):
        """Same device and inode, another first line: not the file of the position."""
        path = tmp_path / FILE_NAME
        path.write_bytes(line(0) + line(1))
        st = path.stat()
        position = Position(st.st_dev, st.st_ino, "0" * 24, len(line(0)), FILE_NAME)
        reader = StoreReader(tmp_path, position, report=lambda _m: None)
        ids, _ = read_all(reader)
        assert len(ids) == 2  # read from the start, not from the stale offset

    def test_save_is_rate_limited_but_forced_at_exit(self, tmp_path):
        """At most one write per interval while shipping; force writes anyway."""
        now = [0.0]
        store = PositionsFile(tmp_path / "p.json", interval=1.0, clock=lambda: now[0])
        assert store.save(Position(1, 2, "h", 10, FILE_NAME))
        assert not store.save(Position(1, 2, "h", 20, FILE_NAME))
        assert store.save(Position(1, 2, "h", 30, FILE_NAME), force=True)
        now[0] = 5.0
        assert store.save(Position(1, 2, "h", 40, FILE_NAME))
        assert PositionsFile(tmp_path / "p.json").load() == Position(1, 2, "h", 40, FILE_NAME)
        assert [p.name for p in tmp_path.iterdir()] == ["p.json"]

    def test_unreadable_positions_file_is_no_position(self, tmp_path):
        (tmp_path / "p.json").write_bytes(b"{torn")
        assert PositionsFile(tmp_path / "p.json").load() is None


class TestRetention:
    """The writer keeps rotated files a destination has not shipped, up to the backlog bound."""

    def save_at(self, tmp_path, path, offset):
        st = path.stat()
        PositionsFile(positions_path(tmp_path, "nats")).save(
            Position(st.st_dev, st.st_ino, "", offset, path.name), force=True
        )

    def test_unshipped_answers_by_cursor(self, sink, tmp_path):
        """Files before the cursor's are shipped; its own (unless at its end) and later are not."""
        write(sink, [line(i) for i in range(60)])
        files = rotated_paths(tmp_path)
        check = unshipped(tmp_path, ["nats"])
        assert all(check(path) for path in files[:-1])  # no position yet: nothing shipped
        self.save_at(tmp_path, files[2], 0)
        assert [check(path) for path in files[:4]] == [False, False, True, True]
        self.save_at(tmp_path, files[2], files[2].stat().st_size)
        assert not check(files[2])

    def test_unshipped_backups_kept_past_backups_until_the_bound(self, tmp_path):
        """backups=2, nothing shipped: files are kept until the store passes retain_limit."""
        said = []
        store = JsonlFileSink(
            tmp_path, max_bytes=2000, backups=2, report=lambda m, _k=None: said.append(m)
        )
        store.retain = unshipped(tmp_path, ["nats"])
        store.retain_limit = 12_000
        store.open()
        try:
            for i in range(200):
                write(store, [line(i)])
            total = sum(p.stat().st_size for p in rotated_paths(tmp_path))
            assert len(rotated_paths(tmp_path)) > 3  # more than --backups kept
            assert total <= 12_000 + 2 * 2000
            assert store.forward_unshipped_deleted > 0
            assert any("before it was forwarded" in m for m in said)
        finally:
            store.close()

    def test_shipped_backups_go_at_backups(self, tmp_path):
        """Once the cursor is past them, backups beyond --backups are deleted as before."""
        store = JsonlFileSink(tmp_path, max_bytes=2000, backups=2)
        store.retain = unshipped(tmp_path, ["nats"])
        store.retain_limit = 1 << 30
        store.open()
        try:
            for i in range(100):
                write(store, [line(i)])
                live = tmp_path / FILE_NAME
                self.save_at(tmp_path, live, live.stat().st_size)
            assert len(rotated_paths(tmp_path)) <= 3
            assert store.forward_unshipped_deleted == 0
        finally:
            store.close()


class TestFailures:
    """Refusals: said once per kind until shipping works again; backoff bounded, jittered."""

    def test_each_kind_said_once_until_success(self):
        said = []
        log = FailureLog("nats", said.append)
        for _ in range(50):
            log.failed("unreachable", "connection refused", 1.0)
        log.failed("credentials", "Authorization Violation", 1.0)
        assert len(said) == 2
        assert log.counts == {"unreachable": 50, "credentials": 1}
        log.succeeded()
        assert "shipping again after 51 failures" in said[-1]
        log.failed("unreachable", "again", 1.0)
        assert len(said) == 4

    def test_backoff_doubles_to_its_limit_with_jitter(self):
        backoff = Backoff(first=0.5, limit=30.0)
        delays = [backoff.delay() for _ in range(12)]
        assert 0.25 <= delays[0] <= 0.5
        assert all(15.0 <= d <= 30.0 for d in delays[7:])
        backoff.reset()
        assert backoff.delay() <= 0.5
