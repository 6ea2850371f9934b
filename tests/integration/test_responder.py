"""UDP responder against the real process."""

import os
import shutil
import socket
import subprocess
import sys

import pytest

from netlogproc import HOST, ROOT

#: The compose file's health check (docker-compose.yml: healthcheck.test).
HEALTHCHECK = ROOT / "docker" / "healthcheck.py"
NC = shutil.which("nc")
needs_nc = pytest.mark.skipif(NC is None, reason="no nc on PATH (apt-get install netcat-openbsd)")


def udp(timeout=5.0):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((HOST, 0))
    return sock


class TestResponder:
    """One reply per datagram, within the safety rules."""

    @pytest.mark.parametrize(
        ("request_", "reply"),
        [(b"ping", b"pong"), (b"PING\r\n", b"pong\r\n"), (b"  Ping \n", b"pong\n"), (b"hi", b"hi")],
    )
    def test_ping_and_echo(self, netlog, request_, reply):
        with udp() as sock:
            sock.sendto(request_, netlog.address("responder"))
            data, _ = sock.recvfrom(65535)
            assert data == reply

    def test_sixty_thousand_byte_datagram_comes_back_whole(self, netlog):
        payload = bytes(range(256)) * 234 + b"x" * 96  # 60,000 bytes
        assert len(payload) == 60_000
        with udp() as sock:
            sock.sendto(payload, netlog.address("responder"))
            data, _ = sock.recvfrom(65535)
        assert data == payload

    def test_rate_limit_drops_and_counts(self, netlog_factory):
        server = netlog_factory("--responder-rate", "5")
        answered = 0
        with udp(timeout=0.5) as sock:
            for _ in range(100):
                sock.sendto(b"ping", server.address("responder"))
            try:
                while True:
                    sock.recvfrom(100)
                    answered += 1
            except TimeoutError:
                pass
        assert 1 <= answered <= 12  # burst of 2x the rate, plus refill
        assert server.stop() == 0
        assert f"{100 - answered} rate-limited" in server.stderr()

    def test_no_reply_to_privileged_source_port(self, netlog):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(0.5)
        try:
            sock.bind((HOST, 1019))
        except OSError as exc:
            sock.close()
            pytest.skip(f"cannot bind a port below 1024 here: {exc}")
        with sock:
            sock.sendto(b"ping", netlog.address("responder"))
            with pytest.raises(TimeoutError):
                sock.recvfrom(100)
        # The server is still answering everyone else.
        with udp() as other:
            other.sendto(b"ping", netlog.address("responder"))
            assert other.recvfrom(100)[0] == b"pong"


def run_healthcheck(port: int) -> subprocess.CompletedProcess:
    """Run the container's health check as Docker does, against ``port``."""
    env = {**os.environ, "NETLOG_RESPONDER_PORT": str(port)}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def nc_udp(port: int, data: bytes) -> bytes:
    """``printf DATA | nc -u -w1 127.0.0.1 PORT``: what nc prints back."""
    assert NC is not None
    done = subprocess.run(
        [NC, "-u", "-w1", HOST, str(port)], input=data, capture_output=True, timeout=20, check=False
    )
    return done.stdout


class TestHealthChecks:
    """Compose's health checks are answered, and counted apart from the probes people send."""

    @pytest.mark.parametrize(
        ("request_", "reply"),
        [(b"health", b"ok"), (b"HEALTH\r\n", b"ok\r\n"), (b" Health \n", b"ok\n")],
    )
    def test_health_gets_ok(self, netlog, request_, reply):
        with udp() as sock:
            sock.sendto(request_, netlog.address("responder"))
            assert sock.recvfrom(100)[0] == reply

    def test_compose_healthcheck_passes_against_the_responder(self, netlog):
        port = netlog.ports["responder"]
        done = run_healthcheck(port)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"ok from 127.0.0.1:{port}\n"

    def test_compose_healthcheck_fails_in_one_line_without_a_responder(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]  # bound, never read: no answer comes
            done = run_healthcheck(port)
        assert done.returncode == 1
        assert done.stderr == f"healthcheck: no ok from 127.0.0.1:{port} after 3 tries\n"

    @needs_nc
    def test_one_nc_ping_among_health_checks_is_one_probe(self, netlog):
        port = netlog.ports["responder"]
        for _ in range(12):
            assert run_healthcheck(port).returncode == 0
        assert nc_udp(port, b"ping\n") == b"pong\n"
        assert nc_udp(port, b"health\n") == b"ok\n"
        assert netlog.stop() == 0
        summary = netlog.stderr().strip().splitlines()[-1]
        assert "probes: 1 answered, 0 rate-limited" in summary

    @needs_nc
    def test_summary_counts_health_checks(self, netlog):
        port = netlog.ports["responder"]
        for _ in range(3):
            assert run_healthcheck(port).returncode == 0
        assert nc_udp(port, b"health\n") == b"ok\n"
        assert netlog.stop() == 0
        assert "health checks: 4 answered" in netlog.stderr()
