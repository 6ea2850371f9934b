"""Fluentd's forward protocol against the real process: fluent-logger, Docker-shaped batches, bombs.

fluent-logger-python (``fluent.sender.FluentSender``, ``fluent.handler.FluentHandler``)
is the real client; it has no ack option, so the ack test sends what Fluent
Bit and Docker's driver send with ``require_ack_response`` / ``fluentd-request-ack``:
a frame with a ``chunk`` option, built with msgpack.
"""

import gzip
import logging
import os
import signal
import socket
import struct
import time

import msgpack
import pytest
from fluent import handler as fluent_handler
from fluent import sender as fluent_sender
from reliability_kit import (
    is_closed_by_peer,
    metric,
    parse_lines,
    record_figure,
    summary,
    tmpfs,
    wait_lines,
)

DOCKER_ID = "8d3c1f0e2b7a" * 5 + "9f3e"


def docker_record(line: str, source: str = "stdout", **extra: str) -> dict:
    """What Docker's fluentd driver sends for one line (every value a string)."""
    return {
        "container_id": DOCKER_ID,
        "container_name": "/shop-web-1",
        "source": source,
        "log": line,
        **extra,
    }


def entries(*pairs) -> bytes:
    return b"".join(msgpack.packb([ts, record]) for ts, record in pairs)


def read_acks(sock: socket.socket, count: int) -> list:
    unpacker = msgpack.Unpacker()
    acks: list = []
    while len(acks) < count:
        data = sock.recv(4096)
        assert data, "connection closed before the acks arrived"
        unpacker.feed(data)
        acks.extend(unpacker)
    return acks


def by_message(records: list[dict]) -> dict[str, dict]:
    return {r["message"]: r for r in records}


class TestFluentLogger:
    """fluent-logger-python as its users run it."""

    def test_sender_event_time_and_fields(self, netlog):
        assert netlog.ports["fluent"] > 0  # the ready file names the listener
        host, port = netlog.address("fluent")
        sender = fluent_sender.FluentSender(
            "billing", host=host, port=port, nanosecond_precision=True
        )
        try:
            assert sender.emit("invoice", {"message": "paid", "level": "warning", "amount": 12.5})
            assert sender.emit_with_time(
                None, fluent_sender.EventTime(1700000000, 250000000), {"msg": "old", "n": [1, 2]}
            )
            assert sender.emit("audit", {"message": "ünïcode ✓", "user": {"id": 7}})
        finally:
            sender.close()
        records = by_message(netlog.wait_records(3))
        paid = records["paid"]
        assert paid["format"] == "fluent"
        assert paid["level"] == "warning"
        assert paid["logger"] == "billing.invoice"
        assert paid["fields"] == {"amount": 12.5, "tag": "billing.invoice"}
        assert records["old"]["ts"] == "2023-11-14T22:13:20.250000Z"
        assert records["old"]["level"] == "info"
        assert records["ünïcode ✓"]["fields"]["user"] == {"id": 7}

    def test_fluent_handler_from_stdlib_logging(self, netlog):
        host, port = netlog.address("fluent")
        handler = fluent_handler.FluentHandler("app", host=host, port=port)
        handler.setFormatter(
            fluent_handler.FluentRecordFormatter(
                {"level": "%(levelname)s", "sys_name": "%(name)s", "where": "%(module)s"}
            )
        )
        logger = logging.getLogger("shop.orders")
        logger.handlers[:] = [handler]
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        try:
            logger.info("order %s placed", 42)
            logger.error("payment failed")
            logger.debug('{"message": "json body", "cart": 3}')
        finally:
            logger.handlers[:] = []
            handler.close()
        records = by_message(netlog.wait_records(3))
        assert records["order 42 placed"]["level"] == "info"
        assert records["order 42 placed"]["logger"] == "shop.orders"
        assert records["payment failed"]["level"] == "error"
        assert records["json body"]["fields"]["cart"] == 3
        assert records["json body"]["level"] == "debug"


