"""GELF: the payload's mapping onto a record, the chunk reassembler, the UDP and TCP decoders."""

from __future__ import annotations

import collections
import gzip
import json
import os
import zlib
from datetime import UTC, datetime

import pytest

from netlog.decode.gelf import (
    CHUNK_MAGIC,
    ChunkReassembler,
    GelfDatagrams,
    GelfStreamDecoder,
    gelf_record,
    looks_like_traceback,
)
from netlog.errors import DecodeError

PY_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "app.py", line 3, in <module>\n'
    "ZeroDivisionError: division by zero\n"
)
JAVA_TRACE = (
    "java.lang.IllegalStateException: no\n\tat com.acme.Main.run(Main.java:12)\n"
    "\tat com.acme.Main.main(Main.java:5)\n"
)
NODE_TRACE = (
    "Error: nope\n    at handler (/srv/app/index.js:10:15)\n    at process (node:internal)\n"
)
GO_PANIC = "panic: runtime error: index out of range\n\ngoroutine 1 [running]:\nmain.main()\n"


def record(obj: object, notes: collections.Counter[str] | None = None, **kw: int):
    payload = json.dumps(obj).encode()
    return gelf_record(
        payload, "10.0.0.1:5000", 1000.0, collections.Counter() if notes is None else notes, **kw
    )


def docker(line: str, level: int = 6, **extra: object) -> dict[str, object]:
    """A message as Docker's gelf driver sends it (moby daemon/logger/gelf)."""
    return {
        "version": "1.1",
        "host": "docker-host",
        "short_message": line,
        "timestamp": 1700000000.25,
        "level": level,
        "_command": "python app.py",
        "_container_id": "3e8a437d25ca",
        "_container_name": "billing-1",
        "_created": "2026-11-30T10:00:00Z",
        "_image_id": "sha256:abc",
        "_image_name": "acme/billing:1.2",
        "_tag": "3e8a437d25ca",
        **extra,
    }


