"""Address parsing shared by configure(), `netlog send` and `netlog probe`."""

import pytest

from netlog.client import DEFAULT_ADDRESS, DEFAULT_PORT, parse_address
from netlog.settings import DEFAULT_LOG_TCP_PORT


class TestParseAddress:
    """host:port forms a user types, and the errors they get."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("127.0.0.1:9020", ("127.0.0.1", 9020)),
            ("netlog:9", ("netlog", 9)),
            ("netlog", ("netlog", 9020)),
            ("[::1]:9020", ("::1", 9020)),
            ("[::1]", ("::1", 9020)),
            ("::1", ("::1", 9020)),
            (":9020", ("127.0.0.1", 9020)),
        ],
    )
    def test_forms(self, text, expected):
        assert parse_address(text) == expected

    @pytest.mark.parametrize("text", ["", "host:port", "host:0", "host:70000"])
    def test_bad(self, text):
        with pytest.raises(ValueError):
            parse_address(text)


class TestDefaults:
    """The client's default is the sink's own port, taken from netlog.settings."""

    def test_default_address_is_the_sinks_tcp_port(self):
        assert DEFAULT_PORT == DEFAULT_LOG_TCP_PORT == 9020
        assert parse_address(DEFAULT_ADDRESS) == ("127.0.0.1", 9020)
