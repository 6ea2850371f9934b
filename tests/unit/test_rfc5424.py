"""The RFC 5424 formatter and its framings: read back with netlog's own syslog parser."""

import re

import orjson
import pytest

from netlog.decode.syslog import parse_syslog
from netlog.forward.rfc5424 import (
    BOM,
    MIN_DATAGRAM_LIMIT,
    SD_ID,
    Rfc5424,
    octet_counted,
    param_name,
    param_value,
    printable,
    severity,
)

RECORD = {
    "ts": "2026-11-30T22:51:08.123456Z",
    "received": "2026-11-30T22:51:08.200000Z",
    "level": "warning",
    "logger": "billing.invoices",
    "message": "payment late",
    "fields": {"order": 42, "user": "ann", "tags": ["a", "b"], "ctx": {"x": 1}},
    "exc": None,
    "peer": "127.0.0.1:5000",
    "format": "json",
    "id": "01JDXYZ0000000000000000000",
}


def record(**changes):
    return {**RECORD, **changes}


@pytest.fixture
def formatter():
    return Rfc5424("sink-host")


class TestMessage:
    """A stored record becomes one message every RFC 5424 parser reads back."""

    def test_header_fields(self, formatter):
        data = formatter.message(RECORD)
        assert data.startswith(
            b"<12>1 2026-11-30T22:51:08.123456Z sink-host billing.invoices - json "
        )
        parsed = parse_syslog(data)
        assert parsed is not None
        assert (parsed.rfc, parsed.facility, parsed.severity) == (5424, 1, 4)
        assert parsed.timestamp == RECORD["ts"]
        assert (parsed.hostname, parsed.app_name, parsed.procid, parsed.msgid) == (
            "sink-host",
            "billing.invoices",
            None,
            "json",
        )

    def test_structured_data_carries_id_then_fields(self, formatter):
        data = formatter.message(RECORD)
        assert (
            f'[{SD_ID} id="{RECORD["id"]}" order="42" user="ann" tags="[\\"a\\",\\"b\\"\\]"'
            f' ctx="{{\\"x\\":1}}"]'.encode()
            in data
        )
        parsed = parse_syslog(data)
        assert parsed is not None
        assert parsed.structured_data == {
            SD_ID: {
                "id": RECORD["id"],
                "order": "42",
                "user": "ann",
                "tags": '["a","b"]',
                "ctx": '{"x":1}',
            }
        }

    def test_message_is_utf8_with_bom(self, formatter):
        data = formatter.message(record(message="café ✓"))
        assert data.endswith(b"] " + BOM + "café ✓".encode())
        parsed = parse_syslog(data)
        assert parsed is not None
        assert parsed.message == "café ✓"

    def test_traceback_follows_the_message_on_a_new_line(self, formatter):
        exc = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad'
        data = formatter.message(record(message="failed", exc=exc))
        assert data.endswith(BOM + b"failed\n" + exc.encode())
        only_exc = formatter.message(record(message="", exc=exc))
        assert only_exc.endswith(b"] " + BOM + exc.encode())

    def test_empty_message_has_no_msg_part(self, formatter):
        data = formatter.message(record(message="", fields={}))
        assert data.endswith(f'[{SD_ID} id="{RECORD["id"]}"]'.encode())
        assert BOM not in data

    def test_host_key_wins_over_this_machine(self, formatter):
        parsed = parse_syslog(formatter.message(record(host="web-1")))
        assert parsed is not None
        assert parsed.hostname == "web-1"

    def test_pid_from_logrecord_source_or_pid_field(self, formatter):
        from_src = formatter.message(record(fields={"_src": {"process": 4242, "line": 3}}))
        from_pid = formatter.message(record(fields={"pid": 77}))
        not_a_pid = formatter.message(record(fields={"pid": "77; rm"}))
        assert b" billing.invoices 4242 json " in from_src
        assert b" billing.invoices 77 json " in from_pid
        assert b" billing.invoices - json " in not_a_pid

    def test_unreadable_timestamp_is_nil(self, formatter):
        for ts in ("yesterday", 1700000000.5, None, "2026-11-30T22:51:08.1234567Z"):
            parsed = parse_syslog(formatter.message(record(ts=ts)))
            assert parsed is not None
            assert parsed.timestamp is None

    def test_timestamp_has_microseconds_and_z(self, formatter):
        stamp = formatter.message(RECORD).split(b" ")[1].decode()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)

    def test_missing_keys_give_nil_values(self, formatter):
        data = formatter.message({"message": "bare"})
        assert data == b"<14>1 - sink-host - - - [" + SD_ID.encode() + b' id=""] ' + BOM + b"bare"


