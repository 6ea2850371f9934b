"""The forward-protocol decoder: each mode, times, acks, Docker's split lines, the bounds."""

import gzip
import resource
import struct

import msgpack
import pytest
from fluent.sender import EventTime

from netlog.decode.forward import MAX_OPEN_PARTIALS, ForwardDecoder, event_time
from netlog.decode.inflate import inflate
from netlog.errors import DecodeError

NOW = 5000.0


def decoder(**kwargs) -> ForwardDecoder:
    return ForwardDecoder("10.0.0.1:4000", clock=lambda: NOW, **kwargs)


def pack(*message) -> bytes:
    return msgpack.packb(list(message))


def entry(ts, record) -> bytes:
    return msgpack.packb([ts, record])


def docker(line: str, source: str = "stdout", **extra) -> dict:
    """A record as Docker's fluentd driver builds it (every value a string)."""
    return {
        "container_id": "4f5e6d7c8b9a" * 5 + "abcd",
        "container_name": "/shop-web-1",
        "source": source,
        "log": line,
        **extra,
    }


def feed_all(dec: ForwardDecoder, data: bytes, *, bytewise: bool = False) -> list:
    if not bytewise:
        return dec.feed(data)
    out = []
    for i in range(len(data)):
        out.extend(dec.feed(data[i : i + 1]))
    return out


def feed_pieces(dec: ForwardDecoder, data: bytes, size: int) -> list:
    out = []
    for start in range(0, len(data), size):
        out.extend(dec.feed(data[start : start + size]))
    return out


class TestModes:
    """Message, Forward, PackedForward (bin and str) and CompressedPackedForward."""

    @pytest.mark.parametrize("bytewise", [False, True])
    def test_message_mode_as_fluent_logger_sends_it(self, bytewise):
        data = pack("app.billing", 1700000000, {"message": "paid", "level": "WARNING", "n": 3})
        [record] = feed_all(decoder(), data, bytewise=bytewise)
        assert record.message == "paid"
        assert record.level == "warning"
        assert record.ts == 1700000000.0
        assert record.received == NOW
        assert record.logger == "app.billing"  # nothing better names one: the tag
        assert record.fields == {"n": 3, "tag": "app.billing"}
        assert record.format == "fluent"
        assert record.peer == "10.0.0.1:4000"

    def test_message_mode_with_option_and_nil_option(self):
        dec = decoder()
        records = dec.feed(
            pack("t", 1, {"msg": "a"}, {"size": 1}) + pack("t", 2, {"msg": "b"}, None)
        )
        assert [r.message for r in records] == ["a", "b"]
        assert dec.replies() == b""

    def test_forward_mode(self):
        data = pack("t.fw", [[1, {"message": "one"}], [2, {"message": "two"}]], {"size": 2})
        records = decoder().feed(data)
        assert [(r.ts, r.message) for r in records] == [(1.0, "one"), (2.0, "two")]

    @pytest.mark.parametrize("as_str", [False, True])
    def test_packed_forward_bin_and_str(self, as_str):
        stream = entry(10, {"message": "x"}) + entry(11, {"message": "y"})
        # out_forward sends the stream as a msgpack str: packb of a str
        # would re-encode, so build the str header by hand around the bytes.
        if as_str:
            body = b"\xdb" + struct.pack(">I", len(stream)) + stream
            data = b"\x92" + msgpack.packb("t") + body
        else:
            data = pack("t", stream)
        records = decoder().feed(data)
        assert [(r.ts, r.message) for r in records] == [(10.0, "x"), (11.0, "y")]

    def test_compressed_packed_forward_with_concatenated_gzip_members(self):
        first = entry(1, docker("one"))
        second = entry(2, docker("two", "stderr"))
        data = pack(
            "docker.x", gzip.compress(first) + gzip.compress(second), {"compressed": "gzip"}
        )
        records = decoder().feed(data)
        assert [(r.message, r.level) for r in records] == [("one", "info"), ("two", "error")]

    def test_heartbeat_nil_is_ignored(self):
        dec = decoder()
        assert dec.feed(b"\xc0" + pack("t", 1, {"message": "after"}))[0].message == "after"


