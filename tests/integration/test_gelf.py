"""GELF over UDP and TCP against the real process, fed by graypy and pygelf as users run them."""

from __future__ import annotations

import gzip
import json
import logging
import os
import socket
import time
import zlib

import graypy
import pygelf
import pytest
from graypy.handler import GELFWarningChunker
from reliability_kit import metric, record_figure, summary, udp_socket

from netlogproc import wait_for

#: What the storm test sends: partial messages that never complete.
STORM_CHUNKS = 12_000
STORM_CHUNK_BYTES = 8_000
#: The reassembler's bounds with the default --max-frame (netlog/decode/gelf.py).
IN_FLIGHT = 4096
HELD_BYTES = 32 << 20


def gelf_logger(name: str, *handlers: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = list(handlers)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


def by_message(records: list[dict]) -> dict[str, dict]:
    return {r["message"]: r for r in records}


def gelf_chunks(message: bytes, size: int) -> list[bytes]:
    """Chunks as Docker's driver (go-gelf), graypy and pygelf cut a message."""
    message_id = os.urandom(8)
    parts = [message[i : i + size] for i in range(0, len(message), size)]
    return [b"\x1e\x0f" + message_id + bytes([n, len(parts)]) + p for n, p in enumerate(parts)]


def send_udp(address: tuple[str, int], *datagrams: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in datagrams:
            sock.sendto(datagram, address)


def raise_zero_division(logger: logging.Logger, message: str) -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logger.exception(message)


class TestGraypy:
    @pytest.mark.parametrize("compress", [True, False])
    def test_udp_chunked(self, netlog, compress):
        chunker = GELFWarningChunker(chunk_size=300)  # forces chunking
        handler = graypy.GELFUDPHandler(
            *netlog.address("gelf_udp"), gelf_chunker=chunker, compress=compress, extra_fields=True
        )
        logger = gelf_logger("shop.orders", handler)
        logger.info("order %d paid ünï ✓", 7, extra={"order": 7, "user": "ada"})
        logger.warning("big %s", "x" * 5000)  # 5 KB: 17+ chunks uncompressed
        raise_zero_division(logger, "could not pay")
        handler.close()

        records = by_message(netlog.wait_records(3))
        paid = records["order 7 paid ünï ✓"]
        assert (paid["level"], paid["logger"], paid["format"]) == ("info", "shop.orders", "gelf")
        assert (paid["fields"]["order"], paid["fields"]["user"]) == (7, "ada")
        assert paid["fields"]["host"] == socket.gethostname()
        assert paid["peer"].startswith("127.0.0.1:")
        assert records["big " + "x" * 5000]["level"] == "warning"
        failed = records["could not pay"]
        assert failed["level"] == "error"
        assert failed["exc"].startswith("Traceback (most recent call last):")
        assert "ZeroDivisionError" in failed["exc"]

    def test_tcp(self, netlog):
        handler = graypy.GELFTCPHandler(*netlog.address("gelf_tcp"), extra_fields=True)
        logger = gelf_logger("shop.api", handler)
        for n in range(50):
            logger.debug("request %d", n, extra={"n": n})
        logger.critical("down")
        handler.close()

        records = netlog.wait_records(51)
        assert len(records) == 51
        messages = by_message(records)
        assert messages["request 49"]["fields"]["n"] == 49
        assert messages["request 0"]["level"] == "debug"
        assert messages["down"]["level"] == "critical"
        assert {r["logger"] for r in records} == {"shop.api"}


class TestPygelf:
    def test_udp_compressed_chunked(self, netlog):
        handler = pygelf.GelfUdpHandler(
            *netlog.address("gelf_udp"), chunk_size=200, debug=True, _app="billing"
        )
        logger = gelf_logger("billing.jobs", handler)
        logger.info("started %s", "y" * 3000)
        raise_zero_division(logger, "job failed")
        handler.close()

        records = by_message(netlog.wait_records(2))
        started = records["started " + "y" * 3000]
        assert (started["level"], started["logger"]) == ("info", "billing.jobs")
        assert started["fields"]["app"] == "billing"
        assert started["fields"]["func"] == "test_udp_compressed_chunked"
        assert "ZeroDivisionError" in records["job failed"]["exc"]

    def test_tcp(self, netlog):
        handler = pygelf.GelfTcpHandler(*netlog.address("gelf_tcp"), _app="billing")
        logger = gelf_logger("billing.tcp", handler)
        logger.warning("careful", extra={"ignored": 1})
        logger.error("broken")
        handler.close()

        records = by_message(netlog.wait_records(2))
        assert records["careful"]["level"] == "warning"
        assert records["broken"]["level"] == "error"
        assert records["careful"]["fields"] == {"host": socket.gethostname(), "app": "billing"}
        # pygelf without debug=True names no logger: none is invented
        assert records["careful"]["logger"] == ""


class TestDockerDriverPayloads:
    """Docker's gelf driver's messages, made as moby's daemon/logger/gelf makes them.

    No Docker daemon runs here (the lead's compose e2e runs the real one);
    these are its payloads byte for byte: gzip (its default), chunked at
    1420 bytes by go-gelf, level 6 for stdout and 3 for stderr.
    """

    @staticmethod
    def message(line: str, level: int) -> bytes:
        return json.dumps(
            {
                "version": "1.1",
                "host": "docker-host",
                "short_message": line,
                "timestamp": 1764500000.125,
                "level": level,
                "_command": "python app.py",
                "_container_id": "3e8a437d25caa93d",
                "_container_name": "billing-1",
                "_created": "2026-11-30T10:00:00.000000001Z",
                "_image_id": "sha256:abc",
                "_image_name": "acme/billing:1.2",
                "_tag": "3e8a437d25ca",
            }
        ).encode()

    def test_container_lines(self, netlog):
        address = netlog.address("gelf_udp")
        json_line = json.dumps({"event": "paid", "level": "warning", "logger": "pay", "n": 1})
        long_line = "z" * 4000 + os.urandom(1500).hex()  # gzip over 1420 bytes: chunked
        send_udp(
            address,
            gzip.compress(self.message("listening on :8080", 6)),
            gzip.compress(self.message("INFO:root:stderr but info", 3)),
            gzip.compress(self.message("Segmentation fault", 3)),
            gzip.compress(self.message(json_line, 6)),
        )
        send_udp(address, *gelf_chunks(gzip.compress(self.message(long_line, 6)), 1420))

        records = by_message(netlog.wait_records(5))
        listening = records["listening on :8080"]
        assert (listening["level"], listening["logger"]) == ("info", "billing-1")
        assert listening["ts"] == "2025-11-30T10:53:20.125000Z"
        for key in ("container_name", "container_id", "image_name", "tag", "command"):
            assert key in listening["fields"]
        assert records["INFO:root:stderr but info"]["level"] == "info"
        assert records["Segmentation fault"]["level"] == "error"
        paid = records["paid"]
        assert (paid["level"], paid["logger"], paid["fields"]["n"]) == ("warning", "pay", 1)
        assert paid["fields"]["container_name"] == "billing-1"
        assert records[long_line]["logger"] == "billing-1"


class TestBadInput:
    def test_garbage_counted_others_written(self, netlog):
        udp = netlog.address("gelf_udp")
        send_udp(
            udp,
            b"not json at all",
            b"[1, 2, 3]",
            b"\x1f\x8b\x08\x00garbage-gzip",
            b"\x1e\x0f" + b"12345678" + bytes([9, 3]) + b"out of range",
            b"\x1e\x0f" + b"short",
            json.dumps({"short_message": "good udp"}).encode(),
        )
        with socket.create_connection(netlog.address("gelf_tcp"), timeout=10) as sock:
            sock.sendall(
                b"garbage\0"
                + json.dumps({"short_message": "good tcp 1"}).encode()
                + b'\0{"cut": \0'
                + json.dumps({"short_message": "good tcp 2", "_k": "v"}).encode()
                + b"\0"
            )
        records = by_message(netlog.wait_records(3))
        assert set(records) == {"good udp", "good tcp 1", "good tcp 2"}
        assert records["good tcp 2"]["fields"] == {"k": "v"}

        def bad(reason: str) -> float:
            return metric(netlog, "netlog_bad_frames_total", reason=reason)

        wait_for(lambda: bad("bad_frame") == 2, what="the TCP connection's bad frames counted")
        assert bad("bad_json") == 1
        assert bad("not_an_object") == 1
        assert bad("bad_compression") == 1
        assert bad("chunk_out_of_range") == 1
        assert bad("bad_chunk") == 1
        netlog.stop()
        written, dropped, bad_frames = summary(netlog.stderr())
        assert (written, dropped, bad_frames) == (3, 7, 7)

    def test_tcp_frame_over_max_frame_dropped_next_written(self, netlog_factory):
        netlog = netlog_factory("--max-frame", "65536")
        big = json.dumps({"short_message": "big", "_pad": "p" * 300_000}).encode()
        with socket.create_connection(netlog.address("gelf_tcp"), timeout=10) as sock:
            sock.sendall(big + b"\0" + json.dumps({"short_message": "small"}).encode() + b"\0")
        assert [r["message"] for r in netlog.wait_records(1)] == ["small"]
        netlog.stop()
        assert summary(netlog.stderr()) == (1, 1, 0)  # dropped (line_too_long), not a bad frame

    def test_gzip_bomb(self, netlog):
        udp = netlog.address("gelf_udp")
        bomb = zlib.compress(b"{" + b" " * (60 << 20) + b"}", 9)  # 60 MiB of JSON
        assert len(bomb) < 65_000  # one datagram
        chunked_bomb = gelf_chunks(gzip.compress(b" " * (200 << 20), 9), 60_000)
        started = time.perf_counter()
        send_udp(udp, bomb, *chunked_bomb, json.dumps({"short_message": "after"}).encode())
        records = netlog.wait_records(1)
        took_ms = (time.perf_counter() - started) * 1000
        assert [r["message"] for r in records] == ["after"]
        too_large = metric(netlog, "netlog_bad_frames_total", reason="decompressed_too_large")
        assert too_large == 2
        record_figure(
            "gelf_gzip_bomb",
            bomb_bytes=len(bomb),
            claims_bytes=(60 << 20) + 2,
            chunked_bomb_chunks=len(chunked_bomb),
            chunked_claims_bytes=200 << 20,
            next_record_on_disk_ms=round(took_ms, 1),
            rss_kib=netlog.rss_kib(),
        )

    def test_chunk_storm_bounded_counted_others_unaffected(self, netlog):
        udp = netlog.address("gelf_udp")
        # A real sender, before and after the storm.
        handler = graypy.GELFUDPHandler(*udp, gelf_chunker=GELFWarningChunker(chunk_size=200))
        logger = gelf_logger("storm.victim", handler)
        logger.info("before %s", "b" * 2000)
        netlog.wait_records(1)
        rss_before = netlog.rss_kib()

        storm = udp_socket()
        body = b"s" * STORM_CHUNK_BYTES
        deadline = time.monotonic() + 120
        try:
            for n in range(STORM_CHUNKS):
                # chunk 0 of 2 of a message that never completes
                storm.sendto(b"\x1e\x0f" + n.to_bytes(8, "big") + bytes([0, 2]) + body, udp)
                if n % 200 == 199:
                    time.sleep(0.02)  # paced, so the kernel keeps (almost) all of it
                assert time.monotonic() < deadline
            storm_rss = netlog.rss_kib()
            logger.info("after %s", "a" * 2000)
        finally:
            storm.close()
            handler.close()
        records = by_message(netlog.wait_records(2, timeout=60))
        assert {"before " + "b" * 2000, "after " + "a" * 2000} <= set(records)

        def evicted() -> float:
            return metric(netlog, "netlog_records_dropped_total", reason="gelf_evicted")

        kernel = metric(netlog, "netlog_kernel_dropped_datagrams_total", listener="gelf_udp")
        wait_for(lambda: evicted() + IN_FLIGHT >= STORM_CHUNKS - kernel, 60, what="evictions")
        assert evicted() <= STORM_CHUNKS
        growth_mib = (storm_rss - rss_before) / 1024
        assert growth_mib < (HELD_BYTES >> 20) + 32, f"RSS grew {growth_mib:.0f} MiB"
        record_figure(
            "gelf_chunk_storm",
            chunks=STORM_CHUNKS,
            chunk_bytes=STORM_CHUNK_BYTES,
            sent_mib=round(STORM_CHUNKS * STORM_CHUNK_BYTES / (1 << 20), 1),
            evicted=evicted(),
            kernel_dropped=kernel,
            rss_before_kib=rss_before,
            rss_after_kib=storm_rss,
        )

    def test_partial_message_expires(self, netlog):
        udp = netlog.address("gelf_udp")
        send_udp(udp, gelf_chunks(json.dumps({"short_message": "never"}).encode(), 5)[0])
        time.sleep(5.2)  # the spec's 5 s for all chunks of a message
        send_udp(udp, json.dumps({"short_message": "later"}).encode())
        assert [r["message"] for r in netlog.wait_records(1)] == ["later"]
        expired = metric(netlog, "netlog_records_dropped_total", reason="gelf_expired")
        assert expired == 1


def test_sigterm_writes_every_datagram_that_arrived(netlog):
    udp = netlog.address("gelf_udp")
    handler = graypy.GELFUDPHandler(*udp)
    logger = gelf_logger("shutdown", handler)
    for n in range(150):
        logger.info("first %d", n)
    netlog.wait_records(150)
    for n in range(100):
        logger.info("last %d", n)
    send_udp(udp, gelf_chunks(json.dumps({"short_message": "half"}).encode(), 5)[0])
    with socket.create_connection(netlog.address("gelf_tcp"), timeout=10) as sock:
        sock.sendall(
            b"".join(json.dumps({"short_message": f"tcp {n}"}).encode() + b"\0" for n in range(100))
        )
        netlog.send_signal()
        assert netlog.proc.wait(timeout=30) == 0
    handler.close()
    records = netlog.records()
    assert "dropped by the kernel" not in netlog.stderr()
    messages = {r["message"] for r in records}
    assert {f"last {n}" for n in range(100)} <= messages
    assert {f"tcp {n}" for n in range(100)} <= messages
    assert len(records) == 350
    written, dropped, bad_frames = summary(netlog.stderr())
    assert (written, dropped, bad_frames) == (350, 1, 0)  # the half message: gelf_incomplete
