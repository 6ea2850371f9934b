"""`netlog tail -f` as a real process: rotation while following, signals, pipes."""

import inspect
import json
import logging
import logging.handlers
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from netlog.record import Record
from netlog.store.writer import FILE_NAME, JsonlFileSink, rotated_paths
from netlogproc import ROOT, wait_for


def rec(i, message=None):
    return Record(
        1_700_000_000.0 + i,
        1_700_000_000.5 + i,
        "info",
        "app",
        f"record {i}" if message is None else message,
        {"i": i},
        None,
        "127.0.0.1:1",
        "json",
    )


def on_disk(directory):
    return sum(len(path.read_bytes().splitlines()) for path in rotated_paths(directory))


class Tail:
    """A running `netlog tail`, its stdout read line by line on a thread."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "netlog.cli", "tail", *map(str, args)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.decode())

    def take(self, count, timeout=10.0):
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"got {len(got)} of {count} lines: {got}")
            try:
                got.append(self.lines.get(timeout=left))
            except queue.Empty:
                continue
        return got

    def ids(self, count, timeout=10.0):
        return [json.loads(line)["fields"]["i"] for line in self.take(count, timeout)]

    def nothing_more(self, wait=0.6):
        time.sleep(wait)  # a negative check: nothing may arrive in this window
        assert self.lines.empty(), self.lines.get()

    def stop(self, signum=signal.SIGTERM, timeout=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            status = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.reader.join(5)
        return status, self.proc.stderr.read().decode()


@pytest.fixture
def tails():
    started = []

    def start(*args):
        tail = Tail(*args)
        started.append(tail)
        return tail

    yield start
    for tail in started:
        if tail.proc.poll() is None:
            tail.proc.kill()
        tail.proc.wait(timeout=5)
        tail.proc.stdout.close()
        tail.proc.stderr.close()


class TestFollow:
    """-f keeps printing across rotation and waits for whole lines."""

    def test_rotation_while_following(self, tmp_path, tails):
        sink = JsonlFileSink(tmp_path, max_bytes=1500, backups=3)
        sink.open()
        sink.write([rec(i) for i in range(5)])
        sink.flush()
        tail = tails(tmp_path, "-f", "-n", "3", "--json")
        assert tail.ids(3) == [2, 3, 4]
        for i in range(5, 40):  # several rotations, a flush per record
            sink.write([rec(i)])
            sink.flush()
            if i % 10 == 0:
                time.sleep(0.3)  # let some polls fall between rotations
        assert len(list(tmp_path.glob(FILE_NAME + ".*"))) == 3
        assert tail.ids(35) == list(range(5, 40))
        sink.close()
        # A line still being written is held until its newline arrives.
        with (tmp_path / FILE_NAME).open("ab") as handle:
            handle.write(b'{"message": "half", "fields": {"i": 40}')
            handle.flush()
            tail.nothing_more()
            handle.write(b"}\n")
        assert tail.ids(1) == [40]
        status, err = tail.stop()
        assert (status, err) == (0, "")

    def test_live_server_with_small_max_bytes(self, netlog_factory, tails):
        server = netlog_factory("--max-bytes", "2000", "--backups", "20", "--echo-port", "-1")
        tail = tails(server.log_dir, "-f", "-n", "all", "--level", "warning", "--logger", "svc")
        handler = logging.handlers.SocketHandler(*server.address("log_tcp"))
        logger = logging.getLogger("svc.worker")
        logger.handlers[:] = [handler]
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        try:
            for i in range(30):
                logger.info("quiet %d", i)
                logger.warning("loud %d", i, extra={"n": i})
                if i % 10 == 9:
                    time.sleep(0.2)
        finally:
            handler.close()
        # Every record is on disk, spread over several rotated files.
        wait_for(lambda: on_disk(server.log_dir) == 60, what="60 records on disk")
        assert len(rotated_paths(server.log_dir)) >= 4
        lines = tail.take(30)
        assert [line.split("loud ", 1)[1].split()[0] for line in lines] == [
            str(i) for i in range(30)
        ]
        assert all("[warning" in line and "[svc.worker]" in line for line in lines)
        tail.nothing_more(0.3)
        assert tail.stop() == (0, "")

    def test_waits_for_a_log_dir_that_does_not_exist_yet(self, tmp_path, tails):
        tail = tails(tmp_path / "later", "-f", "--json")
        # Only once it says it waits does the dir appear (stderr has a timeout: the test's).
        waiting = tail.proc.stderr.readline().decode()
        assert waiting == f"netlog tail: waiting for {tmp_path / 'later' / FILE_NAME} to appear\n"
        sink = JsonlFileSink(tmp_path / "later")
        sink.open()
        sink.write([rec(1)])
        sink.flush()
        sink.close()
        assert tail.ids(1) == [1]
        assert tail.stop() == (0, "")

    def test_ctrl_c_exits_zero_quietly(self, tmp_path, tails):
        sink = JsonlFileSink(tmp_path)
        sink.open()
        sink.write([rec(1)])
        sink.close()
        tail = tails(tmp_path, "-f", "--json")
        assert tail.ids(1) == [1]
        assert tail.stop(signal.SIGINT) == (0, "")

    def test_bad_lines_are_counted_at_the_end(self, tmp_path, tails):
        (tmp_path / FILE_NAME).write_bytes(b"oops\n")
        tail = tails(tmp_path, "-f", "--json")
        time.sleep(0.3)
        with (tmp_path / FILE_NAME).open("ab") as handle:
            handle.write(b'{"fields": {"i": 2}}\nalso bad\n')
        assert tail.ids(1) == [2]
        status, err = tail.stop()
        assert status == 0
        assert err == "netlog tail: skipped 2 lines that were not JSON records\n"

    def test_one_bad_line_in_the_singular(self, tmp_path, tails):
        (tmp_path / FILE_NAME).write_bytes(b"oops\n")
        tail = tails(tmp_path, "-f", "--json")
        time.sleep(0.3)
        with (tmp_path / FILE_NAME).open("ab") as handle:
            handle.write(b'{"fields": {"i": 3}}\n')
        assert tail.ids(1) == [3]
        assert tail.stop() == (0, "netlog tail: skipped 1 line that was not a JSON record\n")

    def test_log_dir_option_and_source_from_a_live_server(self, netlog_factory, tails):
        """`tail -f --log-dir DIR` as serve spells it; the source short, or hidden by --src off."""
        server = netlog_factory()
        short = tails("-f", "--log-dir", server.log_dir, "--color", "never")
        hidden = tails("-f", "--log-dir", server.log_dir, "--src", "off", "--color", "never")
        handler = logging.handlers.SocketHandler(*server.address("log_tcp"))
        logger = logging.getLogger("billing")
        logger.handlers[:] = [handler]
        logger.propagate = False
        try:
            line = inspect.currentframe().f_lineno + 1
            logger.warning("charged", extra={"amount": 12.5, "user": "ada"})
        finally:
            handler.close()
            logger.handlers[:] = []
        function = "test_log_dir_option_and_source_from_a_live_server"
        [printed] = short.take(1)
        assert "_src" not in printed
        assert f"amount=12.5 user=ada test_tail_follow.py:{line} in {function} peer=" in printed
        [printed] = hidden.take(1)
        assert "amount=12.5 user=ada peer=" in printed
        assert "test_tail_follow.py" not in printed
        assert short.stop() == (0, "")
        assert hidden.stop() == (0, "")


class TestPipes:
    """`netlog tail | head`: the reader leaves, tail exits 0 without noise."""

    def test_reader_goes_away(self, tmp_path):
        sink = JsonlFileSink(tmp_path)
        sink.open()
        sink.write([rec(i, "x" * 200) for i in range(5000)])
        sink.close()
        proc = subprocess.Popen(
            [sys.executable, "-m", "netlog.cli", "tail", str(tmp_path), "-n", "all"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert proc.stdout.readline()
            proc.stdout.close()
            assert proc.wait(timeout=20) == 0
            assert proc.stderr.read() == b""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
            proc.stderr.close()
