"""The responder's reply rules and rate limiter, as pure functions."""

from hypothesis import given
from hypothesis import strategies as st

from netlog.responder import RateLimiter, reply_for


class TestReplyFor:
    """ping gets pong, everything else is echoed, never amplified."""

    def test_ping_variants(self):
        assert reply_for(b"ping", 40000) == b"pong"
        assert reply_for(b"ping\n", 40000) == b"pong\n"
        assert reply_for(b"PiNg\r\n", 40000) == b"pong\r\n"
        assert reply_for(b"   ping   \n", 40000) == b"pong\n"

    def test_other_data_is_echoed(self):
        assert reply_for(b"pingpong", 40000) == b"pingpong"
        assert reply_for(b"", 40000) == b""
        assert reply_for(b"\x00\xff", 40000) == b"\x00\xff"

    def test_no_reply_to_privileged_ports(self):
        for port in (0, 7, 19, 53, 123, 1023):
            assert reply_for(b"ping", port) is None
        assert reply_for(b"ping", 1024) == b"pong"

    @given(st.binary(max_size=300), st.integers(min_value=0, max_value=65535))
    def test_reply_never_larger_than_request(self, data, port):
        reply = reply_for(data, port)
        assert reply is None or len(reply) <= len(data)


class TestRateLimiter:
    """A token bucket per source, burst twice the rate."""

    def test_burst_then_refill(self):
        limiter = RateLimiter(10)
        allowed = sum(limiter.allow("a", 0.0) for _ in range(50))
        assert allowed == 20
        assert not limiter.allow("a", 0.0)
        assert limiter.allow("a", 0.1)  # one token back after 1/rate s

    def test_sources_are_independent(self):
        limiter = RateLimiter(1)
        assert limiter.allow("a", 0.0)
        assert limiter.allow("a", 0.0)
        assert not limiter.allow("a", 0.0)
        assert limiter.allow("b", 0.0)

    def test_zero_is_unlimited(self):
        limiter = RateLimiter(0)
        assert all(limiter.allow("a", 0.0) for _ in range(10_000))

    def test_source_table_is_bounded(self):
        limiter = RateLimiter(1, max_sources=100)
        for i in range(1000):
            limiter.allow(i, 0.0)
        assert len(limiter._buckets) == 100
