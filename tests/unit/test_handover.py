"""The hand-over frames between ``--workers`` processes and the writer (sinks/handover.py)."""

import pytest

from netlog.record import Record
from netlog.sinks.encode import encode_line
from netlog.sinks.handover import (
    ACK,
    FLUSH,
    HEADER,
    LINES,
    STATS,
    FrameBuffer,
    HandoverError,
    ack_frame,
    ack_pending,
    frame,
    lines_frame,
    split_lines,
)
from netlog.stats import Stats


def record(message: str) -> Record:
    return Record(1.5, 2.5, "info", "app", message, {"k": "v\r\n"}, None, "127.0.0.1:1", "json")


class TestFrames:
    def test_lines_travel_whole_whatever_the_cut(self):
        # Messages with the characters a line splitter could trip on.
        lines = [encode_line(record(m)) for m in ("a", "b\nc", "d\re", "\u2028f", "x" * 5000)]
        stream = (
            lines_frame(LINES, 1, lines[:2])
            + frame(STATS, b"{}")
            + lines_frame(FLUSH, 2, lines[2:])
            + ack_frame(2, 7)
        )
        for cut in (1, 3, 13, 100, len(stream)):
            buffer = FrameBuffer()
            frames = []
            for start in range(0, len(stream), cut):
                frames += buffer.feed(stream[start : start + cut])
            assert buffer.pending == 0
            kinds = [(kind, seq) for kind, seq, _ in frames]
            assert kinds == [(LINES, 1), (STATS, 0), (FLUSH, 2), (ACK, 2)]
            assert split_lines(frames[0][2]) + split_lines(frames[2][2]) == lines
            assert ack_pending(frames[3][2]) == 7

    def test_empty_batch_is_no_lines(self):
        ((kind, seq, payload),) = FrameBuffer().feed(lines_frame(FLUSH, 9, []))
        assert (kind, seq, split_lines(payload)) == (FLUSH, 9, [])

    def test_a_frame_over_the_limit_is_refused_before_it_is_buffered(self):
        buffer = FrameBuffer(limit=10)
        with pytest.raises(HandoverError):
            buffer.feed(HEADER.pack(11, LINES, 1))


class TestSnapshots:
    def test_totals_add_up_and_a_dead_process_holds_no_connection(self):
        worker = Stats()
        worker.received["json"] += 3
        worker.bad_frame("bad_json")
        worker.connections_open["log_tcp"] += 2
        worker.kernel_dropped["log_udp"] = 4
        total = Stats()
        total.received["http"] += 1
        total.add_snapshot(worker.snapshot())
        total.add_snapshot(worker.snapshot(), live=False)
        assert total.received == {"http": 1, "json": 6}
        assert total.dropped == {"bad_json": 2}
        assert total.bad_frames == {"bad_json": 2}
        assert total.connections_open == {"log_tcp": 2}
        assert total.kernel_dropped == {"log_udp": 8}
        total.http_requests[("log", 200)] += 1
        total.clear()
        assert sum(total.received.values()) == 0
        assert not total.http_requests
