import collections
import logging
import logging.handlers
import os
import pickle

import pytest
import structlog

from netlog.decode.datagram import decode_datagram
from netlog.errors import DecodeError

PEER = "10.0.0.1:40000"
RECEIVED = 1_700_000_000.0


def datagram_pickle(msg="hello", **extra):
    record = logging.makeLogRecord(
        {"name": "udp", "msg": msg, "levelname": "WARNING", "levelno": 30, **extra}
    )
    return logging.handlers.DatagramHandler("x", 0).makePickle(record)


def decode(data, **kwargs):
    return decode_datagram(data, PEER, RECEIVED, **kwargs)


class TestPickleDatagrams:
    """DatagramHandler sends one length-prefixed pickle per datagram."""

    def test_datagram_handler(self):
        record = decode(datagram_pickle("über", request_id="r1"))
        assert (record.format, record.message, record.level, record.logger) == (
            "pickle",
            "über",
            "warning",
            "udp",
        )
        assert record.fields["request_id"] == "r1"
        assert (record.peer, record.received) == (PEER, RECEIVED)

    @pytest.mark.parametrize("cut", [1, 2, 3])
    def test_too_short(self, cut):
        with pytest.raises(DecodeError) as info:
            decode(datagram_pickle()[:cut])
        assert info.value.reason == "bad_datagram"

    def test_cut_short_is_a_length_mismatch(self):
        data = datagram_pickle("x" * 100)
        for cut in range(4, len(data)):
            with pytest.raises(DecodeError) as info:
                decode(data[:cut])
            assert info.value.reason == "length_mismatch"

    def test_trailing_data_is_a_length_mismatch(self):
        with pytest.raises(DecodeError) as info:
            decode(datagram_pickle() + b"\x00")
        assert info.value.reason == "length_mismatch"

    def test_frame_too_large(self):
        data = datagram_pickle("x" * 100)
        with pytest.raises(DecodeError) as info:
            decode(data, max_frame=50)
        assert info.value.reason == "frame_too_large"

    def test_bad_frame(self):
        body = pickle.dumps(["not", "a", "dict"], 1)
        with pytest.raises(DecodeError) as info:
            decode(len(body).to_bytes(4, "big") + body)
        assert info.value.reason == "bad_frame"

    def test_hostile(self, tmp_path):
        marker = tmp_path / "pwned"

        class Evil:
            def __reduce__(self):
                return os.system, (f"touch {marker}",)

        record = decode(datagram_pickle(extra_field=Evil()))
        assert not marker.exists()
        assert "system" in record.fields["extra_field"]


class TestOtherDatagrams:
    """JSON, syslog and text datagrams."""

    def test_json(self):
        line = structlog.processors.JSONRenderer()(
            None, "info", {"event": "hi", "level": "error", "k": 1}
        )
        record = decode(line.encode() + b"\n")
        assert (record.format, record.message, record.level, record.fields) == (
            "json",
            "hi",
            "error",
            {"k": 1},
        )

    def test_bad_json_is_text(self):
        record = decode(b"{nope}\n")
        assert (record.format, record.message) == ("text", "{nope}")

    def test_notes_are_counted_as_for_tcp(self):
        notes = collections.Counter()
        decode(b"{nope}\n", notes=notes)
        decode(b"plain \xff text", notes=notes)
        decode(b'{"event": "fine"}', notes=notes)
        decode(b"<html> \xff", notes=notes)
        assert notes == {"json_as_text": 1, "invalid_utf8": 2}

    def test_notes_are_optional(self):
        assert decode(b"{nope \xff").message == "{nope \\xff"

    def test_text(self):
        record = decode(b"plain \xff text\r\n")
        assert (record.format, record.message, record.level, record.ts) == (
            "text",
            "plain \\xff text",
            "info",
            RECEIVED,
        )

    def test_syslog_5424(self):
        record = decode(
            b'<165>1 2003-10-11T22:14:15.003Z host.example app 42 ID1 [x@1 a="b"] \xef\xbb\xbfmsg'
        )
        assert (record.format, record.message, record.level, record.logger) == (
            "syslog",
            "msg",
            "info",
            "app",
        )
        assert record.ts == pytest.approx(1065910455.003)
        assert record.fields == {
            "facility": "local4",
            "severity": "notice",
            "host": "host.example",
            "procid": "42",
            "msgid": "ID1",
            "sd": {"x@1": {"a": "b"}},
        }

    @pytest.mark.parametrize(
        ("severity", "level"),
        [
            (0, "critical"),
            (1, "critical"),
            (2, "critical"),
            (3, "error"),
            (4, "warning"),
            (5, "info"),
            (6, "info"),
            (7, "debug"),
        ],
    )
    def test_syslog_levels(self, severity, level):
        assert decode(f"<{8 + severity}>x".encode()).level == level

    def test_syslog_3164_keeps_the_timestamp_text(self):
        record = decode(b"<34>Oct 11 22:14:15 mymachine su: failed")
        assert record.ts == RECEIVED
        assert record.fields["timestamp"] == "Oct 11 22:14:15"
        assert record.fields["host"] == "mymachine"
        assert record.logger == "su"

    def test_syslog_5424_bad_timestamp_is_kept(self):
        record = decode(b"<14>1 yesterday h a - - - m")
        assert record.ts == RECEIVED
        assert record.fields["timestamp"] == "yesterday"

    def test_angle_bracket_text(self):
        record = decode(b"<html> is not syslog")
        assert (record.format, record.message) == ("text", "<html> is not syslog")

    @pytest.mark.parametrize("data", [b"", b"\n", b"  \r\n"])
    def test_empty(self, data):
        with pytest.raises(DecodeError) as info:
            decode(data)
        assert info.value.reason == "empty"


class TestPoison:
    """Issue 15 item 1: values a decoder cannot print cost their own record at most."""

    def test_unprintable_level_number(self):
        data = pickle.dumps({"msg": "poison", "levelno": 10**5000}, 4)
        record = decode(len(data).to_bytes(4, "big") + data)
        assert (record.message, record.level) == ("poison", "info")

    def test_built_message_is_capped_at_max_line(self):
        data = pickle.dumps({"msg": ["x" * 100] * 100}, 4)
        notes = collections.Counter()
        record = decode(len(data).to_bytes(4, "big") + data, max_line=1000, notes=notes)
        assert len(record.message) <= 1000
        assert record.message.endswith("characters>")
        assert notes["message_truncated"] == 1

    def test_text_is_capped_when_max_line_is_small(self):
        record = decode(b"y" * 5000, max_line=1000)
        assert len(record.message) <= 1000