class TestAck:
    """``chunk`` is answered ``{"ack": chunk}`` only once the records are in records.jsonl."""

    def test_ack_arrives_after_the_records_are_on_disk(self, netlog):
        path = netlog.log_dir / "records.jsonl"
        with socket.create_connection(netlog.address("fluent"), timeout=10) as sock:
            for n in range(20):
                chunk = f"chunk-{n:04d}-p8n9gmxTQVC8/nh2w=="
                body = entries(
                    (int(time.time()), docker_record(f"line {n} a")),
                    (int(time.time()), docker_record(f"line {n} b", "stderr")),
                )
                sock.sendall(msgpack.packb(["docker.web", body, {"chunk": chunk, "size": 2}]))
                [ack] = read_acks(sock, 1)
                assert ack == {"ack": chunk}
                # Read the file the moment the ack is here: no waiting.
                on_disk = {r["message"] for r in parse_lines(path)}
                assert {f"line {n} a", f"line {n} b"} <= on_disk

    def test_message_mode_ack_as_docker_sends_it(self, netlog):
        """fluent-logger-golang (Docker's driver) sends Message mode with a chunk option."""
        with socket.create_connection(netlog.address("fluent"), timeout=10) as sock:
            sock.sendall(
                msgpack.packb(["web", int(time.time()), docker_record("hello"), {"chunk": "Zm9v"}])
            )
            assert read_acks(sock, 1) == [{"ack": "Zm9v"}]
        assert netlog.records()[-1]["message"] == "hello"


class TestAckOnAFullDisk:
    """While the store cannot write no ack leaves: the sender keeps its chunk and sends it again."""

    def test_ack_withheld_until_written(self, netlog_factory, tmp_path):
        with tmpfs(tmp_path / "full", "size=256k") as directory:
            server = netlog_factory("--log-dir", str(directory))
            filler = directory / "filler"
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                for _ in range(100):  # 256 KiB is at most 64 pages
                    os.write(fd, b"\0" * 4096)
            except OSError:
                pass  # full
            finally:
                os.close(fd)
            frame = msgpack.packb(["web", 1, docker_record("kept"), {"chunk": "c1"}])
            with socket.create_connection(server.address("fluent"), timeout=10) as sock:
                sock.sendall(frame)
                sock.settimeout(2.0)
                with pytest.raises(TimeoutError):
                    sock.recv(100)
                withheld = metric(server, "netlog_notes_total", reason="ack_withheld")
                assert withheld >= 1
                assert parse_lines(directory / "records.jsonl") == []
                filler.unlink()  # space returns: the queued record is written
                wait_lines(directory / "records.jsonl", 1)
                sock.settimeout(10.0)
                sock.sendall(frame)  # what Fluent Bit or Docker does with an unacked chunk
                assert read_acks(sock, 1) == [{"ack": "c1"}]
            messages = [r["message"] for r in parse_lines(directory / "records.jsonl")]
            assert messages == ["kept", "kept"]  # at least once: the resent chunk is a duplicate
            assert server.stop() == 0
            record_figure("fluent_full_disk_ack", acks_withheld=withheld, duplicates=1)


class TestDockerShaped:
    """Forward, PackedForward and CompressedPackedForward with Docker's keys, split lines too."""

    def test_modes_levels_container_and_partial_lines(self, netlog):
        now = int(time.time())
        long_line = "x" * 16384 + "y" * 16384 + "z" * 100
        parts = [long_line[:16384], long_line[16384:32768], long_line[32768:]]
        split = [
            (
                now,
                docker_record(
                    part,
                    "stderr",
                    partial_message="true",
                    partial_id="3f1a",
                    partial_ordinal=str(n),
                    partial_last="true" if n == 3 else "false",
                ),
            )
            for n, part in enumerate(parts, 1)
        ]
        forward = ["docker.web", [[now, docker_record("GET / 200")], split[0]]]
        packed = ["docker.web", entries(split[1], (now, docker_record("boom", "stderr")))]
        compressed = [
            "docker.web",
            gzip.compress(entries(split[2], (now, docker_record('{"level":"warn","msg":"json"}')))),
            {"compressed": "gzip", "size": 2},
        ]
        with socket.create_connection(netlog.address("fluent"), timeout=10) as sock:
            for message in (forward, packed, compressed):
                sock.sendall(msgpack.packb(message))
        records = by_message(netlog.wait_records(4))
        assert set(records) == {"GET / 200", "boom", "json", long_line}
        assert records["GET / 200"]["level"] == "info"
        assert records["boom"]["level"] == "error"
        assert records["json"]["level"] == "warn"
        joined = records[long_line]
        assert joined["level"] == "error"
        for record in records.values():
            assert record["logger"] == "shop-web-1"
            assert record["fields"]["container_id"] == DOCKER_ID
            assert record["fields"]["tag"] == "docker.web"
            assert record["format"] == "fluent"