class TestTimes:
    """EventTime (ext 0, fixext 8 or ext 8), integers and floats."""

    def test_event_time_from_fluent_logger(self):
        [record] = decoder().feed(pack("t", EventTime(1700000000, 250_000_000), {"message": "m"}))
        assert record.ts == pytest.approx(1700000000.25)

    def test_event_time_as_ext8(self):
        raw = b"\xc7\x08\x00" + struct.pack(">II", 1700000001, 500_000_000)
        data = b"\x93" + msgpack.packb("t") + raw + msgpack.packb({"message": "m"})
        assert decoder().feed(data)[0].ts == pytest.approx(1700000001.5)

    def test_values(self):
        assert event_time(7) == 7.0
        assert event_time(7.5) == 7.5
        assert event_time(float("nan")) is None
        assert event_time(msgpack.ExtType(1, b"\0" * 8)) is None
        assert event_time(msgpack.ExtType(0, b"\0" * 4)) is None
        assert event_time("1700000000") is None

    def test_record_time_key_wins(self):
        [record] = decoder().feed(pack("t", 1, {"message": "m", "time": "2024-01-01T00:00:00Z"}))
        assert record.ts == 1704067200.0


class TestAck:
    """``chunk`` is answered ``{"ack": chunk}``, once, after the frame's records were handed out."""

    def test_ack_per_chunk_in_order(self):
        dec = decoder()
        a = pack("t", [[1, {"message": "a"}]], {"chunk": "p8n9gmxTQVC8/nh2wlKKeQ=="})
        b = pack("t", 2, {"message": "b"}, {"chunk": "second"})
        assert dec.feed(a[:-3]) == []
        assert dec.replies() == b""  # not before the frame is complete
        assert len(dec.feed(a[-3:] + b)) == 2
        unpacker = msgpack.Unpacker()
        unpacker.feed(dec.replies())
        assert list(unpacker) == [{"ack": "p8n9gmxTQVC8/nh2wlKKeQ=="}, {"ack": "second"}]
        assert dec.replies() == b""

    def test_no_ack_for_a_bad_frame(self):
        dec = decoder()
        dec.feed(
            pack("t", 1, {"message": "ok"}, {"chunk": "good"}) + pack("t", 1, "x", {"chunk": "bad"})
        )
        assert msgpack.unpackb(dec.replies()) == {"ack": "good"}


