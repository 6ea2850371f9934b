"""UDP responder against the real process."""

import socket

import pytest

from netlogproc import HOST


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