class TestMapping:
    def test_the_spec_example(self) -> None:
        got = record(
            {
                "version": "1.1",
                "host": "example.org",
                "short_message": "A short message that helps you identify what is going on",
                "full_message": "Backtrace here\n\nmore stuff",
                "timestamp": 1385053862.3072,
                "level": 1,
                "_user_id": 9001,
                "_some_info": "foo",
                "_some_env_var": "bar",
            }
        )
        assert got.message == "A short message that helps you identify what is going on"
        assert got.ts == 1385053862.3072
        assert got.received == 1000.0
        assert got.level == "critical"
        assert got.logger == ""
        assert got.exc is None  # not a traceback: kept as a field
        assert got.fields == {
            "full_message": "Backtrace here\n\nmore stuff",
            "host": "example.org",
            "user_id": 9001,
            "some_info": "foo",
            "some_env_var": "bar",
        }
        assert got.format == "gelf"
        assert got.peer == "10.0.0.1:5000"

    @pytest.mark.parametrize(
        ("level", "name"),
        [
            (0, "critical"),
            (2, "critical"),
            (3, "error"),
            (4, "warning"),
            (5, "info"),
            (6, "info"),
            (7, "debug"),
            ("4", "warning"),
            (15, "level 15"),  # graypy sends a Python level it has no syslog name for as it is
            ("WARN", "warn"),
        ],
    )
    def test_levels(self, level: object, name: str) -> None:
        assert record({"short_message": "m", "level": level}).level == name

    def test_missing_level_is_info_not_alert(self) -> None:
        assert record({"short_message": "m"}).level == "info"

    def test_odd_level_kept_as_field(self) -> None:
        got = record({"short_message": "m", "level": [1]})
        assert (got.level, got.fields["level"]) == ("info", [1])

    @pytest.mark.parametrize("trace", [PY_TRACEBACK, JAVA_TRACE, NODE_TRACE, GO_PANIC])
    def test_traceback_full_message_goes_to_exc(self, trace: str) -> None:
        assert looks_like_traceback(trace)
        got = record({"short_message": "failed", "full_message": trace})
        assert (got.exc, got.message) == (trace, "failed")
        assert "full_message" not in got.fields

    def test_a_prose_full_message_is_no_traceback(self) -> None:
        assert not looks_like_traceback("The job failed at step 3, retrying at 10:00")

    def test_own_logger_wins(self) -> None:
        # graypy: facility = the logger's name; with a custom facility, _logger holds it
        assert record({"short_message": "m", "facility": "app.db"}).logger == "app.db"
        got = record({"short_message": "m", "facility": "billing", "_logger": "app.db"})
        assert (got.logger, got.fields["facility"]) == ("app.db", "billing")
        assert "logger" not in got.fields
        # pygelf with debug=True
        assert record({"short_message": "m", "_logger_name": "svc"}).logger == "svc"

    def test_unusual_version_kept_and_noted(self) -> None:
        notes: collections.Counter[str] = collections.Counter()
        got = record({"version": "2.0", "short_message": "m"}, notes)
        assert got.fields["version"] == "2.0"
        assert notes["gelf_version"] == 1
        assert "version" not in record({"version": "1.0", "short_message": "m"}).fields

    def test_missing_short_message_is_lenient_and_noted(self) -> None:
        notes: collections.Counter[str] = collections.Counter()
        assert record({"full_message": "all of it"}, notes).message == "all of it"
        assert record({"message": "logstash style"}, notes).message == "logstash style"
        empty = record({"host": "h", "_x": 1}, notes)
        assert (empty.message, empty.fields) == ("", {"host": "h", "x": 1})
        assert notes["gelf_no_short_message"] == 3

    def test_non_text_message_is_json_text(self) -> None:
        assert record({"short_message": {"a": 1}}).message == '{"a":1}'

    def test_bad_timestamp_kept(self) -> None:
        got = record({"short_message": "m", "timestamp": "yesterday"})
        assert (got.ts, got.fields["timestamp"]) == (1000.0, "yesterday")

    def test_underscore_and_plain_name_clash_keeps_both(self) -> None:
        got = record({"short_message": "m", "host": "a", "_host": "b"})
        assert got.fields == {"host": "a", "_host": "b"}

    @pytest.mark.parametrize(
        ("payload", "reason"),
        [
            (b"not json", "bad_json"),
            (b'{"short_message": "cut', "bad_json"),
            (b"[1, 2]", "not_an_object"),
            (b'"text"', "not_an_object"),
            (b"\xff\xfe", "bad_json"),
        ],
    )
    def test_unusable_payloads(self, payload: bytes, reason: str) -> None:
        with pytest.raises(DecodeError) as caught:
            gelf_record(payload, "p", 1.0, collections.Counter())
        assert caught.value.reason == reason

    def test_long_message_capped(self) -> None:
        notes: collections.Counter[str] = collections.Counter()
        got = record({"short_message": "x" * 5000}, notes, max_line=1000)
        assert len(got.message) == 1000
        assert got.message.endswith("<message truncated: 5000 characters>")
        assert notes["message_truncated"] == 1

    def test_deep_nesting_is_written_safely(self) -> None:
        deep: object = 1
        for _ in range(400):
            deep = [deep]
        got = record({"short_message": "m", "_deep": deep})
        json.dumps(got.fields)


