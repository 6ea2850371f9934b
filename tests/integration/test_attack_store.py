"""Issue 15, items 8-12: signals, the log dir and the store, tried as an attacker would.

Each test starts a real ``python -m servers``, does to it what an operator's
mistake or a hostile neighbour could (a stray signal, a deleted directory, a
second server, a full disk, settings that make rotation expensive) and checks
the promise that matters: every record that reached the process is on disk.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import time

import pytest
from reliability_kit import (
    connect,
    metric,
    parse_all,
    parse_lines,
    record_figure,
    seq_frame,
    summary,
    tmpfs,
    wait_lines,
)

from netlog.settings import PORT_FLAGS
from netlog.store.writer import FILE_NAME, rotated_paths
from netlogproc import ROOT, command, wait_for

NO_ECHO = ("--echo-port", "-1", "--responder-port", "-1", "--log-udp-port", "-1")
#: Long enough that nothing is flushed by the timer while a test runs.
NEVER_FLUSH = ("--flush-interval", "600")


def send_seq(server, first: int, count: int, conn: int = 0) -> None:
    """Send frames ``first .. first+count-1`` on one connection and close it."""
    with connect(server.address("log_tcp"), timeout=30) as sock:
        sock.sendall(b"".join(seq_frame(conn, seq) for seq in range(first, first + count)))


def wait_decoded(server, count: int) -> None:
    """Wait until the server has decoded ``count`` pickle records (they may not be on disk)."""
    wait_for(
        lambda: metric(server, "netlog_records_received_total", format="pickle") >= count,
        30,
        what=f"{count} records decoded",
    )


def seqs(records: list[dict]) -> list[int]:
    return [record["fields"]["seq"] for record in records]


class TestStraySignals:
    """Item 8: SIGHUP/SIGUSR1/SIGUSR2 never kill; a second SIGTERM writes what is decoded."""

    @pytest.mark.parametrize(
        "signum", [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2], ids=lambda s: s.name
    )
    def test_signal_does_not_lose_decoded_records(self, netlog_factory, signum):
        server = netlog_factory(*NO_ECHO, *NEVER_FLUSH)
        total = 2000
        send_seq(server, 0, total)
        wait_decoded(server, total)
        assert server.records() == []  # all of them wait for the flush
        server.send_signal(signum)
        time.sleep(0.5)
        alive = server.proc.poll() is None
        # Still serving: a later record is taken too.
        if alive:
            send_seq(server, total, 1)
            wait_decoded(server, total + 1)
        status = server.stop(timeout=30)
        records = parse_all(server.log_dir)
        record_figure(
            "issue15-8",
            signal=signal.Signals(signum).name,
            decoded_before_signal=total,
            on_disk=len(records),
            exit=status,
        )
        assert alive, f"{signal.Signals(signum).name} killed the process (exit {status})"
        assert status == 0, server.stderr()
        assert seqs(records) == list(range(total + 1))
        assert "Traceback" not in server.stderr()

    def test_sighup_reopens_the_file_for_logrotate(self, netlog_factory):
        server = netlog_factory(*NO_ECHO, *NEVER_FLUSH)
        send_seq(server, 0, 100)
        wait_decoded(server, 100)
        server.send_signal(signal.SIGHUP)
        # The pending records are written at once, to the file then open.
        wait_lines(server.log_dir / FILE_NAME, 100, timeout=10)
        # What logrotate does: move the file away, then SIGHUP.
        moved = server.log_dir / "rotated-by-logrotate.jsonl"
        (server.log_dir / FILE_NAME).rename(moved)
        server.send_signal(signal.SIGHUP)
        wait_for((server.log_dir / FILE_NAME).exists, 10, what="a new records.jsonl")
        send_seq(server, 100, 50)
        wait_decoded(server, 150)
        assert server.stop() == 0
        assert seqs(parse_lines(moved)) == list(range(100))
        assert seqs(parse_lines(server.log_dir / FILE_NAME)) == list(range(100, 150))
        assert "SIGHUP" in server.stderr()

    def test_second_sigterm_writes_what_is_decoded_then_exits(self, netlog_factory):
        server = netlog_factory(*NO_ECHO, *NEVER_FLUSH, "--grace", "60")
        total = 2000
        # A connection left in the middle of a frame holds the drain for the
        # whole grace: the second signal is what a user sends to cut it short.
        holder = connect(server.address("log_tcp"), timeout=30)
        try:
            holder.sendall(seq_frame(1, 0)[:10])
            send_seq(server, 0, total)
            wait_decoded(server, total)
            server.send_signal(signal.SIGTERM)
            time.sleep(0.02)
            signalled = time.monotonic()
            server.send_signal(signal.SIGTERM)
            try:
                status = server.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                status = None
            took = time.monotonic() - signalled
        finally:
            holder.close()
        records = parse_all(server.log_dir) if status is not None else []
        record_figure(
            "issue15-8",
            signal="SIGTERM twice, 20 ms apart",
            decoded_before_signal=total,
            on_disk=len(records),
            exit=status,
            exit_seconds=round(took, 2),
        )
        assert status is not None, "still running 30 s after the second SIGTERM"
        assert took < 10, f"the second SIGTERM took {took:.1f}s to end the process"
        assert seqs(records) == list(range(total)), server.stderr()
        err = server.stderr()
        assert "second SIGTERM" in err
        assert summary(err)[0] == total
        assert "Traceback" not in err


class TestLogDirDeleted:
    """Item 9: the log dir is deleted while the server runs."""

    def test_directory_and_file_recreated_later_records_on_disk(self, netlog_factory):
        server = netlog_factory(*NO_ECHO)
        send_seq(server, 0, 1000)
        wait_lines(server.log_dir / FILE_NAME, 1000)
        shutil.rmtree(server.log_dir)
        send_seq(server, 1000, 500)
        wait_decoded(server, 1500)
        with contextlib.suppress(AssertionError):  # measured below
            wait_lines(server.log_dir / FILE_NAME, 500, timeout=10)
        status = server.stop()
        err = server.stderr()
        path = server.log_dir / FILE_NAME
        later = parse_lines(path) if path.exists() else []
        record_figure(
            "issue15-9",
            records_after_delete=500,
            on_disk_after_delete=len(later),
            summary=summary(err)[0],
        )
        assert seqs(later) == list(range(1000, 1500)), err
        assert status == 0
        assert "deleted" in err
        assert "recreated" in err


def serve_second(log_dir, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Start a server on ``log_dir`` to completion (it should refuse at once)."""
    ephemeral = ["--host", "127.0.0.1", "--console", "off"]
    for option in PORT_FLAGS:
        ephemeral += [option, "-1" if option == "--http-port" else "0"]
    try:
        return subprocess.run(
            command(*ephemeral, "--log-dir", str(log_dir)),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(exc.cmd, -1, exc.stdout, exc.stderr)


class TestTwoServersOneLogDir:
    """Item 10: a second server on the same log dir refuses to start."""

    def test_second_server_refuses_with_one_line(self, netlog_factory):
        first = netlog_factory(*NO_ECHO)
        done = serve_second(first.log_dir)
        err = done.stderr if isinstance(done.stderr, str) else ""
        record_figure("issue15-10", second_exit=done.returncode, line=err.strip())
        assert done.returncode == 2, f"second server: exit {done.returncode}, {err!r}"
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert str(first.log_dir) in lines[0]
        assert "in use" in lines[0]
        assert str(first.pid) in lines[0]
        # The first one is unaffected, and once it has gone the dir is free again.
        send_seq(first, 0, 10)
        wait_lines(first.log_dir / FILE_NAME, 10)
        assert first.stop() == 0
        again = netlog_factory(*NO_ECHO, "--log-dir", str(first.log_dir))
        send_seq(again, 10, 10)
        wait_lines(first.log_dir / FILE_NAME, 20)
        assert again.stop() == 0


class TestFullDiskTornTail:
    """Item 11: a torn tail on a full disk does not stop the server from starting."""

    def test_starts_sets_torn_bytes_aside_and_writes_when_space_returns(
        self, netlog_factory, tmp_path
    ):
        with tmpfs(tmp_path / "full", "size=256k") as directory:
            path = directory / FILE_NAME
            whole = b"".join(
                b'{"message": "old %d", "fields": {"seq": %d}}\n' % (i, i) for i in range(1000)
            )
            torn = b'{"message": "torn in ha' + b"x" * 6000
            path.write_bytes(whole + torn)
            filler = directory / "filler"
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                for _ in range(100):  # 256 KiB is at most 64 pages
                    os.write(fd, b"\0" * 4096)
            except OSError:
                pass  # full
            finally:
                os.close(fd)
            started_ok = True
            try:
                server = netlog_factory(*NO_ECHO, "--log-dir", str(directory))
            except AssertionError as exc:
                started_ok = False
                reason = str(exc)
            if started_ok:
                send_seq(server, 0, 200)
                wait_decoded(server, 200)
                wait_for(lambda: "disk full" in server.stderr(), 10, what="a disk-full report")
                filler.unlink()  # space returns
                wait_lines(path, 1000 + 200, timeout=15)
                assert server.stop() == 0
                err = server.stderr()
                data = path.read_bytes()
                torn_files = sorted(directory.glob("records.torn.*"))
                saved = torn_files[0].read_bytes() if torn_files else b""
            record_figure(
                "issue15-11",
                started=started_ok,
                torn_bytes=len(torn),
                torn_bytes_saved=len(saved) if started_ok else 0,
            )
            assert started_ok, reason
            assert data.startswith(whole), "the complete lines before the torn one changed"
            assert seqs(parse_lines(path)[1000:]) == list(range(200))
            assert saved == torn
            assert "torn" in err


class TestRotationCost:
    """Item 12: --max-bytes 4096 --backups 1000 must not stall ingest or shutdown."""

    def test_shutdown_within_grace_every_record_in_order(self, netlog_factory):
        grace = 2.0
        server = netlog_factory(
            *NO_ECHO, "--max-bytes", "4096", "--backups", "1000", "--grace", str(grace)
        )
        total = 20_000
        send_seq(server, 0, total)
        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        try:
            status = server.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            status = None
        took = time.monotonic() - signalled
        files = rotated_paths(server.log_dir)
        records = parse_all(server.log_dir) if status is not None else []
        record_figure(
            "issue15-12",
            max_bytes=4096,
            backups=1000,
            records=total,
            on_disk=len(records),
            files=len(files),
            exit_seconds=round(took, 2),
            exit=status,
        )
        assert status == 0, f"no clean exit within 60 s of SIGTERM ({status})"
        assert took < grace + 5, f"exit took {took:.1f}s with a {grace}s grace"
        assert len(files) <= 1001
        got = seqs(records)
        # Everything, unless rotation had to delete the oldest files: then
        # exactly the newest records, in order.
        assert got == list(range(total - len(got), total))
        if len(files) < 1001:
            assert len(got) == total

    def test_restart_keeps_numbering_and_order(self, netlog_factory):
        first = netlog_factory(*NO_ECHO, "--max-bytes", "4096", "--backups", "1000")
        send_seq(first, 0, 300)
        wait_decoded(first, 300)
        assert first.stop() == 0
        second = netlog_factory(
            *NO_ECHO, "--max-bytes", "4096", "--backups", "1000", "--log-dir", str(first.log_dir)
        )
        send_seq(second, 300, 300)
        wait_decoded(second, 300)
        assert second.stop() == 0
        assert len(rotated_paths(first.log_dir)) > 2
        assert seqs(parse_all(first.log_dir)) == list(range(600))
