"""``--syslog-forward`` URLs and options."""

import pytest

from netlog.settings import OPTIONS, OptionError, SyslogTarget, syslog_target


class TestSyslogTarget:
    """tcp://, udp:// and tls:// URLs, with their default ports."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("tcp://logs.example:1514", SyslogTarget("tcp", "logs.example", 1514)),
            ("UDP://10.0.0.5:514", SyslogTarget("udp", "10.0.0.5", 514)),
            ("tls://collector:6514/", SyslogTarget("tls", "collector", 6514)),
            ("tcp://collector", SyslogTarget("tcp", "collector", 514)),
            ("tls://collector", SyslogTarget("tls", "collector", 6514)),
            ("tcp://[::1]:1514", SyslogTarget("tcp", "::1", 1514)),
            ("udp://[::1]", SyslogTarget("udp", "::1", 514)),
            (" tcp://127.0.0.1:9 ", SyslogTarget("tcp", "127.0.0.1", 9)),
        ],
    )
    def test_valid(self, text, expected):
        assert syslog_target(text) == expected

    @pytest.mark.parametrize(
        "text",
        [
            "collector:514",
            "http://collector:514",
            "tcp://:514",
            "tcp://h:0",
            "tcp://h:70000",
            "tcp://h:x",
        ],
    )
    def test_invalid(self, text):
        with pytest.raises(OptionError):
            syslog_target(text)

    def test_options_exist_with_their_variables(self):
        options = {o.flag: o for o in OPTIONS}
        assert options["--syslog-forward"].env == "NETLOG_SYSLOG_FORWARD"
        assert options["--syslog-forward"].default is None
        assert options["--syslog-forward"].convert("tcp://h:1") == "tcp://h:1"
        assert options["--syslog-ca"].env == "NETLOG_SYSLOG_CA"
        with pytest.raises(OptionError):
            options["--syslog-forward"].convert("h:1")
