"""``--syslog-forward`` URLs and the reconnect backoff."""

import pytest

from netlog.forward.syslog import Backoff
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


class TestBackoff:
    """No wait before the first attempt, then doubling delays up to the cap, with jitter."""

    def test_doubles_to_the_cap_and_starts_over(self):
        backoff = Backoff(first=0.2, cap=1.0)
        assert backoff.delay() == 0.0
        steps = []
        for _ in range(5):
            backoff.failed()
            delays = [backoff.delay() for _ in range(50)]
            steps.append(max(delays))
            assert all(d > 0 for d in delays)
        assert steps[0] <= 0.2
        assert steps[1] <= 0.4
        assert steps[2] <= 0.8
        assert all(0.5 <= s <= 1.0 for s in steps[3:])
        backoff.succeeded()
        assert backoff.delay() == 0.0

    def test_jitter_is_between_half_and_whole_step(self):
        backoff = Backoff(first=1.0, cap=1.0)
        backoff.failed()
        delays = [backoff.delay() for _ in range(200)]
        assert all(0.5 <= d <= 1.0 for d in delays)
        assert max(delays) - min(delays) > 0.1