class TestDocker:
    """Docker's fluentd driver: the line, its stream, the container, split lines."""

    def test_line_stream_and_container(self):
        dec = decoder()
        records = dec.feed(
            pack("4f5e6d7c8b9a", 1, docker("listening on :8080"))
            + pack("4f5e6d7c8b9a", 2, docker("Traceback? no: plain stderr", "stderr"))
            + pack("4f5e6d7c8b9a", 3, docker("WARNING:root:disk low", "stderr"))
            + pack("4f5e6d7c8b9a", 4, docker('{"level":"debug","msg":"json line"}', "stderr"))
        )
        assert [(r.level, r.message) for r in records] == [
            ("info", "listening on :8080"),
            ("error", "Traceback? no: plain stderr"),
            ("warning", "WARNING:root:disk low"),
            ("debug", "json line"),
        ]
        first = records[0]
        assert first.logger == "shop-web-1"
        assert first.fields["container_name"] == "shop-web-1"
        assert first.fields["container_id"].startswith("4f5e6d7c8b9a")
        assert first.fields["source"] == "stdout"
        assert first.fields["tag"] == "4f5e6d7c8b9a"
        assert "log" not in first.fields

    def test_odd_types_in_docker_keys(self):
        body = {"log": "plain", "source": ["stderr"], "container_name": 7}
        [record] = decoder().feed(pack("t", 1, body))
        assert (record.level, record.logger, record.message) == ("info", "t", "plain")
        assert record.fields["source"] == ["stderr"]

    def test_blank_line_is_no_record(self):
        assert decoder().feed(pack("t", 1, docker(""))) == []

    def test_partial_lines_are_joined(self):
        dec = decoder()
        parts = ["a" * 16384, "b" * 16384, "c" * 10]
        frames = []
        for ordinal, text in enumerate(parts, 1):
            extra = {
                "partial_message": "true",
                "partial_id": "pid1",
                "partial_ordinal": str(ordinal),
                "partial_last": "true" if ordinal == len(parts) else "false",
            }
            frames.append(pack("t", 7, docker(text, "stderr", **extra)))
        # An unsplit line of the other stream between the parts.
        frames.insert(2, pack("t", 8, docker("between")))
        data = b"".join(frames)
        boundary = len(frames[0]) + len(frames[1])
        first = dec.feed(data[:boundary])
        assert first == []
        assert dec.pending > 32000  # the held parts count as unfinished
        records = dec.feed(data[boundary:])
        assert [r.message for r in records] == ["between", "".join(parts)]
        joined = records[1]
        assert joined.level == "error"
        assert joined.ts == 7.0
        assert not any(key.startswith("partial_") for key in joined.fields)
        assert dec.pending == 0

    def test_partial_past_max_line_is_written_cut_and_the_rest_discarded(self):
        dec = decoder(max_line=1000)
        out = []
        for ordinal in range(1, 6):
            extra = {
                "partial_message": "true",
                "partial_id": "big",
                "partial_ordinal": str(ordinal),
                "partial_last": "true" if ordinal == 5 else "false",
            }
            out += dec.feed(pack("t", 1, docker("x" * 400, **extra)))
        [record] = out
        assert len(record.message) <= 1000
        assert "message truncated" in record.message
        assert dec.notes["message_truncated"] == 1
        assert dec.notes["partial_discarded"] == 2
        assert dec.pending == 0
        assert dec.feed(pack("t", 1, docker("next")))[0].message == "next"

    def test_partial_at_eof_is_written_and_noted_at_abandon_counted(self):
        part = docker(
            "half",
            partial_message="true",
            partial_id="q",
            partial_ordinal="1",
            partial_last="false",
        )
        dec = decoder()
        assert dec.feed(pack("t", 1, part)) == []
        assert [r.message for r in dec.feed(b"")] == ["half"]
        assert dec.notes["partial_unfinished"] == 1
        dec = decoder()
        dec.feed(pack("t", 1, part))
        dec.abandon()
        assert dec.dropped["truncated"] == 1
        assert dec.pending == 0

    def test_open_partials_are_bounded(self):
        dec = decoder()
        out = []
        for n in range(MAX_OPEN_PARTIALS + 1):
            part = docker(
                f"p{n}",
                partial_message="true",
                partial_id=f"id{n}",
                partial_ordinal="1",
                partial_last="false",
            )
            out += dec.feed(pack("t", 1, part))
        assert [r.message for r in out] == ["p0"]
        assert dec.notes["partial_unfinished"] == 1


class TestOtherRecords:
    """fluent-logger's dicts and odd values."""

    def test_fluent_handler_default_format(self):
        body = {"sys_host": "h1", "sys_name": "app.db", "sys_module": "db", "message": "slow query"}
        [record] = decoder().feed(pack("app", 1, body))
        assert record.logger == "app.db"
        assert record.message == "slow query"
        assert record.fields == {
            "sys_host": "h1",
            "sys_name": "app.db",
            "sys_module": "db",
            "tag": "app",
        }

    def test_non_string_values_are_made_json_safe(self):
        body = {
            "message": "m",
            "blob": b"\x00\xff",
            5: "int key",
            "nan": float("nan"),
            "deep": [[{"a": 1}]],
        }
        [record] = decoder().feed(pack("t", 1, body))
        assert record.fields["blob"] == "\x00\\xff"
        assert record.fields["5"] == "int key"
        assert record.fields["nan"] == "nan"
        assert record.fields["deep"] == [[{"a": 1}]]

    def test_severity_and_log_less_record(self):
        [record] = decoder().feed(pack("t", 1, {"msg": "m", "severity": "ERROR"}))
        assert (record.level, record.message) == ("error", "m")

    def test_long_message_is_capped(self):
        dec = decoder(max_line=100)
        [record] = dec.feed(pack("t", 1, {"message": "y" * 500}))
        assert len(record.message) == 100
        assert dec.notes["message_truncated"] == 1


