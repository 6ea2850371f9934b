"""Health checks (``health``) in the responder's reply rules."""

from hypothesis import given
from hypothesis import strategies as st

from netlog.responder import MAX_HEALTH_CHECK, is_health_check, reply_for


class TestHealthReply:
    """``health`` gets ``ok`` with its own line ending, and is told apart from everything else."""

    def test_variants(self):
        assert reply_for(b"health", 40000) == b"ok"
        assert reply_for(b"health\n", 40000) == b"ok\n"
        assert reply_for(b"HeAlTh\r\n", 40000) == b"ok\r\n"
        assert reply_for(b"  health  \n", 40000) == b"ok\n"

    def test_near_misses_are_echoed(self):
        for request in (b"healthy", b"health check", b"heal", b"ok"):
            assert reply_for(request, 40000) == request
            assert not is_health_check(request)

    def test_privileged_ports_get_nothing(self):
        assert reply_for(b"health", 1023) is None

    def test_is_health_check(self):
        assert is_health_check(b"health")
        assert is_health_check(b" HEALTH\r\n")
        assert not is_health_check(b"ping\n")
        assert not is_health_check(b"health" + b" " * MAX_HEALTH_CHECK)

    @given(st.binary(max_size=40))
    def test_health_check_iff_ok_reply(self, data):
        reply = reply_for(data, 40000)
        assert reply is not None
        assert len(reply) <= len(data)
        if is_health_check(data):
            assert reply.rstrip(b"\r\n") == b"ok"