class TestDocker:
    def test_text_line_on_stdout(self) -> None:
        got = record(docker("server listening on :8080"))
        assert got.message == "server listening on :8080"
        assert got.level == "info"
        assert got.logger == "billing-1"
        assert got.ts == 1700000000.25
        for key in ("container_name", "container_id", "image_name", "tag", "command", "host"):
            assert key in got.fields
        assert got.fields["container_name"] == "billing-1"

    def test_text_line_on_stderr_is_error_unless_it_says(self) -> None:
        assert record(docker("something broke", level=3)).level == "error"
        # Python's basicConfig writes every level to stderr
        assert record(docker("INFO:root:started", level=3)).level == "info"
        assert record(docker("WARNING:app:slow", level=6)).level == "warning"

    def test_json_line_keeps_its_own_level_message_time_logger(self) -> None:
        line = json.dumps(
            {
                "event": "paid",
                "level": "warning",
                "logger": "billing.pay",
                "timestamp": "2026-11-30T12:00:00Z",
                "order": 7,
                "container_name": "spoofed",
            }
        )
        got = record(docker(line, level=3))
        assert (got.message, got.level, got.logger) == ("paid", "warning", "billing.pay")
        assert got.ts == datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp()  # the line's own
        assert got.fields["order"] == 7
        assert got.fields["container_name"] == "billing-1"  # Docker's wins
        assert got.format == "gelf"

    def test_json_line_without_logger_or_time(self) -> None:
        got = record(docker('{"msg": "hi", "level": "debug"}'))
        assert (got.logger, got.level, got.ts) == ("billing-1", "debug", 1700000000.25)

    def test_non_docker_level_is_the_fallback(self) -> None:
        assert record(docker("plain", level=4)).level == "warning"

    def test_record_naming_its_own_logger_keeps_it(self) -> None:
        assert record(docker("plain", _logger="worker")).logger == "worker"


