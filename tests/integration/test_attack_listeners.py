"""Issue 15, the log listeners tried as an attacker would (items 1, 6, 7 and 14).

Each scenario runs against a real ``python -m servers`` on 127.0.0.1 and
ephemeral ports, bounded in count and time, and prints its figure.  The
in-process tests at the end run the server classes under gevent with a
decoder that raises, so the safety net of item 1 stays tested once no real
input makes a decoder raise anything but ``DecodeError``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import signal
import socket
import struct
import time
import tracemalloc
import urllib.request
from collections import Counter

import gevent
import pytest
from reliability_kit import (
    connect,
    log_frame,
    metric,
    peak_rss_kib,
    raise_fd_limit,
    record_figure,
    summary,
    udp_socket,
)

from netlog.decode.stream import StreamDecoder
from netlog.report import Reporter
from netlog.sinks.pipeline import Pipeline
from netlog.stats import Stats
from netlogproc import wait_for
from servers import logsink
from servers.responder import ResponderServer

NO_ECHO = ("--echo-port", "-1", "--responder-port", "-1")
KERNEL_DROPS = re.compile(r"(\d+) dropped by the kernel")


def poison_pickle() -> bytes:
    """A SocketHandler frame that made the pickle decoder raise ValueError (issue 15, item 1)."""
    data = pickle.dumps({"msg": "poison", "levelno": 10**5000}, 2)
    return struct.pack(">L", len(data)) + data


def health_ms(server) -> float:
    started = time.monotonic()
    url = f"http://127.0.0.1:{server.ports['http']}/health"
    with urllib.request.urlopen(url, timeout=5) as response:
        response.read()
    return (time.monotonic() - started) * 1000


def tracebacks(stderr: str) -> int:
    return stderr.count("Traceback")


class TestPoisonRecord:
    """Item 1: an exception from one record costs that record, never another."""

    def test_udp_poison_among_good_datagrams(self, netlog_factory):
        server = netlog_factory(*NO_ECHO)
        poison = poison_pickle()
        with udp_socket() as sock:
            address = server.address("log_udp")
            for i in range(300):
                sock.sendto(f'{{"event": "good {i}"}}'.encode(), address)
                sock.sendto(poison, address)
                if i % 50 == 49:
                    time.sleep(0.01)  # paced: the kernel's buffer is not what is tested
            sock.sendto(b'{"event": "last"}', address)
        good = {f"good {i}" for i in range(300)} | {"last"}
        wait_for(
            lambda: len({r["message"] for r in server.records()} & good) == 301,
            timeout=10,
            what="every good datagram on disk",
        )
        assert server.proc.poll() is None
        assert server.stop() == 0
        err = server.stderr()
        written, dropped, bad = summary(err)
        record_figure(
            "15.1-udp",
            good_sent=301,
            poison_sent=300,
            written=written,
            bad_frames=bad,
            tracebacks=tracebacks(err),
        )
        # Each poison datagram is a bad frame (a decoder that raised) or a
        # record (a decoder that no longer does): either way it costs no other.
        assert written + bad == 601
        assert dropped == bad
        assert len({r["message"] for r in server.records()} & good) == 301
        assert tracebacks(err) == 0
        # Reported, rate-limited: one line (two if the test spans the interval).
        assert err.count("log datagram from") <= 2

    def test_tcp_poison_costs_only_its_connection(self, netlog_factory):
        server = netlog_factory(*NO_ECHO)
        address = server.address("log_tcp")
        with connect(address) as victim, connect(address) as other:
            victim.sendall(b"".join(log_frame(f"victim {i}") for i in range(50)))
            other.sendall(b"".join(log_frame(f"other {i}") for i in range(50)))
            server.wait_records(100)
            victim.sendall(poison_pickle())
            time.sleep(0.3)
            other.sendall(b"".join(log_frame(f"other {i}") for i in range(50, 100)))
            with connect(address) as new:
                new.sendall(log_frame("new connection"))
                expected = {f"other {i}" for i in range(100)} | {"new connection"}
                wait_for(
                    lambda: expected <= {r["message"] for r in server.records()},
                    what="the other connections' records",
                )
        assert server.stop() == 0
        err = server.stderr()
        written, dropped, bad = summary(err)
        record_figure(
            "15.1-tcp", written=written, dropped=dropped, bad_frames=bad, tracebacks=tracebacks(err)
        )
        assert written + bad == 152, "the poison frame is a record or a bad frame"
        assert tracebacks(err) == 0

    def test_records_before_the_poison_in_the_same_read_are_kept(self, netlog_factory):
        server = netlog_factory(*NO_ECHO)
        with connect(server.address("log_tcp")) as sock:
            good = b"".join(log_frame(f"same read {i}") for i in range(10))
            sock.sendall(good + poison_pickle() + log_frame("after"))
            time.sleep(0.5)
        assert server.stop() == 0
        messages = {r["message"] for r in server.records()}
        assert {f"same read {i}" for i in range(10)} <= messages

    def test_poison_during_drain_still_writes_everything(self, netlog_factory):
        server = netlog_factory(*NO_ECHO, "--flush-interval", "60")
        with connect(server.address("log_tcp")) as tcp, udp_socket() as udp:
            tcp.sendall(b"".join(log_frame(f"waiting {i}") for i in range(1000)))
            wait_for(
                lambda: metric(server, "netlog_records_received_total", format="pickle") == 1000,
                what="1000 records decoded",
            )
            os.kill(server.pid, signal.SIGSTOP)
            try:
                udp.sendto(b'{"event": "before the poison"}', server.address("log_udp"))
                for _ in range(20):  # the first may be read before the signal is
                    udp.sendto(poison_pickle(), server.address("log_udp"))
                udp.sendto(b'{"event": "after the poison"}', server.address("log_udp"))
                tcp.sendall(poison_pickle())
                os.kill(server.pid, signal.SIGTERM)
            finally:
                os.kill(server.pid, signal.SIGCONT)
            status = server.proc.wait(timeout=30)
        err = server.stderr()
        records = server.records()
        messages = Counter(r["message"] for r in records)
        record_figure(
            "15.1-drain",
            exit_status=status,
            waiting_for_flush=1000,
            written=len(records),
            tracebacks=tracebacks(err),
        )
        assert status == 0, err[-2000:]
        written, _dropped, bad = summary(err)
        assert written == len(records)
        assert sum(messages[f"waiting {i}"] for i in range(1000)) == 1000
        assert messages["before the poison"] == messages["after the poison"] == 1
        assert written + bad == 1023  # each poison is a record or a bad frame
        assert tracebacks(err) == 0


def connect_without_waiting(address, count: int) -> list[socket.socket]:
    """Start ``count`` TCP handshakes and return at once (the kernel completes them)."""
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        err = sock.connect_ex(address)
        assert err in (0, errno.EINPROGRESS), os.strerror(err)
        socks.append(sock)
    return socks


def delivery(server, message: str, timeout: float = 5.0) -> float:
    """Seconds for a new SocketHandler connection's first record to reach disk."""
    before = len(server.records())
    started = time.monotonic()
    with socket.create_connection(server.address("log_tcp"), timeout=timeout) as sock:
        sock.sendall(log_frame(message))
        server.wait_records(before + 1, timeout=timeout)
    return time.monotonic() - started


