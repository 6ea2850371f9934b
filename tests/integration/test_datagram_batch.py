"""A log datagram listener's batched read (``take_queued``) makes what one datagram at a time makes.

``LogDatagramServer.take_queued`` reads every queued datagram in one
wake-up, gives them one receive time, keeps each sender's formatted
address and counts the bytes once: all for speed (``bench/protocols.py``),
so the records it hands on are checked against ``decode_datagram`` of each
datagram alone (the general path), with the sender's own address.  The
server runs in this process under gevent on a real UDP socket on
127.0.0.1, as in ``test_attack_listeners``'s in-process tests.
"""

from __future__ import annotations

import collections
import json
import time

import gevent
import pytest
from reliability_kit import udp_socket

from netlog.decode.datagram import decode_datagram
from netlog.errors import DecodeError
from netlog.report import Reporter
from netlog.sinks.pipeline import Pipeline
from netlog.stats import Stats
from servers import logsink

MAX_FRAME = 1 << 20
#: What each sender sends; the blank one and the pickle shorter than its prefix are bad.
DATAGRAMS = [
    json.dumps({"event": "json {n}", "level": "warning", "logger": "app", "k": 1}).encode(),
    b"plain text {n}\n",
    b"<14>1 2024-01-02T03:04:05Z host app 1 - - syslog {n}",
    b"   ",
    b"\x00\x00\x01\x00short pickle",
    b"caf\xe9 not UTF-8 {n}",
]


class _Sink:
    def __init__(self) -> None:
        self.records: list = []

    def write_lines(self, _lines) -> None:
        pass

    def write_batch(self, records, _lines) -> None:
        self.records.extend(records)

    def flush(self) -> None:
        pass


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.append(text)

    def flush(self) -> None:
        pass


def _alone(data: bytes, peer: str, received: float) -> tuple[object, str | None]:
    """The general path: ``decode_datagram`` of one datagram, or its DecodeError's reason."""
    try:
        record = decode_datagram(
            data, peer, received, max_frame=MAX_FRAME, notes=collections.Counter()
        )
    except DecodeError as exc:
        return None, exc.reason
    return record, None


def test_a_wake_up_makes_what_each_datagram_alone_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Three senders and two addresses kept: the kept addresses start again on the way.
    monkeypatch.setattr(logsink, "PEERS_KEPT", 2)
    sink = _Sink()
    stats = Stats()
    pipe = Pipeline(sink, sink, stats)
    lines = _Lines()
    server = logsink.LogDatagramServer(("127.0.0.1", 0), pipe, Reporter(lines), max_frame=MAX_FRAME)
    server.start()
    sent: list[tuple[bytes, str]] = []
    try:
        senders = [udp_socket() for _ in range(3)]
        try:
            # All queued before the server's loop runs: one wake-up takes them.
            for n in range(3):
                for sock in senders:
                    for template in DATAGRAMS:
                        data = template.replace(b"{n}", str(n).encode())
                        sock.sendto(data, server.address)
                        sent.append((data, f"127.0.0.1:{sock.getsockname()[1]}"))
        finally:
            for sock in senders:
                sock.close()
        assert len(sent) <= logsink.DATAGRAMS_PER_WAKEUP
        deadline = time.monotonic() + 5
        while len(sink.records) < 12 and time.monotonic() < deadline:
            gevent.sleep(0.01)
        gevent.sleep(0.05)  # anything else that would come
    finally:
        server.close()
    pipe.flush()

    got = sink.records
    received = {record.received for record in got}
    assert len(received) == 1, "one wake-up, one receive time"
    (now,) = received
    alone = [_alone(data, peer, now) for data, peer in sent]
    assert got == [record for record, _ in alone if record is not None]
    assert stats.bytes_in["log_udp"] == sum(len(data) for data, _ in sent)
    reasons = collections.Counter(reason for _, reason in alone if reason)
    assert reasons == {"empty": 9, "length_mismatch": 9}
    assert {reason: stats.bad_frames[reason] for reason in reasons} == reasons
    assert {record.peer for record in got} == {peer for _, peer in sent}
