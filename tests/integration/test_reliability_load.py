"""Reliability, part 3: many connections, limits and floods (issue 6).

Everything binds 127.0.0.1, is bounded in count and time, and stops by
itself.  Timed assertions appear only where the scenario states a bound.
"""

import random
import selectors
import socket
import threading
import time

import pytest
from reliability_kit import (
    connect,
    is_closed_by_peer,
    log_frame,
    metric,
    probes,
    raise_fd_limit,
    record_figure,
    seq_frame,
    summary,
    udp_socket,
)

LOG_ONLY = ("--echo-port", "-1", "--responder-port", "-1", "--http-port", "-1")
#: The log listeners and /metrics.
NO_ECHO = ("--echo-port", "-1", "--responder-port", "-1")


def open_many(address, count: int, timeout: float = 10.0) -> list[socket.socket]:
    socks: list[socket.socket] = []
    try:
        socks.extend(connect(address, timeout) for _ in range(count))
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def close_all(socks) -> None:
    for sock in socks:
        sock.close()


def delivery_seconds(server, sock: socket.socket, message: str) -> float:
    """Send one record and time until it is on disk."""
    before = len(server.records())
    started = time.monotonic()
    sock.sendall(log_frame(message))
    server.wait_records(before + 1, timeout=10)
    return time.monotonic() - started


class TestSlowloris:
    """Scenario 14: 500 connections that send nothing or stall mid-record."""

    def test_idle_and_stalled_closed_after_timeout_real_client_served(self, netlog_factory):
        raise_fd_limit(4096)
        idle_timeout = 2.0
        server = netlog_factory(*NO_ECHO, "--idle-timeout", str(idle_timeout))
        address = server.address("log_tcp")
        quiet_app = connect(address)
        quiet_app.sendall(log_frame("quiet app, first record"))
        server.wait_records(1)

        # When each connection last did something: its idle clock starts there.
        last_sent: dict[socket.socket, float] = {}
        attackers: list[socket.socket] = []
        try:
            for i in range(500):
                sock = connect(address)
                attackers.append(sock)
                if i >= 350:
                    sock.sendall(b'{"event": "never fini')
                elif i >= 200:
                    sock.sendall(log_frame("never finished")[:30])
                last_sent[sock] = time.monotonic()
            with connect(address) as real:
                took = delivery_seconds(server, real, "real client during the attack")
            assert took < 1.0, f"a real client waited {took:.2f}s"
            # Each is closed once it has been silent for the idle timeout, not before.
            silent_for = []
            with selectors.DefaultSelector() as selector:
                for sock in attackers:
                    selector.register(sock, selectors.EVENT_READ)
                deadline = time.monotonic() + idle_timeout + 10
                while len(silent_for) < len(attackers) and time.monotonic() < deadline:
                    for key, _ in selector.select(0.5):
                        selector.unregister(key.fileobj)
                        silent_for.append(time.monotonic() - last_sent[key.fileobj])
            assert len(silent_for) == len(attackers), "idle connections still open"
            assert min(silent_for) >= idle_timeout - 0.1, "closed before the idle timeout"
            assert all(is_closed_by_peer(sock) for sock in attackers[:20])
        finally:
            close_all(attackers)
        # The quiet application sat at a record boundary: it was kept.
        quiet_app.sendall(log_frame("quiet app, after the timeout"))
        server.wait_records(3)
        quiet_app.close()
        assert metric(server, "netlog_notes_total", reason="idle_timeout") == 500
        assert metric(server, "netlog_records_dropped_total", reason="truncated") == 300
        assert server.stop() == 0
        written, dropped, _ = summary(server.stderr())
        assert written == 3
        assert dropped == 300  # the half frames and half lines, never written half
        record_figure(
            "14",
            idle_connections=500,
            idle_timeout=idle_timeout,
            closed_after_min_s=round(min(silent_for), 2),
            closed_after_max_s=round(max(silent_for), 2),
            real_client_delivery_ms=round(took * 1000, 1),
            half_records_dropped=dropped,
        )


