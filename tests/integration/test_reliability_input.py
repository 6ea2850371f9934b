"""Reliability, part 1: hostile and odd input against the real process (issue 6).

Scenario numbers are those of RELIABILITY.md.  Each test states its figure
with ``record_figure``; ARCHITECTURE.md "Wire formats" is the promise checked.
"""

import datetime as dt
import json
import logging
import logging.handlers
import os
import pickle
import socket
import struct
import threading
import time

import pytest
from reliability_kit import (
    connect,
    cpu_seconds,
    frame,
    is_closed_by_peer,
    log_frame,
    metric,
    parse_lines,
    peak_rss_kib,
    raw_frame,
    record_figure,
    summary,
    udp_socket,
)

from netlog.client import SinkHandler
from netlogproc import wait_for

#: Most scenarios need only the log listeners.
LOG_ONLY = ("--echo-port", "-1", "--responder-port", "-1", "--http-port", "-1")
#: The log listeners and /metrics.
NO_ECHO = ("--echo-port", "-1", "--responder-port", "-1")


def isolated_logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


def messages(records: list[dict]) -> list[str]:
    return [r["message"] for r in records]


class Custom:
    """An application object in ``extra=``: the sink must not import or run it."""

    def __init__(self) -> None:
        self.secret = "kept as text"