def echo_seconds(server, timeout: float = 5.0) -> float:
    started = time.monotonic()
    with socket.create_connection(server.address("echo"), timeout=timeout) as sock:
        sock.sendall(b"ping")
        received = b""
        while len(received) < 4:
            chunk = sock.recv(4)
            assert chunk, "echo closed"
            received += chunk
    assert received == b"ping"
    return time.monotonic() - started


class TestIdleConnectionsLockOut:
    """Item 6: idle connections filling --max-connections do not lock a real sender out."""

    def test_new_sender_and_echo_get_through(self, netlog_factory):
        raise_fd_limit(4096)
        limit, idle = 50, 300
        server = netlog_factory(
            "--responder-port", "-1", "--max-connections", str(limit), "--idle-timeout", "300"
        )
        # Applications that sent a record are kept whatever the pressure.
        apps = [connect(server.address("log_tcp")) for _ in range(5)]
        attackers: list[socket.socket] = []
        try:
            for i, app in enumerate(apps):
                app.sendall(log_frame(f"app {i}"))
            server.wait_records(5)
            attackers += connect_without_waiting(server.address("log_tcp"), idle)
            attackers += connect_without_waiting(server.address("echo"), idle)
            time.sleep(1.0)
            took = delivery(server, "a new sender during the attack")
            echo_took = echo_seconds(server)
            health = health_ms(server)
            for i, app in enumerate(apps):
                app.sendall(log_frame(f"app {i} again"))
            server.wait_records(11)
        finally:
            for sock in attackers + apps:
                sock.close()
        shed = metric(server, "netlog_notes_total", reason="shed_idle")
        assert server.stop() == 0
        record_figure(
            "15.6",
            max_connections=limit,
            idle_connections_per_listener=idle,
            new_record_on_disk_ms=round(took * 1000, 1),
            echo_answered_ms=round(echo_took * 1000, 1),
            health_ms=round(health, 1),
            log_connections_shed=shed,
        )
        assert took < 5.0
        assert echo_took < 5.0
        assert shed >= idle // 2


