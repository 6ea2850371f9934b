"""The log sink against the real process, fed by real logging clients."""

import logging
import logging.handlers
import os
import pickle
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest
import structlog

from netlogproc import HOST, wait_for


def stdlib_logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


def frame(record_dict: dict) -> bytes:
    data = pickle.dumps(record_dict, 1)
    return struct.pack(">L", len(data)) + data


def socket_handler_frame(name: str, msg: str, **extra) -> bytes:
    record = logging.makeLogRecord({"name": name, "msg": msg, "levelname": "INFO", "levelno": 20})
    record.__dict__.update(extra)
    return logging.handlers.SocketHandler("127.0.0.1", 1).makePickle(record)


def by_message(records: list[dict]) -> dict[str, dict]:
    return {r["message"]: r for r in records}


class TestSocketHandler:
    """logging.handlers.SocketHandler, the stdlib's own client."""

    def test_threads_extra_traceback_non_ascii(self, netlog):
        handler = logging.handlers.SocketHandler(*netlog.address("log_tcp"))
        logger = stdlib_logger("app.worker", handler)

        def work(n: int) -> None:
            for i in range(50):
                logger.info("thread %d says %d", n, i, extra={"user": "ada", "n": n, "i": i})

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.exception("división por cero — ünïcödé ✓")
        logger.warning("last")
        handler.close()

        records = netlog.wait_records(202)
        assert len(records) == 202
        messages = by_message(records)
        sample = messages["thread 2 says 7"]
        assert sample["level"] == "info"
        assert sample["logger"] == "app.worker"
        assert sample["format"] == "pickle"
        assert sample["fields"]["user"] == "ada"
        assert (sample["fields"]["n"], sample["fields"]["i"]) == (2, 7)
        assert sample["fields"]["_src"]["func"] == "work"
        assert sample["fields"]["_src"]["line"] > 0
        assert sample["peer"].startswith("127.0.0.1:")
        assert sample["ts"].endswith("Z")
        assert sample["received"].endswith("Z")
        assert sample["ts"] <= sample["received"]
        failure = messages["división por cero — ünïcödé ✓"]
        assert failure["level"] == "error"
        assert "ZeroDivisionError" in failure["exc"]
        assert "Traceback (most recent call last)" in failure["exc"]
        assert messages["last"]["level"] == "warning"
        # Per thread, order is kept.
        for n in range(4):
            seen = [r["fields"]["i"] for r in records if r["fields"].get("n") == n]
            assert seen == list(range(50))

    def test_structlog_through_stdlib_render_to_log_kwargs(self, netlog):
        handler = logging.handlers.SocketHandler(*netlog.address("log_tcp"))
        stdlib_logger("structlog.app", handler)
        structlog.configure(
            processors=[structlog.stdlib.add_log_level, structlog.stdlib.render_to_log_kwargs],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=False,
        )
        try:
            log = structlog.get_logger("structlog.app").bind(request_id="r-1")
            log.info("user logged in", user="ada", attempts=3)
        finally:
            structlog.reset_defaults()
            handler.close()
        (record,) = netlog.wait_records(1)
        assert record["message"] == "user logged in"
        assert record["logger"] == "structlog.app"
        assert record["level"] == "info"
        assert record["fields"]["user"] == "ada"
        assert record["fields"]["attempts"] == 3
        assert record["fields"]["request_id"] == "r-1"


class TestDatagrams:
    """UDP: DatagramHandler, JSON, syslog; the log port never replies."""

    def test_datagram_handler(self, netlog):
        handler = logging.handlers.DatagramHandler(*netlog.address("log_udp"))
        logger = stdlib_logger("udp.app", handler)
        logger.error("over udp", extra={"k": "v"})
        handler.close()
        (record,) = netlog.wait_records(1)
        assert record["message"] == "over udp"
        assert record["level"] == "error"
        assert record["fields"]["k"] == "v"
        assert record["format"] == "pickle"

    def test_syslog_handler_over_udp(self, netlog):
        handler = logging.handlers.SysLogHandler(
            address=netlog.address("log_udp"), facility=logging.handlers.SysLogHandler.LOG_LOCAL0
        )
        handler.ident = "myapp: "
        logger = stdlib_logger("syslog.app", handler)
        logger.warning("disk almost full")
        handler.close()
        (record,) = netlog.wait_records(1)
        assert record["format"] == "syslog"
        assert record["level"] == "warning"
        assert record["logger"] == "myapp"
        assert "disk almost full" in record["message"]

    def test_json_datagram_and_no_reply(self, netlog):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            sock.bind((HOST, 0))
            sock.sendto(
                b'{"event": "from json", "level": "debug", "k": 1}', netlog.address("log_udp")
            )
            sock.sendto(b"ping", netlog.address("log_udp"))
            (json_record, text_record) = sorted(netlog.wait_records(2), key=lambda r: r["format"])
            with pytest.raises(TimeoutError):
                sock.recvfrom(100)
        assert json_record["message"] == "from json"
        assert json_record["level"] == "debug"
        assert json_record["fields"] == {"k": 1}
        assert text_record["message"] == "ping"
        assert text_record["format"] == "text"