class TestBadInput:
    """Bombs and bad frames: the connection closed and counted, other senders unaffected."""

    def test_length_bomb_gzip_bomb_and_bad_frames(self, netlog):
        address = netlog.address("fluent")
        rss_before = netlog.rss_kib()
        good = socket.create_connection(address, timeout=10)
        good.sendall(msgpack.packb(["good", 1, {"message": "before"}]))
        netlog.wait_records(1)

        # A msgpack length bomb: nested arrays each claiming 2**32-1 elements,
        # then a bin claiming 4 GiB; neither may allocate what it claims.
        nested = socket.create_connection(address, timeout=10)
        headers = (b"\xdd" + struct.pack(">I", 2**32 - 1)) * 13107  # 64 KiB of array headers
        sent = 0
        try:
            for _ in range(64):  # bounded: 4 MiB at most; the server closes long before
                nested.sendall(headers)
                sent += len(headers)
        except OSError:
            closed = True  # reset or broken pipe: the server closed it
        else:
            closed = is_closed_by_peer(nested)
        assert closed
        nested.close()
        claim = socket.create_connection(address, timeout=3)
        claim.sendall(b"\x92\xa1t\xc6" + struct.pack(">I", 2**32 - 1) + b"\0" * 4096)

        # A gzip bomb: 512 MiB of zeros in ~500 KB of gzip, as CompressedPackedForward.
        bomb = gzip.compress(b"\0" * (512 << 20), compresslevel=9)
        gz = socket.create_connection(address, timeout=10)
        gz.sendall(msgpack.packb(["bomb", bomb, {"compressed": "gzip", "chunk": "no-ack"}]))
        assert is_closed_by_peer(gz)

        # Not a forward message at all.
        bad = socket.create_connection(address, timeout=10)
        bad.sendall(msgpack.packb({"not": "an array"}))
        assert is_closed_by_peer(bad)

        good.sendall(msgpack.packb(["good", 2, {"message": "after"}]))
        records = netlog.wait_records(2)
        assert [r["message"] for r in records] == ["before", "after"]
        rss_after = netlog.rss_kib()
        bad_frames = metric(netlog, "netlog_bad_frames_total", reason="bad_frame")
        too_large = metric(netlog, "netlog_bad_frames_total", reason="decompressed_too_large")
        assert too_large == 1
        assert bad_frames >= 2  # the nested headers and the map
        assert not is_closed_by_peer(claim)  # waits for its claimed bytes, allocating nothing
        claim.close()
        good.close()
        gz.close()
        bad.close()
        grown_mib = (rss_after - rss_before) / 1024
        record_figure(
            "fluent_bombs",
            nested_headers_sent_bytes=sent,
            gzip_bomb_bytes=len(bomb),
            gzip_bomb_inflates_to=512 << 20,
            rss_before_kib=rss_before,
            rss_after_kib=rss_after,
            bad_frame=bad_frames,
            decompressed_too_large=too_large,
        )
        assert grown_mib < 64


class TestShutdown:
    """SIGTERM right after a sender's last frame: every record on disk, exit 0."""

    def test_sigterm_after_send(self, netlog_factory):
        server = netlog_factory()
        count = 20_000
        with socket.create_connection(server.address("fluent"), timeout=10) as sock:
            now = int(time.time())
            for batch in range(count // 500):
                body = entries(
                    *((now, docker_record(f"seq {batch * 500 + i}")) for i in range(500))
                )
                sock.sendall(msgpack.packb(["docker.web", body, {"size": 500}]))
            started = time.monotonic()
            server.send_signal(signal.SIGTERM)
            assert server.proc.wait(timeout=60) == 0
            took = time.monotonic() - started
        records = parse_lines(server.log_dir / "records.jsonl")
        messages = {r["message"] for r in records}
        assert messages == {f"seq {i}" for i in range(count)}
        written, dropped, bad = summary(server.stderr())
        assert (written, dropped, bad) == (count, 0, 0)
        record_figure("fluent_sigterm", records=count, written=written, stop_seconds=round(took, 2))
