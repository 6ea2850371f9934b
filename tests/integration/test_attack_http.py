"""The HTTP port attacked (issue 15, items 4, 5 and 13): memory, the pool, framing.

Each test starts a real ``python -m servers``, attacks its HTTP port on raw
sockets (every one with a timeout, every loop bounded in count and time) and
prints its figures as ``FIGURE {...}``.
"""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import time

import pytest
from reliability_kit import is_closed_by_peer, metric, raise_fd_limit, record_figure

from netlogproc import wait_for

TIMEOUT = 5.0
MIB = 1 << 20


def connect(server, timeout: float = TIMEOUT) -> socket.socket:
    return socket.create_connection(server.address("http"), timeout=timeout)


def health_seconds(server, timeout: float = 5.0) -> float:
    """Seconds until ``GET /health`` on a new connection answers 200 (fails past ``timeout``)."""
    started = time.monotonic()
    with connect(server, timeout) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 200 "), reply
    return time.monotonic() - started


def read_until_closed(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """Everything the server sends until it closes (or the timeout: then what came)."""
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while len(data) < limit:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length: its head and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, data
        body += chunk
    return head + b"\r\n\r\n" + body


def exchange(server, raw: bytes) -> tuple[bytes, bool]:
    """Send ``raw``; (all the server answered, whether it closed the connection)."""
    with connect(server, 3.0) as sock:
        sock.sendall(raw)
        reply = read_until_closed(sock)
        closed = is_closed_by_peer(sock)
    return reply, closed


@pytest.fixture
def fd_limit():
    """Raise the open-file limit for the block (children inherit it), then restore it."""
    saved = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield raise_fd_limit
    resource.setrlimit(resource.RLIMIT_NOFILE, saved)


# -- item 13: request smuggling shapes ------------------------------------------

SMUGGLED = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
CHUNKED_THEN_SMUGGLED = b"0\r\n\r\n" + SMUGGLED


def post(headers: bytes, body: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    return (
        b"POST /log "
        + version
        + b"\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
        + headers
        + (b"\r\n" + body)
    )


FRAMING_ERRORS = {
    "content-length and transfer-encoding": post(
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(CHUNKED_THEN_SMUGGLED),
        CHUNKED_THEN_SMUGGLED,
    ),
    "two different content-lengths": post(
        b"Content-Length: 5\r\nContent-Length: %d\r\n" % (5 + len(SMUGGLED)), b"hello" + SMUGGLED
    ),
    "gzip, chunked": post(b"Transfer-Encoding: gzip, chunked\r\n", SMUGGLED),
    # Siblings: what another parser in front of netlog may read differently.
    "chunked, chunked": post(b"Transfer-Encoding: chunked, chunked\r\n", CHUNKED_THEN_SMUGGLED),
    "identity": post(b"Transfer-Encoding: identity\r\nContent-Length: 5\r\n", b"hello" + SMUGGLED),
    "two transfer-encodings": post(
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", CHUNKED_THEN_SMUGGLED
    ),
    "space before the colon": post(
        b"Transfer-Encoding : chunked\r\nContent-Length: %d\r\n" % len(CHUNKED_THEN_SMUGGLED),
        CHUNKED_THEN_SMUGGLED,
    ),
    "folded header": post(
        b"Content-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n", b"hello" + SMUGGLED
    ),
    "content-length 1_0": post(b"Content-Length: 1_0\r\n", b"0123456789" + SMUGGLED),
    "content-length +5": post(b"Content-Length: +5\r\n", b"hello" + SMUGGLED),
    "content-length list": post(b"Content-Length: 5, 5\r\n", b"hello" + SMUGGLED),
    "chunked in HTTP/1.0": post(
        b"Transfer-Encoding: chunked\r\n", CHUNKED_THEN_SMUGGLED, version=b"HTTP/1.0"
    ),
    "bad chunk size": post(b"Transfer-Encoding: chunked\r\n", b"zz\r\n" + SMUGGLED),
    "NUL in a value": post(b"X-A: a\x00b\r\nContent-Length: 5\r\n", b"hello" + SMUGGLED),
}


class TestSmuggling:
    """RFC 9112 6.3: a request whose framing is ambiguous is refused and its connection closed."""

    @pytest.mark.parametrize("shape", list(FRAMING_ERRORS))
    def test_refused_and_closed(self, netlog_factory, shape):
        server = netlog_factory("--echo-port", "-1")
        reply, closed = exchange(server, FRAMING_ERRORS[shape])
        status = reply[:12]
        answers = reply.count(b"HTTP/1.1 ")
        record_figure(
            "15.13",
            shape=shape,
            status=status.decode(errors="replace"),
            answers=answers,
            closed=closed,
        )
        assert status in (b"HTTP/1.1 400", b"HTTP/1.1 501"), reply[:200]
        assert answers == 1, reply  # the smuggled request was not answered
        assert closed
        assert b"Connection: close" in reply
        assert server.records() == []
        assert health_seconds(server) < 1.0

    def test_good_requests_keep_the_connection(self, netlog_factory):
        """Plain Content-Length and plain chunked bodies still work, kept alive."""
        server = netlog_factory("--echo-port", "-1")
        with connect(server) as sock:
            sock.sendall(post(b"Content-Length: 3\r\n", b"one"))
            assert read_response(sock).startswith(b"HTTP/1.1 202 ")
            sock.sendall(post(b"Transfer-Encoding: Chunked\r\n", b"3\r\ntwo\r\n0\r\n\r\n"))
            assert read_response(sock).startswith(b"HTTP/1.1 202 ")
            sock.sendall(SMUGGLED)
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        assert [r["message"] for r in server.wait_records(2)] == ["one", "two"]


# -- item 5: the pool, header time and size ------------------------------------------


class TestSlowHeaders:
    """Connections that send their headers a byte at a time cannot keep /health out."""

    @pytest.mark.unmeasured
    def test_health_answers_while_the_pool_is_full_of_slow_headers(self, netlog_factory, fd_limit):
        attackers, pool = 300, 200
        fd_limit(attackers + 200)
        server = netlog_factory(
            "--echo-port", "-1", "--max-connections", str(pool), "--idle-timeout", "5"
        )
        request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        socks: list[socket.socket] = []
        opened: dict[socket.socket, float] = {}
        closed_after: dict[socket.socket, float] = {}
        health: list[float] = []
        try:
            for _ in range(attackers):
                sock = socket.create_connection(server.address("http"), timeout=TIMEOUT)
                sock.setblocking(False)
                socks.append(sock)
                opened[sock] = time.monotonic()
            # One byte a second on each, for at most 12 s; /health asked every second.
            started = time.monotonic()
            deadline = started + 12.0
            for position in range(len(request)):
                if time.monotonic() > deadline:
                    break
                for sock in socks:
                    if sock in closed_after:
                        continue
                    try:
                        sock.send(request[position : position + 1])
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed_after[sock] = time.monotonic() - opened[sock]
                try:
                    health.append(health_seconds(server, timeout=0.9))
                except (OSError, AssertionError):
                    health.append(float("inf"))
                for sock in socks:
                    if sock not in closed_after and _closed_nonblocking(sock):
                        closed_after[sock] = time.monotonic() - opened[sock]
                time.sleep(max(0.0, started + position + 1.0 - time.monotonic()))
        finally:
            for sock in socks:
                sock.close()
        worst = max(health)
        longest = max(closed_after.values(), default=float("inf"))
        record_figure(
            "15.5",
            attack="slow headers",
            connections=attackers,
            pool=pool,
            health_worst_s=round(worst, 3),
            health_median_s=round(sorted(health)[len(health) // 2], 3),
            closed=len(closed_after),
            longest_open_s=round(longest, 2),
        )
        assert worst < 1.0, health
        # --idle-timeout 5 bounds the whole header (the deadline is min(10 s, idle timeout))
        # from the moment a connection is accepted; the 100 beyond the pool wait for a
        # slot first, at most one deadline.
        assert len(closed_after) == attackers
        assert longest < 2 * 5.0 + 2.0

    @pytest.mark.unmeasured
    def test_big_headers_are_refused_and_memory_stays_flat(self, netlog_factory):
        senders, line = 40, 65_000
        server = netlog_factory("--echo-port", "-1")
        before = server.rss_kib()
        headers = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * line) for i in range(96))
        socks = []
        replies = []
        try:
            for _ in range(senders):
                sock = connect(server, 10.0)
                socks.append(sock)
                with contextlib.suppress(OSError):
                    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers)  # and stall
            time.sleep(1.0)
            peak = server.rss_kib()
            for sock in socks:
                sock.settimeout(1.0)
                reply = read_until_closed(sock, 4096)
                replies.append(reply[:12])
        finally:
            for sock in socks:
                sock.close()
        grown = (peak - before) / 1024
        record_figure(
            "15.5",
            attack="big headers",
            connections=senders,
            header_bytes=len(headers),
            rss_before_mib=round(before / 1024, 1),
            rss_during_mib=round(peak / 1024, 1),
            statuses=sorted({r.decode(errors="replace") for r in replies}),
        )
        assert grown < 32, f"RSS grew {grown:.0f} MiB"
        assert set(replies) == {b"HTTP/1.1 431"}
        assert health_seconds(server) < 1.0


def _closed_nonblocking(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096, socket.MSG_PEEK) == b"" or False
    except BlockingIOError:
        return False
    except OSError:
        return True


# -- item 4 and 5: the viewer's memory and its clients ------------------------------------


def events_request(sock: socket.socket) -> None:
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")


class TestViewerMemory:
    """The feed and every /events client are bounded in bytes, and the clients in number."""

    @pytest.mark.unmeasured
    def test_large_posts_and_clients_that_never_read(self, netlog_factory):
        posts, size, lurkers = 12, 10 * MIB, 4
        server = netlog_factory("--echo-port", "-1")
        before = server.rss_kib()
        body = b"x" * size
        for i in range(posts):
            with connect(server, 30.0) as sock:
                sock.sendall(
                    b"POST /log HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                    % size
                    + body[:-8]
                    + b"%08d" % i
                )
                assert read_until_closed(sock, 4096).startswith(b"HTTP/1.1 202 ")
            # One at a time onto the disk: the file sink's own bound is not under test.
            wait_for(lambda i=i: _lines(server) > i, 30, what="the post on disk")
        after_posts = server.rss_kib()
        socks = []
        try:
            for _ in range(lurkers):  # ask for the stream, never read it
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.settimeout(TIMEOUT)
                sock.connect(server.address("http"))
                events_request(sock)
                socks.append(sock)
            time.sleep(2.0)
            with_lurkers = server.rss_kib()
            # A page that reads sees the big records cut for display, marked.
            with connect(server) as sock:
                events_request(sock)
                data = b""
                deadline = time.monotonic() + 10
                marker = b"\nevent: records\ndata: "
                while marker not in data or b"\n" not in data.split(marker, 1)[1]:
                    assert time.monotonic() < deadline, data[:300]
                    data += sock.recv(1 << 20)
            first = data.split(b"\nevent: records\ndata: ", 1)[1].split(b"\n", 1)[0]
            shown = json.loads(first)
        finally:
            for sock in socks:
                sock.close()
        grown = (with_lurkers - before) / 1024
        record_figure(
            "15.4",
            posts=posts,
            post_mib=size // MIB,
            never_reading_clients=lurkers,
            rss_start_mib=round(before / 1024, 1),
            rss_after_posts_mib=round(after_posts / 1024, 1),
            rss_with_clients_mib=round(with_lurkers / 1024, 1),
            largest_shown_bytes=max(len(json.dumps(r)) for r in shown),
        )
        assert max(len(json.dumps(r)) for r in shown) < 20_000
        assert all(r.get("truncated") for r in shown)
        assert grown < 64, f"RSS grew {grown:.0f} MiB"
        # Nothing was lost on disk.
        assert _lines(server) == posts

    def test_viewers_are_capped_and_health_still_answers(self, netlog_factory):
        server = netlog_factory("--echo-port", "-1")
        socks = []
        statuses = []
        try:
            for _ in range(40):
                sock = connect(server)
                events_request(sock)
                socks.append(sock)
                statuses.append(sock.recv(4096)[:12])
            health = health_seconds(server)
        finally:
            for sock in socks:
                sock.close()
        record_figure(
            "15.4",
            viewers_tried=40,
            answered_200=statuses.count(b"HTTP/1.1 200"),
            answered_503=statuses.count(b"HTTP/1.1 503"),
            health_s=round(health, 3),
        )
        assert statuses.count(b"HTTP/1.1 200") == 32
        assert statuses.count(b"HTTP/1.1 503") == 8
        assert metric(server, "netlog_viewer_refused_total") == 8
        assert health < 1.0
        # A page that left frees its place at once, not at the next heartbeat (15 s).
        left = time.monotonic()
        wait_for(lambda: _viewers(server) == 0, 5, what="viewers gone")
        record_figure("15.4", viewer_places_free_after_s=round(time.monotonic() - left, 2))


def _viewers(server) -> float:
    return metric(server, "netlog_viewer_clients")


def _files(server) -> list:
    """records.jsonl and its rotated files (10 MiB records rotate it)."""
    return sorted(server.log_dir.glob("records.jsonl*"))


def _lines(server) -> int:
    return sum(path.read_bytes().count(b"\n") for path in _files(server))