class TestLineStreams:
    """structlog JSON lines and plain text lines over TCP."""

    def test_structlog_json_renderer_over_tcp(self, netlog):
        with socket.create_connection(netlog.address("log_tcp"), timeout=10) as sock:
            structlog.configure(
                processors=[
                    structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.JSONRenderer(),
                ],
                logger_factory=structlog.WriteLoggerFactory(sock.makefile("w", encoding="utf-8")),
                cache_logger_on_first_use=False,
            )
            try:
                structlog.get_logger().info("order placed", order_id=42, items=["a", "b"])
                structlog.get_logger().error("payment failed", amount=9.5)
            finally:
                structlog.reset_defaults()
        records = by_message(netlog.wait_records(2))
        placed = records["order placed"]
        assert placed["format"] == "json"
        assert placed["level"] == "info"
        assert placed["fields"] == {"order_id": 42, "items": ["a", "b"]}
        assert placed["ts"].startswith(time.strftime("%Y-", time.gmtime()))
        assert records["payment failed"]["level"] == "error"

    def test_go_log_style_lines(self, netlog):
        # What Go's log.New(conn, "app: ", log.LstdFlags) writes.
        lines = b"app: 2026/11/21 20:00:00 started\napp: 2026/11/21 20:00:01 listening on :8080\n"
        with socket.create_connection(netlog.address("log_tcp"), timeout=10) as sock:
            sock.sendall(lines)
        records = netlog.wait_records(2)
        assert [r["message"] for r in records] == [
            "app: 2026/11/21 20:00:00 started",
            "app: 2026/11/21 20:00:01 listening on :8080",
        ]
        assert {r["format"] for r in records} == {"text"}

    @pytest.mark.skipif(shutil.which("nc") is None, reason="nc is not installed")
    def test_nc_lines(self, netlog):
        port = str(netlog.ports["log_tcp"])
        subprocess.run(
            ["nc", "-N", HOST, port], input=b"hello from nc\nsecond\n", timeout=10, check=True
        )
        assert [r["message"] for r in netlog.wait_records(2)] == ["hello from nc", "second"]


class TestHostileInput:
    """Bad input is dropped and counted; nothing runs; others keep flowing."""

    def test_malicious_pickle_runs_nothing(self, netlog, tmp_path):
        marker = tmp_path / "pwned"

        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        payload = pickle.dumps({"msg": "evil", "x": Evil()}, 1)
        good = socket_handler_frame("ok", "after evil")
        with socket.create_connection(netlog.address("log_tcp"), timeout=10) as sock:
            sock.sendall(struct.pack(">L", len(payload)) + payload + good)
        records = netlog.wait_records(2)
        time.sleep(0.2)
        assert not marker.exists()
        assert "after evil" in [r["message"] for r in records]
        evil = by_message(records)["evil"]
        assert "system" in evil["fields"]["x"]

    def test_huge_length_prefix_closes_fast_and_others_flow(self, netlog):
        rss_before = netlog.rss_kib()
        with socket.create_connection(netlog.address("log_tcp"), timeout=10) as other:
            other.sendall(socket_handler_frame("other", "before"))
            with socket.create_connection(netlog.address("log_tcp"), timeout=5) as bad:
                bad.sendall(struct.pack(">L", 0xFFFFFFF0) + b"\x80" * 1000)
                started = time.monotonic()
                try:
                    closed = bad.recv(10) == b""
                except ConnectionResetError:
                    closed = True
                assert closed
                assert time.monotonic() - started < 5  # not a speed test: it must not hang
            other.sendall(socket_handler_frame("other", "after"))
        assert [r["message"] for r in netlog.wait_records(2)] == ["before", "after"]
        assert netlog.rss_kib() - rss_before < 10 * 1024
        assert netlog.stop() == 0
        assert "1 bad frames" in netlog.stderr()


def open_senders(address, count):
    socks = [socket.create_connection(address, timeout=30) for _ in range(count)]
    for sock in socks:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    return socks


class TestShutdownDrain:
    """Every record whose bytes reached the process is on disk at exit."""

    def test_160k_records_four_connections_sigterm_after_sendall(self, netlog):
        per_connection = 40_000
        payloads = []
        for c in range(4):
            frames = [
                socket_handler_frame("drain", f"c{c} r{i}", conn=c, seq=i)
                for i in range(per_connection)
            ]
            payloads.append(b"".join(frames))
        socks = open_senders(netlog.address("log_tcp"), 4)
        threads = [
            threading.Thread(target=sock.sendall, args=(payload,))
            for sock, payload in zip(socks, payloads, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        socks[0].close()
        socks[1].close()
        started = time.monotonic()
        status = netlog.stop(timeout=60)
        took = time.monotonic() - started
        for sock in socks[2:]:
            sock.close()
        assert status == 0, netlog.stderr()
        assert took < 5 + 5, f"shutdown took {took:.1f}s"
        records = netlog.records()
        keys = [(r["fields"]["conn"], r["fields"]["seq"]) for r in records]
        assert len(keys) == 4 * per_connection
        assert set(keys) == {(c, i) for c in range(4) for i in range(per_connection)}
        assert "160000 records written, 0 dropped" in netlog.stderr()

    def test_half_sent_frame_is_dropped_not_written_half(self, netlog_factory):
        server = netlog_factory("--grace", "0.5")
        whole = socket_handler_frame("half", "whole")
        cut = socket_handler_frame("half", "cut in half")
        with socket.create_connection(server.address("log_tcp"), timeout=10) as sock:
            sock.sendall(whole + cut[: len(cut) // 2])
            wait_for(server.records, 10, what="the whole record")
            assert server.stop() == 0
        assert [r["message"] for r in server.records()] == ["whole"]
        assert "1 dropped" in server.stderr()

    def test_idle_connection_between_records_does_not_hold_shutdown(self, netlog):
        with socket.create_connection(netlog.address("log_tcp"), timeout=10) as sock:
            sock.sendall(socket_handler_frame("idle", "one"))
            netlog.wait_records(1)
            started = time.monotonic()
            assert netlog.stop() == 0
            took = time.monotonic() - started
        assert took < 4, f"an idle connection held shutdown for {took:.1f}s of a 5s grace"