def chunks(message: bytes, size: int, message_id: bytes | None = None) -> list[bytes]:
    """Chunks as graypy, pygelf and Docker cut them."""
    message_id = message_id or os.urandom(8)
    parts = [message[i : i + size] for i in range(0, len(message), size)]
    return [CHUNK_MAGIC + message_id + bytes([n, len(parts)]) + p for n, p in enumerate(parts)]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestReassembler:
    def make(self, **kw: int) -> tuple[ChunkReassembler, collections.Counter[str], Clock]:
        dropped: collections.Counter[str] = collections.Counter()
        clock = Clock()
        return ChunkReassembler(dropped, clock=clock, **kw), dropped, clock

    def test_in_order_and_out_of_order(self) -> None:
        chunker, dropped, _ = self.make()
        message = bytes(range(256)) * 20
        pieces = chunks(message, 700)
        assert len(pieces) == 8
        assert [chunker.add(p, "a") for p in pieces[:-1]] == [None] * 7
        assert chunker.add(pieces[-1], "a") == message
        shuffled = chunks(message, 700)
        order = [5, 0, 7, 2, 1, 6, 4, 3]
        got = [chunker.add(shuffled[i], "a") for i in order]
        assert got[:-1] == [None] * 7
        assert got[-1] == message
        assert (len(chunker), chunker.held, sum(dropped.values())) == (0, 0, 0)

    def test_single_chunk_message(self) -> None:
        chunker, _, _ = self.make()
        assert chunker.add(chunks(b"whole", 100)[0], "a") == b"whole"

    def test_same_id_from_two_senders_is_two_messages(self) -> None:
        chunker, _, _ = self.make()
        a, b = chunks(b"A" * 20, 10, b"12345678"), chunks(b"B" * 20, 10, b"12345678")
        assert chunker.add(a[0], "x:1") is None
        assert chunker.add(b[0], "y:1") is None
        assert chunker.add(b[1], "y:1") == b"B" * 20
        assert chunker.add(a[1], "x:1") == b"A" * 20

    def test_duplicate_counted_first_kept(self) -> None:
        chunker, _, _ = self.make()
        first, second = chunks(b"x" * 20, 10)
        chunker.add(first, "a")
        with pytest.raises(DecodeError) as caught:
            chunker.add(first[:12] + b"y" * 10, "a")
        assert caught.value.reason == "chunk_duplicate"
        assert chunker.add(second, "a") == b"x" * 20

    @pytest.mark.parametrize(
        ("header", "reason"),
        [
            (bytes([5, 3]), "chunk_out_of_range"),
            (bytes([3, 3]), "chunk_out_of_range"),
            (bytes([0, 0]), "bad_chunk"),
            (bytes([0, 129]), "bad_chunk"),
        ],
    )
    def test_out_of_range(self, header: bytes, reason: str) -> None:
        chunker, _, _ = self.make()
        with pytest.raises(DecodeError) as caught:
            chunker.add(CHUNK_MAGIC + b"8bytesid" + header + b"data", "a")
        assert caught.value.reason == reason
        assert len(chunker) == 0

    def test_count_that_changes_and_short_header(self) -> None:
        chunker, _, _ = self.make()
        chunker.add(CHUNK_MAGIC + b"8bytesid" + bytes([0, 3]) + b"data", "a")
        for bad in (CHUNK_MAGIC + b"8bytesid" + bytes([1, 4]) + b"x", CHUNK_MAGIC + b"short"):
            with pytest.raises(DecodeError) as caught:
                chunker.add(bad, "a")
            assert caught.value.reason == "bad_chunk"

    def test_128_chunks_allowed(self) -> None:
        chunker, _, _ = self.make()
        pieces = chunks(b"z" * 1280, 10)
        assert len(pieces) == 128
        assert [chunker.add(p, "a") for p in pieces][-1] == b"z" * 1280

    def test_expiry_after_five_seconds(self) -> None:
        chunker, dropped, clock = self.make()
        late = chunks(b"L" * 30, 10)
        chunker.add(late[0], "a")
        clock.now += 4.9
        timely = chunks(b"T" * 20, 10)
        chunker.add(timely[0], "a")
        clock.now += 0.2  # the first message is 5.1 s old, the second 0.2 s
        assert chunker.add(timely[1], "a") == b"T" * 20
        assert dropped["gelf_expired"] == 1
        assert (len(chunker), chunker.held) == (0, 0)
        # its later chunks start a new partial message that never completes
        assert chunker.add(late[1], "a") is None
        assert chunker.add(late[2], "a") is None
        clock.now += 5
        chunker.add(chunks(b"x", 10)[0], "a")
        assert dropped["gelf_expired"] == 2

    def test_memory_bound_by_messages_evicts_oldest(self) -> None:
        chunker, dropped, _ = self.make(in_flight=10)
        storm = [chunks(b"s" * 20, 10)[0] for _ in range(1000)]
        for chunk in storm:
            assert chunker.add(chunk, "attacker") is None
            assert len(chunker) <= 10
        assert dropped["gelf_evicted"] == 990
        real = chunks(b"r" * 20, 10)
        chunker.add(real[0], "sender")
        assert chunker.add(real[1], "sender") == b"r" * 20

    def test_memory_bound_by_bytes(self) -> None:
        chunker, dropped, _ = self.make(held_bytes=10_000)
        for _ in range(100):
            chunker.add(chunks(b"s" * 2000, 1000)[0], "attacker")
            assert chunker.held <= 10_000
        assert dropped["gelf_evicted"] == 90
        assert len(chunker) == 10

    def test_abandon_counts_partials(self) -> None:
        chunker, dropped, _ = self.make()
        chunker.add(chunks(b"a" * 20, 10)[0], "a")
        chunker.add(chunks(b"b" * 20, 10)[0], "a")
        chunker.abandon()
        assert dropped == {"gelf_incomplete": 2}
        assert (len(chunker), chunker.held) == (0, 0)

    def test_message_over_max_message(self) -> None:
        chunker, _, _ = self.make(max_message=100)
        pieces = chunks(b"m" * 300, 60)
        chunker.add(pieces[0], "a")
        with pytest.raises(DecodeError) as caught:
            chunker.add(pieces[1], "a")
        assert caught.value.reason == "frame_too_large"
        assert (len(chunker), chunker.held) == (0, 0)


def gelf_json(**extra: object) -> bytes:
    return json.dumps({"version": "1.1", "short_message": "hi", "level": 6, **extra}).encode()