class TestExactDelivery:
    """Scenario 1: 10,000 SocketHandler records over 10 connections, exactly once."""

    def test_ten_thousand_records_ten_connections_sequence_check(self, netlog_factory):
        server = netlog_factory(*LOG_ONLY)
        per_connection, connections = 1000, 10
        handlers = [
            logging.handlers.SocketHandler(*server.address("log_tcp")) for _ in range(connections)
        ]

        def work(conn: int) -> None:
            logger = isolated_logger(f"rel.exact.{conn}", handlers[conn])
            for seq in range(per_connection):
                logger.info("c%d s%d", conn, seq, extra={"conn": conn, "seq": seq})

        started = time.monotonic()
        threads = [threading.Thread(target=work, args=(c,)) for c in range(connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for handler in handlers:
            handler.close()
        server.wait_records(connections * per_connection, timeout=30)
        took = time.monotonic() - started
        assert server.stop() == 0
        records = parse_lines(server.log_dir / "records.jsonl")
        assert len(records) == connections * per_connection
        for conn in range(connections):
            seqs = [r["fields"]["seq"] for r in records if r["fields"]["conn"] == conn]
            assert seqs == list(range(per_connection)), f"connection {conn} has a gap or a repeat"
        assert summary(server.stderr()) == (10_000, 0, 0)
        record_figure("1", records=len(records), connections=connections, seconds=round(took, 2))


class TestDatagramSizes:
    """Scenario 2: a 20 KiB DatagramHandler record arrives whole; a bad prefix is counted."""

    def test_twenty_kib_record_whole_and_mismatched_prefix_counted(self, netlog_factory):
        server = netlog_factory(*LOG_ONLY)
        handler = logging.handlers.DatagramHandler(*server.address("log_udp"))
        logger = isolated_logger("rel.udp.big", handler)
        big = "".join(chr(0x41 + i % 26) for i in range(20 * 1024))
        logger.warning(big, extra={"tag": "big"})
        handler.close()
        good = frame({"msg": "right size", "levelno": 20})
        body = good[4:]
        with udp_socket() as sock:
            # Says more than it carries (as if cut short), then less.
            sock.sendto(struct.pack(">L", len(body) + 10) + body, server.address("log_udp"))
            sock.sendto(struct.pack(">L", len(body) - 10) + body, server.address("log_udp"))
            sock.sendto(good, server.address("log_udp"))
        records = server.wait_records(2)
        assert server.stop() == 0
        records = server.records()
        assert len(records) == 2
        (whole,) = [r for r in records if r["fields"].get("tag") == "big"]
        assert whole["message"] == big
        assert whole["format"] == "pickle"
        assert "right size" in messages(records)
        _, dropped, bad = summary(server.stderr())
        assert (dropped, bad) == (2, 2)
        assert "length_mismatch" in server.stderr() or "says" in server.stderr()
        record_figure("2", datagram_bytes=len(big), mismatched_counted=bad)


class TestHugeLengthPrefix:
    """Scenario 3: a 0xFFFFFFF0 length prefix; extends test_logsink's 5 s version to < 1 s."""

    def test_closed_within_a_second_counted_memory_flat_others_flow(self, netlog_factory):
        server = netlog_factory(*LOG_ONLY)
        rss_before = server.rss_kib()
        closes = []
        with connect(server.address("log_tcp")) as other:
            other.sendall(log_frame("before"))
            for _ in range(20):
                with connect(server.address("log_tcp"), timeout=5) as bad:
                    started = time.monotonic()
                    bad.sendall(struct.pack(">L", 0xFFFFFFF0) + b"\x80" * 4096)
                    assert is_closed_by_peer(bad)
                    closes.append(time.monotonic() - started)
            other.sendall(log_frame("after"))
            assert messages(server.wait_records(2)) == ["before", "after"]
        with connect(server.address("log_tcp")) as late:
            late.sendall(log_frame("a new connection"))
        server.wait_records(3)
        growth = server.rss_kib() - rss_before
        assert max(closes) < 1.0, f"slowest close took {max(closes):.3f}s"
        assert growth < 10 * 1024, f"RSS grew {growth} KiB"
        assert server.stop() == 0
        assert summary(server.stderr())[2] == 20
        record_figure(
            "3",
            bad_connections=20,
            slowest_close_ms=round(max(closes) * 1000, 1),
            rss_growth_kib=growth,
        )


class TestBadFramesKeepTheConnection:
    """Scenario 4: a well-framed frame that is not a dict, or is corrupt, is skipped."""

    def test_bad_frames_counted_connection_kept(self, netlog_factory):
        server = netlog_factory(*NO_ECHO)
        bad_frames = [
            frame(["a", "list"]),
            frame("a string"),
            frame({1: "int key", "msg": "x"}),
            raw_frame(b"\x80\x02garbage that is no pickle"),
            raw_frame(b""),
            raw_frame(pickle.dumps({"msg": "cut"}, 2)[:-5]),
        ]
        with connect(server.address("log_tcp")) as sock:
            sock.sendall(log_frame("first") + b"".join(bad_frames) + log_frame("second"))
            server.wait_records(2)
            # Policy: framing intact -> frame skipped, connection kept.
            sock.sendall(log_frame("third, same connection"))
            server.wait_records(3)
        assert messages(server.records()) == ["first", "second", "third, same connection"]
        counted = wait_for(
            lambda: metric(server, "netlog_bad_frames_total", reason="bad_frame"),
            10,
            what="the bad frames in /metrics",
        )
        assert counted == len(bad_frames)
        assert server.stop() == 0
        _, dropped, bad = summary(server.stderr())
        assert (dropped, bad) == (len(bad_frames), len(bad_frames))
        assert "skipped a bad pickle frame" in server.stderr()
        record_figure("4", bad_frames_sent=len(bad_frames), counted=bad, connection_kept=True)


def _reduce_payloads(marker):
    command = f"touch {marker}"

    class System:
        def __reduce__(self):
            return (os.system, (command,))

    class Eval:
        def __reduce__(self):
            return (eval, (f"__import__('os').system({command!r})",))

    class Popen:
        def __reduce__(self):
            import subprocess  # noqa: PLC0415 - only the name is pickled

            return (subprocess.Popen, (["touch", str(marker)],))

    return {"system": System(), "eval": Eval(), "popen": Popen()}


class TestReducePickles:
    """Scenario 5: ``__reduce__`` gadgets never run (test_logsink covers protocol 1 over TCP)."""

    @pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
    def test_nothing_runs_tcp_and_udp(self, netlog_factory, tmp_path, protocol):
        server = netlog_factory(*LOG_ONLY)
        marker = tmp_path / "pwned"
        gadgets = _reduce_payloads(marker)
        tcp = [frame({"msg": f"tcp {name}", "x": g}, protocol) for name, g in gadgets.items()]
        # The gadget as the whole frame: not a dict, so a bad frame, still nothing runs.
        tcp.append(frame(gadgets["system"], protocol))
        # Protocol 0 spelt by hand: GLOBAL 'posix system', REDUCE.
        tcp.append(raw_frame(f"cposix\nsystem\n(S'{'touch ' + str(marker)}'\ntR.".encode()))
        with connect(server.address("log_tcp")) as sock:
            sock.sendall(b"".join(tcp) + log_frame("after the gadgets"))
        with udp_socket() as sock:
            for name, gadget in gadgets.items():
                sock.sendto(
                    frame({"msg": f"udp {name}", "x": gadget}, protocol), server.address("log_udp")
                )
        records = server.wait_records(7)
        time.sleep(0.3)
        assert not marker.exists()
        by_message = {r["message"]: r for r in records}
        assert "after the gadgets" in by_message
        for name in gadgets:
            for transport in ("tcp", "udp"):
                value = by_message[f"{transport} {name}"]["fields"]["x"]
                assert isinstance(value, str)
                assert value.startswith("<")
        assert server.stop() == 0
        assert summary(server.stderr())[2] == 2  # the bare gadget and the hand-made one
        assert not marker.exists()
        record_figure("5", protocol=protocol, gadgets=len(gadgets) * 2 + 2, marker_created=False)


def _memo_bombs() -> list[bytes]:
    big = "A" * 100_000
    dag: list = [big]
    for _ in range(40):
        dag = [dag, dag]
    return [
        frame({"msg": "list", "x": [big] * 50_000}),  # 200 KB frame, 5 GB of text
        frame({"msg": [big] * 50_000}),
        frame({"msg": "dag", "x": dag}),  # 2**40 references
        frame({"msg": "keys", **{f"k{i}": big for i in range(5_000)}}),
        raw_frame(b"\x80\x02}r\xff\xff\xff\x7f."),  # gh-115952: LONG_BINPUT sizes the memo
        raw_frame(b"\x80\x02}p2147483647\n."),  # the same with PUT
    ]


class TestMemoAmplification:
    """Scenario 6: small frames that expand hugely are rejected, memory bounded."""

    def test_rejected_and_memory_bounded(self, netlog_factory):
        server = netlog_factory(*LOG_ONLY)
        bombs = _memo_bombs()
        peak_before = peak_rss_kib(server.pid)
        started = time.monotonic()
        with connect(server.address("log_tcp"), timeout=30) as sock:
            for bomb in bombs:
                sock.sendall(bomb + log_frame("still alive"))
        records = server.wait_records(len(bombs), timeout=30)
        took = time.monotonic() - started
        peak_growth = peak_rss_kib(server.pid) - peak_before
        assert messages(records) == ["still alive"] * len(bombs)
        assert peak_growth < 32 * 1024, f"peak RSS grew {peak_growth} KiB"
        assert server.stop() == 0
        assert summary(server.stderr())[2] == len(bombs)
        record_figure(
            "6",
            bombs=len(bombs),
            largest_frame_bytes=max(map(len, bombs)),
            peak_rss_growth_kib=peak_growth,
            seconds=round(took, 2),
        )


class TestOddExtras:
    """Scenario 7: ``extra=`` with a datetime, a custom class and a set keeps the record."""

    def test_stdlib_socket_handler(self, netlog_factory):
        server = netlog_factory(*LOG_ONLY)
        handler = logging.handlers.SocketHandler(*server.address("log_tcp"))
        logger = isolated_logger("rel.extra", handler)
        when = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
        logger.info("odd extras", extra={"when": when, "obj": Custom(), "tags": {3, 1, 2}})
        handler.close()
        (record,) = server.wait_records(1)
        fields = record["fields"]
        assert fields["when"] == "2024-05-06T07:08:09.123456+00:00"
        assert fields["tags"] == [1, 2, 3]
        assert isinstance(fields["obj"], str)
        assert "Custom" in fields["obj"]
        record_figure("7", transport="SocketHandler", obj=fields["obj"][:80])

    @pytest.mark.parametrize("wire", ["pickle", "json"])
    def test_sink_handler_including_an_unpicklable_value(self, netlog_factory, wire):
        server = netlog_factory(*LOG_ONLY)
        handler = SinkHandler(*server.address("log_tcp"), wire=wire)
        logger = isolated_logger(f"rel.extra.{wire}", handler)
        logger.info(
            "odd extras",
            extra={
                "when": dt.date(2024, 5, 6),
                "obj": Custom(),
                "tags": frozenset({"b", "a"}),
                "lock": threading.Lock(),
            },
        )
        handler.close()
        (record,) = server.wait_records(1)
        fields = record["fields"]
        assert record["message"] == "odd extras"
        assert fields["when"] == "2024-05-06"
        for key in ("obj", "lock"):
            assert isinstance(fields[key], str)
        assert "lock" in fields["lock"]
        assert sorted(fields["tags"]) == ["a", "b"] or isinstance(fields["tags"], str)


class TestTruncatedStream:
    """Scenario 8: a partial frame then EOF (or a stall): no busy loop, counted, earlier kept."""

    def test_no_busy_loop_counted_earlier_records_kept(self, netlog_factory):
        server = netlog_factory(*LOG_ONLY, "--grace", "1")
        partial = log_frame("never finished")[:-20]
        with connect(server.address("log_tcp")) as sock:
            sock.sendall(log_frame("one") + log_frame("two") + partial)
        stalled = connect(server.address("log_tcp"))
        stalled.sendall(log_frame("three") + partial)
        server.wait_records(3)
        time.sleep(0.3)
        before = cpu_seconds(server.pid)
        time.sleep(1.0)
        used = cpu_seconds(server.pid) - before
        assert used < 0.1, f"server used {used:.2f}s of CPU in a quiet second"
        assert sorted(messages(server.records())) == ["one", "three", "two"]
        assert server.stop() == 0
        stalled.close()
        _, dropped, _ = summary(server.stderr())
        assert dropped == 2  # the closed one and the stalled one
        assert "closed inside a pickle frame" in server.stderr()
        record_figure("8", cpu_seconds_in_quiet_second=round(used, 3), truncated_counted=dropped)


class TestOneBytePerSend:
    """Scenario 9: one byte per ``send()``: every record decodes."""

    def test_pickle_json_and_text(self, netlog_factory):
        server = netlog_factory(*LOG_ONLY)
        streams = [
            (log_frame("pickle one") + log_frame("pickle two", k="ü"), 0.0005),
            (b'{"event": "json one"}\n{"event": "json two", "n": 2}\r\n', 0.0),
            (b"text one\ntext two\n", 0.0),
        ]
        sent = 0
        for data, pause in streams:
            with connect(server.address("log_tcp")) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for i in range(len(data)):
                    sock.send(data[i : i + 1])
                    sent += 1
                    if pause:
                        time.sleep(pause)
        records = server.wait_records(6)
        assert sorted(messages(records)) == sorted(
            ["pickle one", "pickle two", "json one", "json two", "text one", "text two"]
        )
        assert {r["format"] for r in records} == {"pickle", "json", "text"}
        record_figure("9", single_byte_sends=sent, records=len(records))


class TestLastLineWithoutNewline:
    """Scenario 10: a line without its final newline at EOF is written (documented)."""

    @pytest.mark.parametrize(
        ("data", "expected", "fmt"),
        [(b'{"event": "no newline"}', "no newline", "json"), (b"bare text", "bare text", "text")],
    )
    def test_written_at_eof(self, netlog_factory, data, expected, fmt):
        server = netlog_factory(*LOG_ONLY)
        with connect(server.address("log_tcp")) as sock:
            sock.sendall(b"first\n" + data)
        records = server.wait_records(2)
        assert messages(records) == ["first", expected]
        assert records[1]["format"] == fmt


class TestOverlongLines:
    """Scenario 11: a line over ``--max-line`` (default 1 MiB) is dropped, counted, resynced."""

    def test_dropped_counted_memory_bounded_resynchronised(self, netlog_factory):
        server = netlog_factory(*LOG_ONLY)
        peak_before = peak_rss_kib(server.pid)
        chunk = b"x" * (1 << 20)
        with connect(server.address("log_tcp"), timeout=30) as sock:
            sock.sendall(b'{"event": "before"}\n')
            for _ in range(32):  # 32 MiB without a newline
                sock.sendall(chunk)
            sock.sendall(b'\n{"event": "after"}\n')
            # A JSON line over the limit, then text.
            sock.sendall(b'{"event": "' + b"j" * (3 << 20) + b'"}\ntext after\n')
        records = server.wait_records(3, timeout=30)
        peak_growth = peak_rss_kib(server.pid) - peak_before
        assert messages(records) == ["before", "after", "text after"]
        assert peak_growth < 16 * 1024, f"peak RSS grew {peak_growth} KiB"
        assert server.stop() == 0
        assert summary(server.stderr())[1] == 2
        assert "longer than 1048576 bytes" in server.stderr()
        record_figure("11", longest_line_mib=32, dropped=2, peak_rss_growth_kib=peak_growth)


def _deep_pickle(levels: int) -> bytes:
    def text(s: str) -> bytes:
        data = s.encode()
        return b"X" + struct.pack("<I", len(data)) + data

    nested = b"]" * levels + b"a" * (levels - 1)
    body = b"}" + text("msg") + text("deep pickle") + b"s" + text("x") + nested + b"s."
    return raw_frame(body)


class TestBrokenJson:
    """Scenario 12: invalid UTF-8, lone surrogates, NaN, huge numbers, deep nesting."""

    @pytest.mark.parametrize("console", ["pretty", "json"])
    def test_each_counted_or_escaped_writer_survives(self, netlog_factory, console):
        server = netlog_factory(*NO_ECHO, "--console", console)
        lines = [
            b'{"event": "bad utf8 \xff\xfe"}',
            b"text with bad utf8 \xc3\x28",
            b'{"event": "lone \\ud800 surrogate"}',
            b'{"event": "nan", "v": NaN}',
            b'{"event": "big", "v": ' + b"7" * 5000 + b"}",
            b'{"event": "deep", "v": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            b'{"event": "deep but valid", "v": ' + b"[" * 1000 + b"]" * 1000 + b"}",
            b'{"event": "after"}',
        ]
        with connect(server.address("log_tcp"), timeout=30) as sock:
            sock.sendall(b"\n".join(lines) + b"\n")
        pickles = [
            frame({"msg": "pickle lone \ud800", "v": "\udfff", "levelno": 20}),
            frame({"msg": "pickle nan", "v": float("nan"), "w": float("inf")}),
            frame({"msg": "pickle big", "v": 7 * 10**5000}, 2),
            _deep_pickle(100_000),
            log_frame("pickle after"),
        ]
        with connect(server.address("log_tcp"), timeout=30) as sock:
            sock.sendall(b"".join(pickles))
        records = server.wait_records(len(lines) + len(pickles), timeout=30)
        assert len(records) == len(lines) + len(pickles)
        by = {r["message"][:20]: r for r in records}
        assert by["after"]["format"] == "json"
        assert by["pickle after"]["format"] == "pickle"
        # Kept as escaped text, never as raw bytes or invalid JSON.
        assert by['{"event": "bad utf8 ']["message"].endswith('\\xff\\xfe"}')
        assert by["text with bad utf8 \\"]["format"] == "text"
        assert by['{"event": "lone \\ud8']["format"] == "text"
        assert by['{"event": "nan", "v"']["format"] == "text"
        assert by['{"event": "big", "v"']["format"] == "text"
        assert by['{"event": "deep", "v']["format"] == "text"
        assert by["deep but valid"]["format"] == "json"
        assert "nested too deep" in json.dumps(by["deep but valid"]["fields"])
        assert by["pickle lone \\ud800"]["fields"]["v"] == "\\udfff"
        assert by["pickle nan"]["fields"] == {"v": "nan", "w": "inf"}
        assert by["pickle big"]["fields"]["v"].startswith("<int of")
        assert by["deep pickle"]["fields"]["x"] is not None
        assert server.proc.poll() is None
        notes = {
            reason: metric(server, "netlog_notes_total", reason=reason)
            for reason in ("json_as_text", "invalid_utf8")
        }
        assert notes == {"json_as_text": 5, "invalid_utf8": 2}
        assert server.stop() == 0
        assert summary(server.stderr()) == (len(records), 0, 0)
        out = server.stdout()
        assert out.count("\n") == len(records)
        record_figure(
            "12", console=console, records=len(records), stdout_lines=out.count("\n"), **notes
        )


HOSTILE = "one\ntwo\rthree\x1b]0;owned\x07four\x9bfive\u2028six\u202eseven"


class TestOneRecordOneLine:
    """Scenario 13: newlines, CR and terminal escapes: one escaped line, on disk and console."""

    @pytest.mark.parametrize("console", ["pretty", "json"])
    def test_disk_and_console(self, netlog_factory, console):
        server = netlog_factory(*LOG_ONLY, "--console", console)
        with connect(server.address("log_tcp")) as sock:
            sock.sendall(log_frame(HOSTILE, name="evil\x1b[2J", **{"k\n\x1b": HOSTILE}))
        with connect(server.address("log_tcp")) as sock:
            sock.sendall(json.dumps({"event": HOSTILE, "logger": HOSTILE, "x": HOSTILE}).encode())
            sock.sendall(b"\ntext\rwith\x1b]0;title\x07escapes\n")
        with udp_socket() as sock:
            sock.sendto(HOSTILE.encode(), server.address("log_udp"))
            sock.sendto(
                b"<13>Oct 11 22:14:15 host app: " + HOSTILE.encode(), server.address("log_udp")
            )
        server.wait_records(5)
        assert server.stop() == 0
        raw = (server.log_dir / "records.jsonl").read_bytes()
        out = server.stdout_path.read_bytes()
        for where, data in (("disk", raw), ("console", out)):
            assert data.count(b"\n") == 5, f"{where}: {data!r}"
            for forbidden in (
                b"\r",
                b"\x1b",
                b"\x07",
                b"\xc2\x9b",
                b"\xe2\x80\xa8",
                b"\xe2\x80\xae",
            ):
                assert forbidden not in data, f"{where} holds raw {forbidden!r}"
        records = parse_lines(server.log_dir / "records.jsonl")
        assert HOSTILE in [r["message"] for r in records]  # escaped on disk, equal once parsed
        if console == "json":
            assert [json.loads(line) for line in out.splitlines()] == records
        record_figure("13", console=console, records=5, disk_lines=5, console_lines=5)


class TestLogUdpNeverReplies:
    """Scenario 19: the log UDP port answers nothing, good or bad."""

    def test_no_reply_to_anything(self, netlog_factory):
        server = netlog_factory(*LOG_ONLY)
        probes = [
            b"ping",
            b"\n",
            b'{"event": "json"}',
            b"<13>syslog",
            frame({"msg": "pickle"}),
            struct.pack(">L", 0xFFFFFFF0) + b"x",
            struct.pack(">L", 5) + b"\x80\x02",
            b"\x00" * 60_000,
        ]
        with udp_socket(timeout=1.0) as sock:
            for probe in probes:
                sock.sendto(probe, server.address("log_udp"))
            server.wait_records(4)
            with pytest.raises(TimeoutError):
                sock.recvfrom(65535)
        assert server.proc.poll() is None
        assert server.stop() == 0
        record_figure("19", datagrams=len(probes), replies=0)