class TestSanitising:
    """Header fields and PARAM-NAMEs keep to their characters; PARAM-VALUEs are escaped."""

    def test_app_name_is_printusascii_at_most_48(self, formatter):
        assert printable("my app/ünï", 48) == "my_app/_n_"
        assert printable("x" * 60, 48) == "x" * 48
        assert printable("", 48) == "-"
        assert printable(None, 48) == "-"
        parsed = parse_syslog(formatter.message(record(logger="a b\tc")))
        assert parsed is not None
        assert parsed.app_name == "a_b_c"

    def test_param_name_rules(self):
        assert param_name('a=b c]d"e') == "a_b_c_d_e"
        assert param_name("ключ") == "____"
        assert param_name("k" * 40) == "k" * 32
        assert param_name("") == "_"

    def test_param_value_escapes_quote_backslash_bracket(self):
        assert param_value('say "hi" \\ [x]') == 'say \\"hi\\" \\\\ [x\\]'

    def test_param_value_json_for_non_strings(self):
        assert param_value(None) == "null"
        assert param_value(True) == "true"
        assert param_value(1.5) == "1.5"
        assert param_value({"a": [1, "]"]}) == '{\\"a\\":[1,\\"\\]\\"\\]}'

    def test_hostile_fields_still_parse(self, formatter):
        fields = {'k"]': 'v"]\\', "sp ace": "x ] y", "=": "", "nl": "a\nb"}
        parsed = parse_syslog(formatter.message(record(fields=fields)))
        assert parsed is not None
        assert parsed.structured_data[SD_ID] == {
            "id": RECORD["id"],
            "k__": 'v"]\\',
            "sp_ace": "x ] y",
            "_": "",
            "nl": "a\nb",
        }
        assert parsed.message == "payment late"


class TestSeverity:
    """Every level spelling maps to the RFC 5424 severity of its rank."""

    @pytest.mark.parametrize(
        ("level", "expected"),
        [
            ("emergency", 0),
            ("emerg", 0),
            ("alert", 1),
            ("critical", 2),
            ("fatal", 2),
            ("CRIT", 2),
            ("error", 3),
            ("err", 3),
            ("warning", 4),
            ("warn", 4),
            ("notice", 5),
            ("info", 6),
            ("debug", 7),
            ("trace", 7),
            ("level 15", 7),
            ("level 35", 4),
            ("whatever", 6),
            (None, 6),
            (30, 6),
        ],
    )
    def test_level_to_severity(self, level, expected):
        assert severity(level) == expected

    def test_pri_is_user_facility(self, formatter):
        assert formatter.message(record(level="error")).startswith(b"<11>1 ")
        assert formatter.message(record(level="debug")).startswith(b"<15>1 ")
        assert Rfc5424("h", facility=16).message(RECORD).startswith(b"<132>1 ")


class TestOctetCounting:
    """RFC 6587 3.4.1: the length in octets, a space, the message."""

    def test_length_counts_bytes_not_characters(self, formatter):
        message = formatter.message(record(message="✓" * 10))
        framed = octet_counted(message)
        length, _, rest = framed.partition(b" ")
        assert int(length) == len(message) == len(rest)
        assert rest == message

    def test_frames_concatenate_and_split_back(self, formatter):
        messages = [formatter.message(record(message=f"m{i}\nline")) for i in range(3)]
        stream = b"".join(octet_counted(m) for m in messages)
        split = []
        while stream:
            length, _, stream = stream.partition(b" ")
            split.append(stream[: int(length)])
            stream = stream[int(length) :]
        assert split == messages


class TestDatagram:
    """UDP: one message a datagram, cut to the limit and marked when longer."""

    def test_short_message_is_whole(self, formatter):
        datagram = formatter.datagram(RECORD, 2048)
        assert not datagram.truncated
        assert datagram.data == formatter.message(RECORD)

    def test_long_message_is_cut_to_the_limit_and_marked(self, formatter):
        datagram = formatter.datagram(record(message="é" * 3000), 2048)
        assert datagram.truncated
        assert len(datagram.data) <= 2048
        parsed = parse_syslog(datagram.data)
        assert parsed is not None
        assert parsed.structured_data[SD_ID]["truncated"] == "1"
        assert parsed.structured_data[SD_ID]["order"] == "42"
        # Cut at a character boundary: nothing but whole "é"s.
        assert set(parsed.message) == {"é"}
        assert len(parsed.message) > 800

    def test_fields_too_large_are_dropped_but_id_stays(self, formatter):
        datagram = formatter.datagram(record(fields={"big": "x" * 5000}), 1024)
        assert datagram.truncated
        assert len(datagram.data) <= 1024
        parsed = parse_syslog(datagram.data)
        assert parsed is not None
        assert parsed.structured_data == {SD_ID: {"id": RECORD["id"], "truncated": "1"}}
        assert parsed.message.startswith("payment late")

    def test_limit_never_below_the_rfc_minimum(self):
        worst = Rfc5424("h" * 300)
        big = record(
            logger="l" * 100,
            format="f" * 100,
            fields={"pid": 10**19, "x": "y" * 1000},
            message="m" * 1000,
            level="emergency",
        )
        datagram = worst.datagram(big, 10)
        assert datagram.truncated
        assert len(datagram.data) <= MIN_DATAGRAM_LIMIT
        parsed = parse_syslog(datagram.data)
        assert parsed is not None
        assert parsed.structured_data[SD_ID]["id"] == RECORD["id"]

    def test_round_trip_of_a_stored_line(self, formatter):
        line = orjson.dumps(RECORD)
        assert formatter.datagram(orjson.loads(line)).data == formatter.message(RECORD)
