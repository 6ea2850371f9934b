"""TCP echo against the real process: byte-exact, streamed, bounded."""

import contextlib
import os
import resource
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from netlogproc import HOST, wait_for


def connect(address, timeout=10.0):
    sock = socket.create_connection(address, timeout=timeout)
    sock.settimeout(timeout)
    return sock


def recv_all(sock) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


class TestEcho:
    """Echo semantics of RFC 862 and the Protohackers smoke test."""

    def test_five_clients_each_echo_one_mib_with_half_close(self, netlog):
        payloads = [os.urandom(1 << 20) for _ in range(5)]
        results: dict[int, bytes] = {}
        errors: list[BaseException] = []

        def client(i: int) -> None:
            try:
                with connect(netlog.address("echo")) as sock:
                    sender = threading.Thread(
                        target=lambda: (sock.sendall(payloads[i]), sock.shutdown(socket.SHUT_WR))
                    )
                    sender.start()
                    results[i] = recv_all(sock)
                    sender.join(10)
            except BaseException as exc:  # reported below, with the others
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        for i, payload in enumerate(payloads):
            assert results[i] == payload

    def test_one_byte_per_write(self, netlog):
        payload = bytes(range(256))
        with connect(netlog.address("echo")) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(payload)):
                sock.sendall(payload[i : i + 1])
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == payload

    def test_echo_is_streamed_not_buffered_until_eof(self, netlog):
        with connect(netlog.address("echo")) as sock:
            sock.sendall(b"first line\n")
            received = b""
            while len(received) < 11:
                received += sock.recv(100)
            assert received == b"first line\n"

    def test_client_that_never_reads_does_not_grow_server_memory(self, netlog):
        before = netlog.rss_kib()
        block = os.urandom(1 << 16)
        sent = 0
        with connect(netlog.address("echo")) as sock:
            sock.setblocking(False)
            deadline = time.monotonic() + 5
            stalled_since = None
            while time.monotonic() < deadline and sent < (256 << 20):
                try:
                    sent += sock.send(block)
                    stalled_since = None
                except BlockingIOError:
                    stalled_since = stalled_since or time.monotonic()
                    if time.monotonic() - stalled_since > 1.0:
                        break
                    time.sleep(0.01)
            grown_kib = netlog.rss_kib() - before
        # The server stopped reading: the client was blocked long before
        # 256 MiB, and the server holds at most a buffer's worth.
        assert stalled_since is not None, f"client never blocked after {sent} bytes"
        assert sent < (64 << 20)
        assert grown_kib < 10 * 1024

    def test_idle_connection_is_closed(self, netlog_factory):
        server = netlog_factory("--idle-timeout", "0.3")
        with connect(server.address("echo")) as sock:
            assert sock.recv(10) == b""


def pipes_of(pid: int) -> int:
    """How many pipe descriptors the process holds (splicing needs them)."""
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # closed since listed
            count += str(fd.readlink()).startswith("pipe:")
    return count