class TestDatagrams:
    def make(self, **kw: int) -> tuple[GelfDatagrams, collections.Counter[str]]:
        dropped: collections.Counter[str] = collections.Counter()
        return GelfDatagrams(notes=collections.Counter(), dropped=dropped, **kw), dropped

    @pytest.mark.parametrize("pack", [lambda b: b, gzip.compress, zlib.compress])
    def test_plain_gzip_zlib_whole_and_chunked(self, pack) -> None:
        decode, _ = self.make()
        data = pack(gelf_json(_blob="x" * 3000, _n=1))
        got = decode(data, "a", 5.0)
        assert got is not None
        assert (got.message, got.fields["n"]) == ("hi", 1)
        pieces = chunks(data, 200)
        assert all(decode(p, "a", 5.0) is None for p in pieces[:-1])
        got = decode(pieces[-1], "a", 5.0)
        assert got is not None
        assert got.fields["blob"] == "x" * 3000

    @pytest.mark.parametrize("pack", [gzip.compress, zlib.compress])
    def test_bomb_rejected_after_the_cap(self, pack) -> None:
        decode, _ = self.make(max_frame=1 << 20)
        bomb = pack(b"{" + b" " * (64 << 20) + b"}")  # 64 MiB of JSON in ~65 KB
        assert len(bomb) < 70_000
        with pytest.raises(DecodeError) as caught:
            decode(bomb, "a", 1.0)
        assert caught.value.reason == "decompressed_too_large"

    def test_a_whole_datagram_expires_old_partials(self) -> None:
        dropped: collections.Counter[str] = collections.Counter()
        clock = Clock()
        decode = GelfDatagrams(notes=collections.Counter(), dropped=dropped, clock=clock)
        assert decode(chunks(gelf_json(), 10)[0], "a", 1.0) is None
        clock.now += 5.0
        assert decode(gelf_json(), "a", 1.0) is not None
        assert dropped == {"gelf_expired": 1}
        assert len(decode.chunks) == 0

    def test_plain_over_max_frame(self) -> None:
        decode, _ = self.make(max_frame=100)
        with pytest.raises(DecodeError) as caught:
            decode(gelf_json(_x="y" * 200), "a", 1.0)
        assert caught.value.reason == "frame_too_large"

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            (b"", "empty"),
            (b"  \n", "empty"),
            (b"\x1f\x8bxx", "bad_compression"),
            (b"hi", "bad_json"),
        ],
    )
    def test_bad_datagrams(self, data: bytes, reason: str) -> None:
        decode, _ = self.make()
        with pytest.raises(DecodeError) as caught:
            decode(data, "a", 1.0)
        assert caught.value.reason == reason


class TestStream:
    def test_frames_across_reads(self) -> None:
        decoder = GelfStreamDecoder("p", clock=lambda: 7.0)
        data = b"".join(gelf_json(_n=n) + b"\0" for n in range(5))
        out = []
        for i in range(0, len(data), 13):
            out += decoder.feed(data[i : i + 13])
        assert [r.fields["n"] for r in out] == [0, 1, 2, 3, 4]
        assert out[0].received == 7.0
        assert (decoder.records, decoder.pending) == (5, 0)
        assert decoder.feed(b"") == []

    def test_bad_frames_skipped_connection_kept(self) -> None:
        decoder = GelfStreamDecoder("p")
        out = decoder.feed(b"garbage\0[1]\0\0\n\0" + gelf_json() + b"\0")
        assert [r.message for r in out] == ["hi"]
        assert decoder.dropped == {"bad_frame": 2}
        assert decoder.last_problem is not None
        assert decoder.error is None

    def test_oversized_frame_dropped_next_found(self) -> None:
        decoder = GelfStreamDecoder("p", max_frame=100)
        out = decoder.feed(gelf_json(_x="x" * 500) + b"\0")
        out += decoder.feed(gelf_json() + b"\0")
        assert len(out) == 1
        assert decoder.dropped["line_too_long"] == 1

    def test_eof_completes_last_frame_abandon_does_not(self) -> None:
        decoder = GelfStreamDecoder("p")
        assert decoder.feed(gelf_json()) == []
        assert decoder.pending > 0
        assert len(decoder.feed(b"")) == 1
        with pytest.raises(DecodeError):
            decoder.feed(b"more")
        abandoned = GelfStreamDecoder("p")
        abandoned.feed(gelf_json())
        abandoned.abandon()
        assert abandoned.dropped["truncated"] == 1
        assert abandoned.pending == 0
        assert abandoned.replies() == b""
