"""Reliability, part 2: faults, signals, restarts and the disk (issue 6).

ARCHITECTURE.md "Shutdown" is the promise checked here: every record whose bytes
reached the process before the signal is on disk at exit, a record cut in
half is counted as dropped and never written half, and the file is only ever
appended to.
"""

import fcntl
import json
import logging
import random
import signal
import socket
import struct
import subprocess
import termios
import threading
import time

import pytest
from reliability_kit import (
    connect,
    cpu_seconds,
    frame,
    metric,
    parse_all,
    parse_lines,
    record_figure,
    remount,
    seq_frame,
    summary,
    tmpfs,
    wait_lines,
)

from netlog.client import SinkHandler
from netlog.settings import PORT_FLAGS
from netlogproc import ROOT, command, wait_for

LOG_ONLY = ("--echo-port", "-1", "--responder-port", "-1", "--http-port", "-1")


def unsent_bytes(sock: socket.socket) -> int:
    """Bytes the kernel has not yet had acknowledged by the peer (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


def seqs_by_conn(records: list[dict]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for record in records:
        out.setdefault(record["fields"]["conn"], []).append(record["fields"]["seq"])
    return out


class TestCutConnections:
    """Scenario 16: 50,000 records over 20 connections cut at random points."""

    def test_every_complete_frame_on_disk_no_torn_line(self, netlog_factory):
        server = netlog_factory(*LOG_ONLY)
        rng = random.Random(16)
        per_connection, connections = 2500, 20
        plans = []
        for conn in range(connections):
            frames = [seq_frame(conn, seq) for seq in range(per_connection)]
            ends = []
            position = 0
            for item in frames:
                position += len(item)
                ends.append(position)
            cut = rng.randrange(len(frames[0]), position)  # mid-frame, almost surely
            complete = sum(1 for end in ends if end <= cut)
            plans.append((b"".join(frames)[:cut], complete, conn % 2 == 1))

        def send(conn: int) -> None:
            data, _, reset = plans[conn]
            with connect(server.address("log_tcp"), timeout=30) as sock:
                sock.sendall(data)
                if reset:
                    # Once the server's kernel has everything (nothing left
                    # unacknowledged here), close abortively: RST, not FIN.
                    wait_for(lambda: unsent_bytes(sock) == 0, 30, what="the send queue to empty")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

        threads = [threading.Thread(target=send, args=(c,)) for c in range(connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        expected = sum(complete for _, complete, _ in plans)
        wait_lines(server.log_dir / "records.jsonl", expected, timeout=30)
        assert server.stop() == 0
        records = parse_lines(server.log_dir / "records.jsonl")  # no torn line
        got = seqs_by_conn(records)
        for conn, (_, complete, _) in enumerate(plans):
            assert got.get(conn, []) == list(range(complete)), f"connection {conn}"
        written, dropped, _ = summary(server.stderr())
        assert written == len(records)
        record_figure(
            "16",
            connections=connections,
            complete_frames=expected,
            written=written,
            closed_with_reset=connections // 2,
            truncated_counted=dropped,
        )


class TestRestartWithSinkHandler:
    """Scenario 17: the sink restarts while SinkHandler apps keep logging."""

    def test_apps_reconnect_nothing_lost(self, netlog_factory):
        first = netlog_factory(*LOG_ONLY, "--grace", "1")
        port = first.ports["log_tcp"]
        apps, per_app = 3, 1500
        handlers = [SinkHandler("127.0.0.1", port, close_timeout=20) for _ in range(apps)]
        started = threading.Event()

        def app(n: int) -> None:
            logger = logging.getLogger(f"rel.restart.{n}")
            logger.handlers[:] = [handlers[n]]
            logger.propagate = False
            logger.setLevel(logging.INFO)
            started.set()
            for seq in range(per_app):
                logger.info("app %d seq %d", n, seq, extra={"conn": n, "seq": seq})
                time.sleep(0.002)

        threads = [threading.Thread(target=app, args=(n,)) for n in range(apps)]
        for thread in threads:
            thread.start()
        started.wait(10)
        time.sleep(0.8)
        assert first.stop() == 0
        down_at = time.monotonic()
        time.sleep(0.3)  # the apps log on while no sink exists
        second = netlog_factory(
            *LOG_ONLY, "--log-tcp-port", str(port), "--log-dir", str(first.log_dir)
        )
        down_for = time.monotonic() - down_at
        for thread in threads:
            thread.join(60)
        for handler in handlers:
            handler.close()
        assert [h.queued for h in handlers] == [0] * apps
        assert [h.dropped for h in handlers] == [0] * apps
        assert second.stop() == 0
        records = parse_lines(first.log_dir / "records.jsonl")
        got = seqs_by_conn(records)
        duplicates = 0
        for n in range(apps):
            assert set(got[n]) == set(range(per_app)), f"app {n} lost records"
            duplicates += len(got[n]) - per_app
        record_figure(
            "17",
            apps=apps,
            records_per_app=per_app,
            sink_down_seconds=round(down_for, 2),
            lost=0,
            duplicates=duplicates,
            first_server=summary(first.stderr())[0],
            second_server=summary(second.stderr())[0],
        )


class Sender(threading.Thread):
    """Sends sequence-numbered frames until the connection fails."""

    BATCH = 20

    def __init__(self, address, conn: int) -> None:
        super().__init__()
        self.sock = connect(address, timeout=15)
        self.conn = conn
        self.acked = 0  # frames [0, acked) were taken by the kernel
        self.stop_flag = threading.Event()

    def run(self) -> None:
        seq = 0
        try:
            while not self.stop_flag.is_set():
                batch = b"".join(seq_frame(self.conn, s) for s in range(seq, seq + self.BATCH))
                self.sock.sendall(batch)
                seq += self.BATCH
                self.acked = seq
        except OSError:
            pass
        finally:
            self.sock.close()


class TestSignalDuringIngest:
    """Scenarios 20 and 22: SIGTERM or SIGINT while 8 senders stream records."""

    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
    def test_everything_received_before_the_signal_is_on_disk(self, netlog_factory, signum):
        server = netlog_factory(*LOG_ONLY)
        senders = [Sender(server.address("log_tcp"), conn) for conn in range(8)]
        for sender in senders:
            sender.start()
        wait_for(lambda: all(s.acked > 200 for s in senders), 30, what="all senders flowing")
        time.sleep(0.5)
        before_signal = [s.acked for s in senders]
        signalled = time.monotonic()
        server.send_signal(signum)
        status = server.proc.wait(timeout=30)
        took = time.monotonic() - signalled
        for sender in senders:
            sender.stop_flag.set()
        for sender in senders:
            sender.join(30)
        assert status == 0, server.stderr()
        assert took < 8.0, f"exit took {took:.1f}s"
        assert "Traceback" not in server.stderr()
        assert "KeyboardInterrupt" not in server.stderr()
        records = parse_all(server.log_dir)  # a fast drain can pass --max-bytes and rotate
        got = seqs_by_conn(records)
        on_disk = []
        for sender, acked in zip(senders, before_signal, strict=True):
            seqs = got.get(sender.conn, [])
            assert seqs == list(range(len(seqs))), f"sender {sender.conn}: gap or repeat"
            assert len(seqs) >= acked, (
                f"sender {sender.conn}: {acked} frames sent before the signal, {len(seqs)} on disk"
            )
            on_disk.append(len(seqs))
        written, dropped, bad = summary(server.stderr())
        assert written == len(records)
        assert bad == 0
        assert dropped <= len(senders)  # at most the frame each was in the middle of
        record_figure(
            "20" if signum == signal.SIGTERM else "22",
            signal=signal.Signals(signum).name,
            senders=8,
            sent_before_signal=sum(before_signal),
            on_disk=sum(on_disk),
            cut_frames_dropped=dropped,
            exit_seconds=round(took, 2),
        )


def test_half_line_at_shutdown_is_dropped_not_written(netlog_factory):
    """Scenario 21 for lines (test_logsink covers a half pickle frame)."""
    server = netlog_factory(*LOG_ONLY, "--grace", "0.5")
    with connect(server.address("log_tcp")) as sock:
        sock.sendall(b'{"event": "whole"}\n{"event": "cut in ha')
        wait_for(server.records, 10, what="the whole record")
        assert server.stop() == 0
    assert [r["message"] for r in server.records()] == ["whole"]
    assert summary(server.stderr())[1] == 1


class TestSigkill:
    """Scenario 23: SIGKILL, then a restart on the same log dir."""

    def test_at_most_a_flush_interval_lost_torn_tail_set_aside_file_appended(self, netlog_factory):
        flush_interval = 0.2
        first = netlog_factory(*LOG_ONLY, "--flush-interval", str(flush_interval))
        sent_at: list[float] = []
        with connect(first.address("log_tcp")) as sock:
            for seq in range(3000):
                sock.sendall(seq_frame(0, seq))
                sent_at.append(time.monotonic())
                time.sleep(0.0005)
            killed_at = time.monotonic()
            first.proc.kill()
            first.proc.wait(10)
        path = first.log_dir / "records.jsonl"
        before = path.read_bytes()
        records = parse_lines(path)
        seqs = [r["fields"]["seq"] for r in records]
        assert seqs == list(range(len(seqs))), "gap or repeat"
        lost = len(sent_at) - len(seqs)
        lost_window = killed_at - sent_at[len(seqs)] if lost else 0.0
        assert lost_window <= flush_interval + 0.5, f"lost {lost_window:.2f}s of records"

        # A crash in the middle of a write leaves a torn line: simulate one.
        torn = b'{"ts": "2024-01-01T00:00:00.000000Z", "message": "torn in ha'
        with path.open("ab") as handle:
            handle.write(torn)
        second = netlog_factory(
            *LOG_ONLY, "--log-dir", str(first.log_dir), "--flush-interval", str(flush_interval)
        )
        with connect(second.address("log_tcp")) as sock:
            sock.sendall(seq_frame(1, 0))
        wait_lines(path, len(records) + 1)
        assert second.stop() == 0
        after = path.read_bytes()
        assert after.startswith(before), "the file was not appended to"
        parse_lines(path)  # every line whole
        (torn_file,) = first.log_dir.glob("records.torn.*")
        assert torn_file.read_bytes() == torn
        assert "torn line" in second.stderr()
        record_figure(
            "23",
            flush_interval=flush_interval,
            sent=len(sent_at),
            on_disk_after_kill=len(seqs),
            lost=lost,
            lost_window_ms=round(lost_window * 1000, 1),
            torn_bytes_set_aside=len(torn),
        )


class TestDiskFull:
    """Scenario 24: a full disk: reported rate-limited, counted, no crash, resumes."""

    def test_full_tmpfs_then_space_returns(self, netlog_factory, tmp_path):
        with tmpfs(tmp_path / "small", "size=256k") as directory:
            server = netlog_factory(
                "--echo-port", "-1", "--responder-port", "-1", "--log-dir", str(directory)
            )
            pad = "p" * 200
            total = 3000
            with connect(server.address("log_tcp")) as sock:
                for seq in range(total):
                    sock.sendall(
                        frame({"msg": f"s{seq} {pad}", "levelno": 20, "conn": 0, "seq": seq})
                    )
            wait_for(lambda: "disk full" in server.stderr(), 10, what="the disk-full report")
            time.sleep(0.5)
            before = cpu_seconds(server.pid)
            time.sleep(1.5)
            cpu = (cpu_seconds(server.pid) - before) / 1.5
            full_reports = server.stderr().count("disk full")
            assert server.proc.poll() is None
            assert full_reports == 1, server.stderr()
            assert cpu < 0.2, f"{cpu:.0%} CPU while the disk is full"
            on_disk_while_full = len(parse_lines_tolerant(directory / "records.jsonl"))
            assert on_disk_while_full < total
            write_errors = metric(server, "netlog_file_write_errors_total")
            assert write_errors >= 1
            remount(directory, "size=8m")
            wait_lines(directory / "records.jsonl", total, timeout=20)
            assert server.stop() == 0
            records = parse_lines(directory / "records.jsonl")
            assert [r["fields"]["seq"] for r in records] == list(range(total))
            err = server.stderr()
            assert "again" in err
            assert summary(err)[:2] == (total, 0)
        record_figure(
            "24",
            records=total,
            on_disk_while_full=on_disk_while_full,
            disk_full_reports=full_reports,
            write_errors_counted=write_errors,
            cpu_while_full=round(cpu, 3),
            resumed=True,
        )


def parse_lines_tolerant(path):
    """The complete lines of a file that may end mid-line (a full disk)."""
    data = path.read_bytes()
    return [json.loads(line) for line in data.split(b"\n")[:-1]]


def run_serve(log_dir, timeout=30):
    ephemeral = ["--host", "127.0.0.1"]
    for option in PORT_FLAGS:
        ephemeral += [option, "-1" if option == "--http-port" else "0"]
    return subprocess.run(
        command(*ephemeral, "--log-dir", str(log_dir)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class TestUnwritableLogDir:
    """Scenario 25: test_cli covers a path under a file; here a read-only mount and more."""

    def test_read_only_mount(self, tmp_path):
        with tmpfs(tmp_path / "ro", "size=64k", "ro") as directory:
            done = run_serve(directory)
        self.assert_one_line(done, str(directory))
        assert "read-only" in done.stderr.lower()
        record_figure("25", case="read-only mount", exit=done.returncode, line=done.stderr.strip())

    def test_records_file_is_a_directory(self, tmp_path):
        (tmp_path / "logs" / "records.jsonl").mkdir(parents=True)
        done = run_serve(tmp_path / "logs")
        self.assert_one_line(done, str(tmp_path / "logs"))
        record_figure("25", case="records.jsonl a directory", exit=done.returncode)

    @staticmethod
    def assert_one_line(done, path):
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert "log dir" in lines[0]
        assert path in lines[0]