class TestUnfinishedRecordsMemory:
    """Item 7: half-sent records held across connections are bounded in bytes."""

    def test_budget_bounds_rss(self, netlog_factory):
        raise_fd_limit(4096)
        size = 256 * 1024
        budget = getattr(logsink, "UNFINISHED_RECORDS", 64) * size
        server = netlog_factory(
            *NO_ECHO, "--max-line", str(size), "--max-frame", str(size), "--idle-timeout", "300"
        )
        address = server.address("log_tcp")
        base = peak_rss_kib(server.pid)
        holders: list[socket.socket] = []
        count = 300
        half = size - 4096
        try:
            for i in range(count):
                sock = connect(address)
                holders.append(sock)
                if i % 2:
                    sock.sendall(b'{"event": "' + b"x" * half)  # half a line
                else:
                    sock.sendall(struct.pack(">L", size) + b"y" * half)  # half a frame
            for _round in range(3):  # kept alive by trickling a byte
                for sock in holders:
                    with contextlib.suppress(OSError):
                        sock.sendall(b"z")
                time.sleep(0.2)
            time.sleep(0.5)
            took = delivery(server, "a real record meanwhile")
            peak = peak_rss_kib(server.pid)
        finally:
            for sock in holders:
                sock.close()
        dropped = metric(server, "netlog_records_dropped_total", reason="memory_budget")
        assert server.stop() == 0
        grew_mib = (peak - base) / 1024
        record_figure(
            "15.7",
            connections=count,
            unfinished_bytes_each=half,
            offered_mib=round(count * half / 2**20, 1),
            budget_mib=budget / 2**20,
            peak_rss_growth_mib=round(grew_mib, 1),
            dropped_memory_budget=dropped,
            real_record_ms=round(took * 1000, 1),
        )
        # The bytes held are bounded by the budget (TestUnfinishedBytesInProcess);
        # RSS also carries glibc's heap holes, so it is checked against
        # what was offered: 145.6 MiB of growth for 73.8 MiB before the fix.
        assert grew_mib < count * half / 2**20, f"RSS grew {grew_mib:.1f} MiB"
        assert dropped >= count - budget // half - 1


