"""The memo-bomb guard over the real TCP port: a bomb costs its frame, nothing else.

CPython's C unpickler (3.11; gh-115952) sizes its memo array from the index
a ``LONG_BINPUT``/``PUT`` names and zeroes it: the 10-byte frames below
would make an unguarded receiver allocate and touch 256 MiB each (measured
with ``pickle.loads`` under ``RLIMIT_AS``: 128 MiB took 99 ms of CPU).  The
existing scenario-6 bombs name index 2**31, whose 32 GiB allocation fails
by itself; these are sized to *succeed*, so only the guard keeps the peak
RSS flat.  The bombs sit between honest frames of the same connection, in
one ``sendall``: each costs its own frame, the connection goes on.
"""

from __future__ import annotations

import logging
import logging.handlers
import pickle
import struct

from reliability_kit import connect, log_frame, peak_rss_kib, raw_frame, record_figure, summary

LOG_ONLY = ("--echo-port", "-1", "--responder-port", "-1", "--http-port", "-1")
INDEX = 1 << 24  # a memo of 2 * INDEX pointers: 256 MiB


def _hidden_bomb() -> bytes:
    """A genuine LogRecord frame with a LONG_BINPUT just before STOP.

    Without the guard this frame unpickles to a valid record (the dict is
    still on the stack at STOP), so it would be *written*, after zeroing
    256 MiB.  With it, the frame is a bad frame and its message never appears.
    """
    record = logging.makeLogRecord({"name": "rel", "msg": "hidden bomb", "levelname": "INFO"})
    body = logging.handlers.SocketHandler("127.0.0.1", 1).makePickle(record)[4:]
    assert body.endswith(b".")
    return raw_frame(body[:-1] + b"r" + struct.pack("<I", INDEX) + b".")


BOMBS = (
    raw_frame(b"Nr" + struct.pack("<I", INDEX) + b"."),  # LONG_BINPUT, protocol 1
    raw_frame(b"\x80\x02Nr" + struct.pack("<I", INDEX) + b"."),  # the same, protocol 2
    raw_frame(b"Np%d\n." % INDEX),  # PUT, the text protocol
    _hidden_bomb(),
    raw_frame(b"B\xff\xff\xff\x7f" + b"x" * 16 + b"."),  # BINBYTES claiming 2 GiB
)


def test_each_bomb_costs_its_frame_and_memory_stays_flat(netlog_factory):
    # The hand-made bombs are what an unguarded pickle.loads would act on.
    assert pickle.loads(raw_frame(b"Nr\x01\x00\x00\x00.")[4:]) is None
    server = netlog_factory(*LOG_ONLY)
    peak_before = peak_rss_kib(server.pid)
    burst = b"".join(log_frame(f"before {i}") + bomb for i, bomb in enumerate(BOMBS))
    burst += log_frame("after all")
    with connect(server.address("log_tcp"), timeout=30) as sock:
        sock.sendall(burst)
        records = server.wait_records(len(BOMBS) + 1, timeout=60)
    growth = peak_rss_kib(server.pid) - peak_before
    assert [r["message"] for r in records] == [f"before {i}" for i in range(len(BOMBS))] + [
        "after all"
    ]
    assert growth < 32 * 1024, f"peak RSS grew {growth} KiB"
    assert server.stop() == 0
    written, _dropped, bad = summary(server.stderr())
    assert (written, bad) == (len(BOMBS) + 1, len(BOMBS))
    record_figure("6b", bombs=len(BOMBS), memo_mib=INDEX * 16 >> 20, peak_rss_growth_kib=growth)