class TestMaxConnections:
    """Scenario 15: beyond ``--max-connections`` new connections wait; existing ones flow."""

    def test_excess_waits_counted_existing_flow(self, netlog_factory):
        limit = 4
        server = netlog_factory(*NO_ECHO, "--max-connections", str(limit))
        address = server.address("log_tcp")
        first = open_many(address, limit)
        excess: list[socket.socket] = []
        try:
            for i, sock in enumerate(first):
                sock.sendall(log_frame(f"a{i} 1"))
            server.wait_records(limit)
            excess = open_many(address, 3)  # the kernel completes the handshake: queued
            for i, sock in enumerate(excess):
                sock.sendall(log_frame(f"b{i}"))
            for i, sock in enumerate(first):
                sock.sendall(log_frame(f"a{i} 2"))
            server.wait_records(2 * limit)
            waits = metric(server, "netlog_notes_total", reason="max_connections")
            assert waits >= 1
            time.sleep(0.5)
            assert not [m for m in map(message_of, server.records()) if m.startswith("b")]
            started = time.monotonic()
            first[0].close()
            first[1].close()
            server.wait_records(2 * limit + 2)
            served_after = time.monotonic() - started
            first[2].close()
            first[3].close()
            server.wait_records(2 * limit + 3)
        finally:
            close_all(first + excess)
        messages = sorted(map(message_of, server.records()))
        assert messages == sorted(
            [f"a{i} {n}" for i in range(limit) for n in (1, 2)] + ["b0", "b1", "b2"]
        )
        assert server.stop() == 0
        assert "the --max-connections limit" in server.stderr()
        record_figure(
            "15",
            limit=limit,
            excess=3,
            queued_served_after_slot_ms=round(served_after * 1000, 1),
            times_a_connection_waited=waits,
        )


def message_of(record: dict) -> str:
    return record["message"]


class TestResponderSafety:
    """Scenario 18: no amplification, no reply to privileged ports, floods rate-limited."""

    def test_reply_never_larger_than_the_request(self, netlog_factory):
        server = netlog_factory("--log-tcp-port", "-1", "--log-udp-port", "-1", "--echo-port", "-1")
        rng = random.Random(6)
        requests = [b"", b"ping", b"PING\r\n", b"  ping  \r\n", b"pingg", b"p", b"\n"]
        requests += [rng.randbytes(rng.randrange(1, 3000)) for _ in range(200)]
        requests += [b"x" * 65_507]
        largest_ratio = 0.0
        with udp_socket() as sock:
            for request in requests:
                sock.sendto(request, server.address("responder"))
                reply, _ = sock.recvfrom(65_535)
                assert len(reply) <= len(request), (request[:20], reply[:20])
                if request:
                    largest_ratio = max(largest_ratio, len(reply) / len(request))
        record_figure("18", probes=len(requests), largest_reply_to_request_ratio=largest_ratio)

    def test_no_reply_to_privileged_source_ports(self, netlog_factory):
        server = netlog_factory("--log-tcp-port", "-1", "--log-udp-port", "-1", "--echo-port", "-1")
        sent = 0
        for port in (7, 19, 53, 123, 1, 1023):
            try:
                sock = udp_socket(timeout=0.3, port=port)
            except PermissionError as exc:
                pytest.skip(f"cannot bind a port below 1024 here: {exc}")
            except OSError:
                continue  # in use by something else on this machine
            with sock:
                sock.sendto(b"ping", server.address("responder"))
                sock.sendto(b"chargen loop?", server.address("responder"))
                sent += 2
                with pytest.raises(TimeoutError):
                    sock.recvfrom(100)
        assert sent >= 6
        with udp_socket() as other:
            other.sendto(b"ping", server.address("responder"))
            assert other.recvfrom(100)[0] == b"pong"
        assert server.stop() == 0
        assert probes(server.stderr()) == (1, 0, sent)
        record_figure("18", privileged_probes=sent, replies=0)

    def test_flood_from_one_source_is_rate_limited_and_counted(self, netlog_factory):
        server = netlog_factory("--log-tcp-port", "-1", "--log-udp-port", "-1", "--echo-port", "-1")
        flood = 20_000
        received = [0]
        with udp_socket(timeout=1.0) as sock:

            def count_replies():
                try:
                    while True:
                        sock.recvfrom(100)
                        received[0] += 1
                except (TimeoutError, OSError):
                    pass

            reader = threading.Thread(target=count_replies)
            reader.start()
            started = time.monotonic()
            for i in range(flood):
                sock.sendto(b"ping", server.address("responder"))
                if i % 200 == 199:
                    time.sleep(0.002)  # keep under the kernel's buffers: count, not lose
            took = time.monotonic() - started
            reader.join(10)
        assert server.stop() == 0
        answered, limited, refused = probes(server.stderr())
        assert refused == 0
        assert limited > 0
        assert answered + limited == flood
        # Rate 1000/s with a burst of 2000: what the limiter may let through.
        assert answered <= 2000 + 1000 * (took + 0.5)
        assert received[0] <= answered
        record_figure(
            "18",
            flood=flood,
            flood_seconds=round(took, 2),
            answered=answered,
            rate_limited=limited,
            replies_received=received[0],
        )