class TestKernelDrops:
    """Item 14: datagrams the kernel dropped are counted, not invisible."""

    def test_burst_while_stopped_is_counted(self, netlog_factory):
        server = netlog_factory("--echo-port", "-1", "--responder-port", "-1")
        sent = 20_000
        payload = b'{"event": "burst %d", "pad": "' + b"p" * 1000 + b'"}'
        os.kill(server.pid, signal.SIGSTOP)
        try:
            with udp_socket() as sock:
                for i in range(sent):
                    with contextlib.suppress(BlockingIOError):
                        sock.sendto(
                            payload.replace(b"%d", str(i).encode()), server.address("log_udp")
                        )
        finally:
            os.kill(server.pid, signal.SIGCONT)
        time.sleep(1.0)
        scraped = metric(server, "netlog_kernel_dropped_datagrams_total", listener="log_udp")
        assert server.stop() == 0
        err = server.stderr()
        written, _dropped, _bad = summary(err)
        match = KERNEL_DROPS.search(err)
        kernel = int(match[1]) if match else 0
        record_figure("15.14", sent=sent, written=written, dropped_by_the_kernel=kernel)
        assert written < sent, "the burst did not overflow the socket's buffer"
        assert kernel == sent - written
        # /metrics reads the same count while the server runs.
        assert scraped == kernel


# --- in process: the safety net, with a decoder that raises -------------------


class PoisonedError(Exception):
    """What the decoder below raises: not a DecodeError."""


class _Sink:
    def __init__(self) -> None:
        self.records: list = []
        self.written = 0

    def write_lines(self, _lines) -> None:
        self.written += 1

    def write_batch(self, records, _lines) -> None:
        self.records.extend(records)

    def flush(self) -> None:
        pass


class PoisonedStreamDecoder(StreamDecoder):
    """A stream decoder with a bug: a read holding ``POISON`` raises."""

    def feed(self, data: bytes) -> list:
        if b"POISON" in data:
            raise PoisonedError("a decoder bug")
        return super().feed(data)


@pytest.fixture
def pipeline():
    sink = _Sink()
    stats = Stats()
    return Pipeline(sink, sink, stats), sink, stats


class TestSafetyNetInProcess:
    """Item 1, without relying on a real decoder bug."""

    def test_datagram(self, monkeypatch, pipeline):
        pipe, _sink, stats = pipeline

        def decode(data, *args, **kwargs):
            if b"POISON" in data:
                raise PoisonedError("a decoder bug")
            return real(data, *args, **kwargs)

        real = logsink.decode_datagram
        monkeypatch.setattr(logsink, "decode_datagram", decode)
        messages: list[str] = []
        server = logsink.LogDatagramServer(
            ("127.0.0.1", 0), pipe, Reporter(_Lines(messages)), max_frame=1 << 20
        )
        server.start()
        try:
            with udp_socket() as sock:
                for i in range(10):
                    sock.sendto(b"POISON", server.address)
                    sock.sendto(f"good {i}".encode(), server.address)
            deadline = time.monotonic() + 5
            while stats.received["text"] < 10 and time.monotonic() < deadline:
                gevent.sleep(0.01)
            with udp_socket() as sock:  # queued at shutdown: the drain path
                sock.sendto(b"POISON", server.address)
                sock.sendto(b"good at drain", server.address)
            server.drain_and_close()
        finally:
            server.close()
        pipe.flush()
        assert stats.received["text"] == 11
        assert stats.bad_frames["internal_error"] == 11
        assert len(messages) == 1
        assert "PoisonedError: a decoder bug" in messages[0]
        assert "Traceback" not in messages[0]

    def test_stream(self, monkeypatch, pipeline):
        pipe, _sink, stats = pipeline
        monkeypatch.setattr(logsink, "StreamDecoder", PoisonedStreamDecoder)
        messages: list[str] = []
        server = logsink.LogStreamServer(
            ("127.0.0.1", 0),
            pipe,
            Reporter(_Lines(messages)),
            idle_timeout=5,
            max_connections=10,
            max_frame=1 << 20,
            max_line=1 << 20,
        )
        server.start()
        try:
            bad = socket.create_connection(server.address, timeout=5)
            good = socket.create_connection(server.address, timeout=5)
            good.sendall(b"one\n")
            bad.sendall(b"fine\n")
            _wait(lambda: stats.received["text"] == 2)
            bad.sendall(b"POISON\n")
            _wait(lambda: stats.bad_frames["internal_error"] == 1)
            good.sendall(b"two\n")
            _wait(lambda: stats.received["text"] == 3)
            assert _closed(bad)  # its connection is closed, nothing else
            # At the drain: a poisoned final read costs only that connection.
            late = socket.create_connection(server.address, timeout=5)
            late.sendall(b"late\n")
            _wait(lambda: stats.received["text"] == 4)
            late.sendall(b"POISON\n")
            good.sendall(b"three\n")
            server.stop_accepting_and_drain_backlog()
            deadline = time.monotonic() + 0.5
            server.start_drain(deadline)
            server.finish_drain(deadline)
            for sock in (bad, good, late):
                sock.close()
        finally:
            server.close()
        assert stats.received["text"] == 5
        assert stats.bad_frames["internal_error"] == 2
        assert stats.connections_open["log_tcp"] == 0
        assert len(messages) == 1
        assert "PoisonedError: a decoder bug" in messages[0]