def round_trip(sock, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = bytearray()
    while len(received) < len(payload):
        chunk = sock.recv(len(payload) - len(received))
        if not chunk:
            break
        received += chunk
    return bytes(received)


class TestEchoSplice:
    """16-64 KiB messages go through a pipe (splice), the rest is copied."""

    def test_small_messages_are_copied_without_pipes(self, netlog):
        before = pipes_of(netlog.pid)
        with connect(netlog.address("echo")) as sock:
            for size in (1, 100, 1024, 16383):
                payload = os.urandom(size)
                assert round_trip(sock, payload) == payload
        assert pipes_of(netlog.pid) == before

    def test_mixed_sizes_are_echoed_byte_exact_and_medium_ones_spliced(self, netlog):
        before = pipes_of(netlog.pid)
        sizes = [1024, 32768, 48000, 65536, 1, 16384, 300_000, 40000, 7, 65535, 2_000_000, 20000]
        with connect(netlog.address("echo")) as sock:
            for size in sizes * 3:
                payload = os.urandom(size)
                assert round_trip(sock, payload) == payload
        # The pipes splicing used are kept as spares (two descriptors each).
        assert pipes_of(netlog.pid) >= before + 2

    def test_spliced_reply_waits_in_the_pipe_for_a_slow_reader(self, netlog):
        block = os.urandom(40000)
        with connect(netlog.address("echo")) as sock:
            assert round_trip(sock, block) == block  # the next read splices
            sock.setblocking(False)
            sent = 0
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # until the server stops reading
                try:
                    sent += sock.send(block[: 40000 - sent % 40000])
                except BlockingIOError:
                    break
            sock.settimeout(10)
            assert sent > 40000, "the client never filled the buffers"
            received = bytearray()
            while len(received) < sent:
                received += sock.recv(1 << 20)
            assert received == (block * (sent // 40000 + 1))[:sent]

    def test_pipe_of_a_client_that_left_mid_reply_is_closed(self, netlog):
        block = os.urandom(40000)
        with connect(netlog.address("echo")) as sock:  # leaves spare pipes behind
            assert round_trip(sock, block) == block
            assert round_trip(sock, block) == block
        before = pipes_of(netlog.pid)
        for _ in range(5):
            with connect(netlog.address("echo")) as sock:
                assert round_trip(sock, block) == block
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    for _ in range(200):
                        sock.send(block)
            # Closed with the server's reply unread: a reset, the pipe abandoned.
        # A leaked pipe would be two descriptors per client.
        wait_for(lambda: pipes_of(netlog.pid) <= before, what="the abandoned pipes to close")

    def test_out_of_descriptors_for_a_pipe_copies_instead(self, netlog):
        with connect(netlog.address("echo")) as sock:
            assert round_trip(sock, b"x") == b"x"  # the server holds this connection now
            before = pipes_of(netlog.pid)
            in_use = {int(fd.name) for fd in Path(f"/proc/{netlog.pid}/fd").iterdir()}
            lowest_free = min(set(range(len(in_use) + 1)) - in_use)
            soft, hard = resource.prlimit(netlog.pid, resource.RLIMIT_NOFILE)
            # No descriptor below the limit is free: pipe2() fails with EMFILE.
            resource.prlimit(netlog.pid, resource.RLIMIT_NOFILE, (lowest_free, hard))
            try:
                for size in (32768, 40000, 65536, 20000, 48000):
                    payload = os.urandom(size)
                    assert round_trip(sock, payload) == payload
                assert pipes_of(netlog.pid) == before
            finally:
                resource.prlimit(netlog.pid, resource.RLIMIT_NOFILE, (soft, hard))

    def test_without_splice_the_platform_copies(self, netlog_factory, tmp_path):
        # A platform without splice(2) (macOS, say), made here by removing it
        # from ``os`` before netlog starts.
        site = tmp_path / "no_splice"
        site.mkdir()
        (site / "sitecustomize.py").write_text(
            "import os\nfor name in ('splice', 'SPLICE_F_MOVE', 'SPLICE_F_NONBLOCK'):\n"
            "    delattr(os, name)\n"
        )
        server = netlog_factory(env={"PYTHONPATH": str(site)})
        before = pipes_of(server.pid)
        with connect(server.address("echo")) as sock:
            for size in (1024, 32768, 40000, 65536, 300_000, 20000):
                payload = os.urandom(size)
                assert round_trip(sock, payload) == payload
        assert pipes_of(server.pid) == before


@pytest.mark.skipif(shutil.which("nc") is None, reason="nc (netcat-openbsd) is not installed")
class TestEchoWithNc:
    """The README's nc example, as a user types it (numeric host in tests)."""

    def test_nc_echo(self, netlog):
        port = str(netlog.ports["echo"])
        done = subprocess.run(
            ["nc", "-N", HOST, port], input=b"hello netlog\n", capture_output=True, timeout=10
        )
        assert done.stdout == b"hello netlog\n"

    def test_nc_udp_probe(self, netlog):
        port = str(netlog.ports["responder"])
        done = subprocess.run(
            ["nc", "-u", "-w1", HOST, port], input=b"ping\n", capture_output=True, timeout=10
        )
        assert done.stdout == b"pong\n"

    def test_server_survives_many_clients_closing(self, netlog):
        for _ in range(20):
            with connect(netlog.address("echo")) as sock:
                sock.sendall(b"x")
        with connect(netlog.address("echo")) as sock:
            sock.sendall(b"still here")
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b"still here"
        wait_for(lambda: netlog.proc.poll() is None, 1, what="the server to keep running")


class TestEchoLimits:
    """--max-connections: excess clients wait in the kernel queue, then get served."""

    def test_client_beyond_the_cap_waits_then_is_served(self, netlog_factory):
        server = netlog_factory("--max-connections", "2")
        first = connect(server.address("echo"))
        second = connect(server.address("echo"))
        for sock in (first, second):
            sock.sendall(b"x")
            assert sock.recv(1) == b"x"
        third = connect(server.address("echo"), timeout=0.5)
        third.sendall(b"waiting")
        with pytest.raises(TimeoutError):
            third.recv(10)  # queued by the kernel, not served while at the cap
        first.close()
        third.settimeout(10)
        received = b""
        while len(received) < 7:
            received += third.recv(10)
        assert received == b"waiting"
        for sock in (second, third):
            sock.close()