class TestBadInput:
    """Not a forward message, wrong types, bombs: DecodeError, nothing half written."""

    @pytest.mark.parametrize(
        "data",
        [
            msgpack.packb({"tag": "t"}),
            msgpack.packb(42),
            pack("t"),
            pack(1, 1, {}),
            pack("t", 1),
            pack("t", 1, "not a map"),
            pack("t", "1", {}),
            pack("t", [[1]]),
            pack("t", [[1, {}], "x"]),
            pack("t", [[None, {}]]),
            pack("t", 1, {}, "option"),
            pack("t", 1, {}, {}, {}),
            pack("t", b"\x92\x01"),  # packed entries that end inside an entry
            pack("t", b"\xc1"),  # never-used msgpack byte
            pack("t", b"not gzip", {"compressed": "gzip"}),
            b"\xc1",
        ],
    )
    def test_fatal(self, data):
        dec = decoder()
        with pytest.raises(DecodeError):
            dec.feed(data)
        assert dec.error is not None
        with pytest.raises(DecodeError):
            dec.feed(pack("t", 1, {"message": "after"}))

    def test_good_frames_before_a_bad_one_are_kept_and_its_own_none(self):
        dec = decoder()
        good = pack("t", 1, {"message": "good"})
        bad = pack("t", [[1, {"message": "half"}], [2, "not a map"]])
        records = dec.feed(good + bad)
        assert [r.message for r in records] == ["good"]
        assert dec.error is not None
        assert dec.error.reason == "bad_frame"

    def test_frame_too_large(self):
        dec = decoder(max_frame=1000)
        with pytest.raises(DecodeError) as info:
            dec.feed(pack("t", 1, {"message": "z" * 2000}))
        assert info.value.reason == "frame_too_large"

    def test_length_bombs_allocate_nothing_they_claim(self):
        """Claimed lengths (4 GiB bin, nested arrays of 2**32-1) wait for bytes, never allocate."""
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        dec = decoder(max_frame=1 << 20)
        nested = (b"\xdd" + struct.pack(">I", 2**32 - 1)) * 200_000  # 1 MB of array headers
        with pytest.raises(DecodeError) as info:
            feed_pieces(dec, nested, 65536)
        assert info.value.reason in {"frame_too_large", "bad_frame"}
        dec = decoder(max_frame=1 << 20)
        assert dec.feed(b"\x93\xa1t\xc6" + struct.pack(">I", 2**32 - 1)) == []
        assert dec.pending < 16
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert grown_mib < 64

    def test_gzip_bomb_is_refused(self):
        bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros, ~64 KB
        dec = decoder(max_frame=1 << 20)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with pytest.raises(DecodeError) as info:
            dec.feed(pack("t", bomb, {"compressed": "gzip"}))
        assert info.value.reason == "decompressed_too_large"
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert grown_mib < 32

    def test_truncated_frame_at_eof_is_counted(self):
        dec = decoder()
        assert dec.feed(pack("t", 1, {"message": "m"})[:-2]) == []
        assert dec.feed(b"") == []
        assert dec.dropped["truncated"] == 1

    def test_data_after_eof(self):
        dec = decoder()
        dec.feed(b"")
        with pytest.raises(DecodeError):
            dec.feed(b"\xc0")


class TestInflateMembers:
    """Concatenated gzip members share one cap; without ``members`` the rest is ignored."""

    def test_members_joined_under_one_cap(self):
        data = gzip.compress(b"a" * 600) + gzip.compress(b"b" * 600)
        assert inflate(data, 2000, "gzip", members=True) == b"a" * 600 + b"b" * 600
        assert inflate(data, 2000, "gzip") == b"a" * 600
        with pytest.raises(DecodeError) as info:
            inflate(data, 1000, "gzip", members=True)
        assert info.value.reason == "decompressed_too_large"

    def test_garbage_after_a_member(self):
        with pytest.raises(DecodeError) as info:
            inflate(gzip.compress(b"a") + b"junk", 100, "gzip", members=True)
        assert info.value.reason == "bad_compression"