class TestUnfinishedBytesInProcess:
    """Item 7: what the decoders hold across connections stays within the budget."""

    def test_bytes_held_stay_within_the_budget(self, pipeline):
        pipe, _sink, stats = pipeline
        size = 256 * 1024
        server = logsink.LogStreamServer(
            ("127.0.0.1", 0),
            pipe,
            Reporter(_Lines([])),
            idle_timeout=300,
            max_connections=1000,
            max_frame=size,
            max_line=size,
        )
        server.start()
        socks = []
        tracemalloc.start()
        peak_held = 0
        try:
            for i in range(200):
                sock = socket.create_connection(server.address, timeout=5)
                socks.append(sock)
                sock.sendall(b'{"event": "' + b"x" * (size - 4096))
                gevent.sleep(0.002)
                peak_held = max(peak_held, server.unfinished)
                if i % 20 == 19:
                    gevent.sleep(0.05)
            gevent.sleep(0.2)
            traced = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
            for sock in socks:
                sock.close()
            server.close()
        budget = server.unfinished_budget
        assert budget == logsink.UNFINISHED_RECORDS * size
        assert peak_held <= budget
        assert stats.dropped["memory_budget"] >= 200 - budget // (size - 4096) - 1
        assert "truncated" not in stats.dropped  # counted once, as memory_budget
        # Dropped connections free their bytes at once, not at the next gc.
        assert traced < budget + 8 * 2**20, f"{traced / 2**20:.1f} MiB traced"


class TestResponderKernelDrops:
    """Item 14 for the responder: a burst the loop did not read in time."""

    def test_counted_in_stats(self):
        stats = Stats()
        server = ResponderServer(("127.0.0.1", 0), rate=0, stats=stats)
        server.start()
        sent = 20_000
        try:
            with udp_socket() as sock:
                sock.settimeout(0)
                for _ in range(sent):  # the loop does not run meanwhile
                    with contextlib.suppress(BlockingIOError):
                        sock.sendto(b"ping" + b"." * 1000, server.address)
            gevent.sleep(0.5)
        finally:
            server.close()
        handled = server.answered + server.rate_limited + server.refused
        assert handled < sent
        assert stats.kernel_dropped["responder"] == sent - handled


class _Lines:
    """A text stream that keeps each line written."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> None:
        self.lines.extend(line for line in text.splitlines() if line)

    def flush(self) -> None:
        pass


def _closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the server closed ``sock``, polled without blocking the hub."""
    sock.setblocking(False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return sock.recv(10) == b""
        except BlockingIOError:
            gevent.sleep(0.01)
        except ConnectionResetError:
            return True
    return False


def _wait(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        gevent.sleep(0.01)
