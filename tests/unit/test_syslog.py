import logging
import logging.handlers

import pytest

from netlog.decode.syslog import SyslogMessage, parse_syslog


def syslog_handler_bytes(message, *, ident="", level=logging.WARNING, facility="local3"):
    """The exact datagram logging.handlers.SysLogHandler.emit() sends."""
    handler = logging.handlers.SysLogHandler(address=("127.0.0.1", 9), facility=facility)
    handler.ident = ident
    try:
        record = logging.makeLogRecord(
            {"msg": message, "levelno": level, "levelname": logging.getLevelName(level)}
        )
        text = handler.ident + handler.format(record) + "\000"
        prio = handler.encodePriority(handler.facility, handler.mapPriority(record.levelname))
        return f"<{prio}>".encode() + text.encode()
    finally:
        handler.close()


class TestRfc5424:
    """The examples of RFC 5424 section 6.5."""

    def test_example_1_bom_and_no_sd(self):
        data = (
            b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
            b"\xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8"
        )
        assert parse_syslog(data) == SyslogMessage(
            5424,
            4,
            2,
            "2003-10-11T22:14:15.003Z",
            "mymachine.example.com",
            "su",
            None,
            "ID47",
            {},
            "'su root' failed for lonvick on /dev/pts/8",
        )

    def test_example_2_nil_msgid(self):
        data = (
            b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
            b"%% It's time to make the do-nuts."
        )
        message = parse_syslog(data)
        assert message is not None
        assert (message.facility_name, message.severity_name) == ("local4", "notice")
        assert message.procid == "8710"
        assert message.msgid is None
        assert message.message == "%% It's time to make the do-nuts."

    def test_example_3_structured_data(self):
        data = (
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
            b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] '
            b"\xef\xbb\xbfAn application event log entry..."
        )
        message = parse_syslog(data)
        assert message is not None
        assert message.structured_data == {
            "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}
        }
        assert message.message == "An application event log entry..."

    def test_example_4_sd_only(self):
        data = (
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
            b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
            b'[examplePriority@32473 class="high"]'
        )
        message = parse_syslog(data)
        assert message is not None
        assert message.structured_data["examplePriority@32473"] == {"class": "high"}
        assert message.message == ""

    def test_sd_escapes(self):
        message = parse_syslog(b'<14>1 - - - - - [a@1 k="q\\"b\\\\s\\]e"] msg')
        assert message is not None
        assert message.structured_data == {"a@1": {"k": 'q"b\\s]e'}}
        assert message.timestamp is None

    @pytest.mark.parametrize(
        "data",
        [
            b"<14>1 - - - - - [broken",
            b'<14>1 - - - - - [a k="v"]x',
            b"<14>1 short",
            b"<14>1 - - - - - [a k=v]",
        ],
    )
    def test_broken_structure_is_read_as_3164(self, data):
        message = parse_syslog(data)
        assert message is not None
        assert message.rfc == 3164
        assert message.message


class TestRfc3164:
    """BSD syslog, as the RFC shows it and as real senders send it."""

    def test_rfc_example(self):
        message = parse_syslog(
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"
        )
        assert message == SyslogMessage(
            3164,
            4,
            2,
            "Oct 11 22:14:15",
            "mymachine",
            "su",
            None,
            None,
            {},
            "'su root' failed for lonvick on /dev/pts/8",
        )

    def test_tag_with_pid(self):
        message = parse_syslog(b"<13>Feb  5 17:32:18 10.0.0.99 sshd[4242]: Accepted key\n")
        assert message is not None
        assert (message.hostname, message.app_name, message.procid) == ("10.0.0.99", "sshd", "4242")
        assert message.message == "Accepted key"

    def test_rfc3339_timestamp(self):
        message = parse_syslog(b"<13>2024-01-01T00:00:00Z host app: hi")
        assert message is not None
        assert (message.timestamp, message.hostname, message.app_name) == (
            "2024-01-01T00:00:00Z",
            "host",
            "app",
        )

    def test_no_hostname(self):
        message = parse_syslog(b"<13>Oct 11 22:14:15 su: x")
        assert message is not None
        assert (message.hostname, message.app_name, message.message) == (None, "su", "x")

    def test_python_sysloghandler(self):
        message = parse_syslog(syslog_handler_bytes("disk ünd full"))
        assert message is not None
        assert (message.facility_name, message.severity_name) == ("local3", "warning")
        assert message.message == "disk ünd full"
        assert message.app_name is None

    def test_python_sysloghandler_with_ident(self):
        message = parse_syslog(
            syslog_handler_bytes("started", ident="myapp: ", level=logging.ERROR)
        )
        assert message is not None
        assert (message.app_name, message.severity_name, message.message) == (
            "myapp",
            "err",
            "started",
        )

    def test_invalid_utf8_is_kept(self):
        message = parse_syslog(b"<13>bad \xff byte")
        assert message is not None
        assert message.message == "bad \\xff byte"


class TestNotSyslog:
    """Only a valid <PRI> makes a message syslog."""

    @pytest.mark.parametrize(
        "data", [b"hello", b"<>x", b"<192>x", b"<1234>x", b"<a>x", b"", b"<13"]
    )
    def test_rejected(self, data):
        assert parse_syslog(data) is None

    def test_bounds(self):
        assert parse_syslog(b"<0>x") is not None
        assert parse_syslog(b"<191>x") is not None