class TestManyConnectionsMemory:
    """Scenario 26: 1,000 idle and 100 active connections; RSS recorded, goal <= 64 MiB."""

    def test_rss_with_1000_idle_and_100_active(self, netlog_factory):
        raise_fd_limit(8192)
        server = netlog_factory(*LOG_ONLY, "--max-connections", "2000")
        address = server.address("log_tcp")
        rss_start = server.rss_kib()
        idle = open_many(address, 1000)
        active = open_many(address, 100)
        groups = [list(enumerate(active))[g::4] for g in range(4)]
        next_seq = [0] * len(active)

        def send(group, count, pause):
            started = time.monotonic()
            for tick in range(count):
                for conn, sock in group:
                    sock.sendall(seq_frame(conn, next_seq[conn]))
                    next_seq[conn] += 1
                if pause:
                    time.sleep(max(0.0, started + (tick + 1) * pause - time.monotonic()))

        def phase(count, pause):
            """Run the 100 senders; the highest RSS seen meanwhile and just after."""
            threads = [threading.Thread(target=send, args=(g, count, pause)) for g in groups]
            for thread in threads:
                thread.start()
            peak = 0
            while any(t.is_alive() for t in threads):
                peak = max(peak, server.rss_kib())
                time.sleep(0.05)
            server.wait_records(500 + sum(next_seq), timeout=60)
            return max(peak, server.rss_kib())

        try:
            for i, sock in enumerate(idle[:500]):
                sock.sendall(log_frame(f"idle {i}"))  # quiet applications, kept open
            server.wait_records(500)
            rss_idle = server.rss_kib()
            # 100 records/s on each active connection (10,000/s) for 3 s ...
            rss_paced = phase(300, 0.01)
            # ... then the same 100 connections as fast as they can send.
            rss_burst = phase(300, 0.0)
        finally:
            close_all(idle + active)
        total = 500 + sum(next_seq)
        assert next_seq == [600] * 100
        assert server.stop() == 0
        assert summary(server.stderr())[:2] == (total, 0)
        record_figure(
            "26",
            idle=1000,
            active=100,
            records=total,
            rss_start_mib=round(rss_start / 1024, 1),
            rss_1000_idle_mib=round(rss_idle / 1024, 1),
            rss_paced_10k_per_s_mib=round(rss_paced / 1024, 1),
            rss_burst_mib=round(rss_burst / 1024, 1),
        )
        assert rss_paced <= 64 * 1024, f"RSS reached {rss_paced / 1024:.1f} MiB"
        # A burst queues lines for the disk; 229 MiB before lines were made compact.
        assert rss_burst <= 128 * 1024, f"RSS reached {rss_burst / 1024:.1f} MiB in a burst"
