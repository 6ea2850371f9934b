"""What the UDP responder answers, as pure functions of the request.

Kept apart from the socket so the two safety rules of a UDP service can be
tested exhaustively: a reply is never larger than its request (no
amplification), and nothing is sent to a privileged source port (the inetd
guard against echo/chargen ping-pong loops, CVE-1999-0103).

Health checks send their own word, ``health`` (answered ``ok``), so the
server can count them apart from the probes people send: a compose health
check every five seconds would otherwise bury one ``nc -u`` ping in the
shutdown summary.
"""

from __future__ import annotations

from collections import OrderedDict

#: Replies to source ports below this are never sent.
LOWEST_REPLY_PORT = 1024

#: The word a health check sends, and the reply it gets (never larger).
HEALTH_WORD = b"health"
HEALTH_REPLY = b"ok"
#: A datagram longer than this is never a health check (whitespace included),
#: so the server's hot loop can skip the test for most datagrams by length.
MAX_HEALTH_CHECK = 16

_LINE_ENDINGS = b"\r\n"


def reply_for(request: bytes, source_port: int) -> bytes | None:
    """The reply to one datagram, or ``None`` when none must be sent.

    ``ping`` in any case, surrounding whitespace ignored, gets ``pong`` with
    the request's own line ending (so ``nc`` prints it on its own line),
    ``health`` likewise gets ``ok``; everything else is echoed unchanged
    (RFC 862).
    """
    if source_port < LOWEST_REPLY_PORT:
        return None
    word = request.strip()
    if len(word) == 4 and word.lower() == b"ping":
        return b"pong" + _line_ending(request)
    if len(word) == len(HEALTH_WORD) and word.lower() == HEALTH_WORD:
        return HEALTH_REPLY + _line_ending(request)
    return request


def is_health_check(request: bytes) -> bool:
    """Whether ``request`` is a health check (``health``, any case, whitespace ignored).

    Answered like any probe, but counted apart: see the module's docstring.
    """
    return len(request) <= MAX_HEALTH_CHECK and request.strip().lower() == HEALTH_WORD


def _line_ending(request: bytes) -> bytes:
    """The line ending ``request`` ends with (``b""`` when none), for the reply to reuse."""
    return request[len(request.rstrip(_LINE_ENDINGS)) :]


class RateLimiter:
    """A token bucket per source: ``rate`` tokens a second, ``burst`` at most.

    The table of sources is bounded (least recently seen forgotten first), so
    a flood of spoofed source addresses cannot grow memory; a forgotten
    source simply starts again with a full bucket.
    """

    __slots__ = ("_buckets", "burst", "max_sources", "rate")

    def __init__(self, rate: float, burst: float | None = None, max_sources: int = 10_000) -> None:
        self.rate = rate
        self.burst = 2 * rate if burst is None else burst
        self.max_sources = max_sources
        # source -> (tokens, time of last update)
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()

    def allow(self, source: object, now: float) -> bool:
        """Take one token for ``source`` at time ``now``; ``False`` when none is left."""
        if self.rate <= 0:
            return True
        buckets = self._buckets
        entry = buckets.get(source)
        if entry is None:
            tokens = self.burst
            if len(buckets) >= self.max_sources:
                buckets.popitem(last=False)
        else:
            tokens, then = entry
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            buckets.move_to_end(source)
        if tokens < 1.0:
            buckets[source] = (tokens, now)
            return False
        buckets[source] = (tokens - 1.0, now)
        return True
