"""Syslog over TCP on the log stream: RFC 6587 octet counting and non-transparent framing."""

import pytest

from netlog.decode.framing import OctetCounted, is_octet_counted
from netlog.decode.stream import StreamDecoder
from netlog.errors import DecodeError

PEER = "127.0.0.1:5555"
RFC5424 = b"<165>1 2026-11-30T22:14:15.003Z web1 billing 4242 ID47 - payment captured"
RFC3164 = b"<34>Nov 30 22:14:15 web1 su[77]: 'su root' failed"


def octets(*messages: bytes) -> bytes:
    return b"".join(b"%d %s" % (len(m), m) for m in messages)


def whole(data: bytes, **kwargs):
    decoder = StreamDecoder(PEER, clock=lambda: 1000.0, **kwargs)
    return decoder, decoder.feed(data) + decoder.feed(b"")


def bytewise(data: bytes, **kwargs):
    decoder = StreamDecoder(PEER, clock=lambda: 1000.0, **kwargs)
    out = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
    return decoder, out + decoder.feed(b"")


FEEDS = [whole, bytewise]


class TestDetection:
    """A connection's first bytes say octet counting, syslog lines, or lines."""

    @pytest.mark.parametrize(
        ("head", "expected"),
        [
            (b"78 <11>1", True),
            (b"7 <", True),
            (b"78", None),
            (b"78 ", None),
            (b"2026-11-30 started", False),
            (b"78 x", False),
            (b"078 <", False),
            (b"1234567890 <", False),
            (b"12:00", False),
        ],
    )
    def test_head(self, head, expected):
        """Digits, a space and ``<`` mean octet counting; digits alone are undecided."""
        assert is_octet_counted(head) is expected

    @pytest.mark.parametrize("feed", FEEDS)
    def test_text_line_starting_with_digits(self, feed):
        """A text line that starts with a date stays a text line, whole or a byte at a time."""
        decoder, records = feed(b"2026-11-30 12:00 started\n12 apples\n")
        assert decoder.format == "lines"
        assert [(r.format, r.message) for r in records] == [
            ("text", "2026-11-30 12:00 started"),
            ("text", "12 apples"),
        ]

    def test_short_number_then_eof(self):
        """A connection that sends only ``42`` and closes is a text record, not lost."""
        _, records = whole(b"42")
        assert [(r.format, r.message) for r in records] == [("text", "42")]

    def test_undecided_head_is_pending_and_lost_on_abandon(self):
        """Bytes held while undecided count as pending, and as truncated when given up."""
        decoder = StreamDecoder(PEER)
        assert decoder.feed(b"78 ") == []
        assert decoder.pending == 3
        decoder.abandon()
        assert decoder.dropped["truncated"] == 1

    @pytest.mark.parametrize("feed", FEEDS)
    def test_json_lines_unchanged(self, feed):
        """A JSON-lines connection is detected and decoded as before."""
        decoder, records = feed(b'{"event": "hi", "level": "info"}\n')
        assert decoder.format == "lines"
        assert [(r.format, r.message) for r in records] == [("json", "hi")]


class TestOctetCounting:
    """RFC 6587 section 3.4.1, how rsyslog's omfwd and RFC 5425 TLS send syslog."""

    @pytest.mark.parametrize("feed", FEEDS)
    def test_frames(self, feed):
        """RFC 5424 and RFC 3164 frames become syslog records with app-name as logger."""
        decoder, records = feed(octets(RFC5424, RFC3164))
        assert decoder.format == "octets"
        assert [(r.format, r.logger, r.level, r.message) for r in records] == [
            ("syslog", "billing", "info", "payment captured"),
            ("syslog", "su", "critical", "'su root' failed"),
        ]
        assert records[0].fields["host"] == "web1"
        assert records[0].fields["msgid"] == "ID47"
        assert records[0].ts == pytest.approx(1796076855.003)

    def test_frame_holding_newlines_and_a_trailing_lf(self):
        """A message may hold newlines; a line ending between frames is tolerated."""
        message = b"<14>1 - - app - - - line one\nline two"
        _, records = whole(octets(message) + b"\n" + octets(RFC3164) + b"\r\n")
        assert [r.message for r in records] == ["line one\nline two", "'su root' failed"]

    @pytest.mark.parametrize("feed", FEEDS)
    def test_frame_over_max_line_is_skipped(self, feed):
        """A frame over --max-line is dropped, counted, and the next frame decoded."""
        big = b"<14>1 - - app - - - " + b"x" * 200
        decoder, records = feed(octets(RFC3164, big, RFC5424), max_line=100)
        assert [r.logger for r in records] == ["su", "billing"]
        assert decoder.dropped["line_too_long"] == 1

    def test_skipped_frame_never_buffered(self):
        """Skipping a huge frame holds nothing but the count of what is left."""
        framer = OctetCounted(100, lambda *_: None)
        assert framer.push(b"1000000 <14>") == []
        assert framer.push(b"x" * 500_000) == []
        assert len(framer._buf) == 0
        assert framer.push(b"y" * (1_000_000 - 4 - 500_000) + octets(RFC3164)) == [RFC3164]

    @pytest.mark.parametrize("bad", [b"12x <14>hello\n", b"abc", b"99999999999 <"])
    def test_bad_header_is_fatal_after_good_frames(self, bad):
        """A header that is not a count ends the connection, after the frames before it."""
        decoder = StreamDecoder(PEER)
        records = decoder.feed(octets(RFC3164) + bad)
        assert [r.logger for r in records] == ["su"]
        with pytest.raises(DecodeError) as caught:
            decoder.feed(b"more")
        assert caught.value.reason == "bad_octet_count"

    def test_eof_inside_a_frame_is_truncated(self):
        """A frame cut by EOF is counted, never returned half."""
        decoder, records = whole(octets(RFC3164)[:-5])
        assert records == []
        assert decoder.dropped["truncated"] == 1

    def test_frame_without_pri_is_text(self):
        """A counted frame whose content is not ``<PRI>`` syslog is kept as text."""
        _, records = whole(b"5 <999>" + octets(b"plain words"))
        assert [(r.format, r.message) for r in records] == [
            ("text", "<999>"),
            ("text", "plain words"),
        ]


class TestNonTransparent:
    """RFC 6587 section 3.4.2: LF-terminated ``<PRI>`` lines."""

    @pytest.mark.parametrize("feed", FEEDS)
    def test_lines(self, feed):
        """Each ``<PRI>`` line is a syslog record; a line without one is text or JSON."""
        decoder, records = feed(RFC5424 + b"\n" + RFC3164 + b'\r\nno pri here\n{"event": "j"}\n')
        assert decoder.format == "syslog"
        assert [(r.format, r.logger or r.message) for r in records] == [
            ("syslog", "billing"),
            ("syslog", "su"),
            ("text", "no pri here"),
            ("json", "j"),
        ]

    def test_line_over_max_line_is_dropped(self):
        """--max-line bounds a syslog line as any line."""
        decoder, records = whole(b"<14>" + b"x" * 200 + b"\n" + RFC3164 + b"\n", max_line=100)
        assert [r.logger for r in records] == ["su"]
        assert decoder.dropped["line_too_long"] == 1

    def test_rsyslog_traditional_tag_without_colon(self):
        """rsyslog forwards an RFC 5424 message traditionally as ``APP[PROCID] MSG``: no colon."""
        _, records = whole(b"<11>Nov 30 22:00:00 web1 auth[77] forwarded message 0\n")
        assert [(r.logger, r.message, r.fields["procid"]) for r in records] == [
            ("auth", "forwarded message 0", "77")
        ]
