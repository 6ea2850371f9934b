"""The forwarding options: checked once in settings, handed to the forwarder by environment."""

import asyncio
from pathlib import Path

import pytest

from netlog.forward.__main__ import _parser
from netlog.forward.config import FORWARD_FIELDS, child_env, destination_names
from netlog.forward.nats import NatsDestination, _classify, subject_token
from netlog.settings import OPTIONS, OptionError, Settings

BY_NAME = {option.name: option for option in OPTIONS}


class TestOptions:
    """Bad values are refused with a reason; good ones kept as written."""

    def test_nats_urls(self):
        convert = BY_NAME["nats"].convert
        assert convert(" nats://a:4222, tls://b:4222 ") == "nats://a:4222,tls://b:4222"
        assert convert("") == ""
        with pytest.raises(OptionError, match="not a NATS server URL"):
            convert("http://a:4222")

    @pytest.mark.parametrize("bad", ["a.b", "a b", "a*", "a>", "a/b", ""])
    def test_stream_name(self, bad):
        with pytest.raises(OptionError):
            BY_NAME["nats_stream"].convert(bad)

    @pytest.mark.parametrize("bad", ["netlog.*", "netlog.>", "a..b", ".a", "a b", ""])
    def test_subject_prefix(self, bad):
        with pytest.raises(OptionError):
            BY_NAME["nats_subject"].convert(bad)

    def test_replicas_one_to_five(self):
        convert = BY_NAME["nats_replicas"].convert
        assert convert("3") == 3
        for bad in ("0", "6", "x"):
            with pytest.raises(OptionError):
                convert(bad)


class TestHandOver:
    """What serve was told is what the forwarder process parses."""

    def test_child_env_round_trips_through_the_forwarder_parser(self, tmp_path):
        settings = Settings(
            log_dir=tmp_path,
            nats="nats://u:secret@h:4222",
            nats_stream="LOGS",
            nats_replicas=3,
            nats_subject="a.b",
            nats_creds=Path("/etc/nats/app.creds"),
            forward_host="web1",
        )
        args = _parser(child_env(settings)).parse_args([])
        for name in FORWARD_FIELDS:
            assert getattr(args, name) == getattr(settings, name), name

    def test_no_destination_no_forwarder(self, tmp_path):
        assert destination_names(Settings(log_dir=tmp_path)) == []
        assert destination_names(Settings(log_dir=tmp_path, nats="nats://h:4222")) == ["nats"]


class TestSubject:
    """One subject token per host, whatever its name."""

    def test_host_sanitised(self):
        assert subject_token("web 1.example*>") == "web_1_example__"
        assert subject_token("") == "unknown"
        assert NatsDestination(["nats://h"], host="db.1").subject == "netlog.records.db_1"


class TestHeard:
    def test_authorization_not_hidden_by_the_reset_that_follows(self):
        """The server's refusal, then the reset it closes with: still 'credentials'."""
        destination = NatsDestination(["nats://127.0.0.1:1"], host="h")
        asyncio.run(destination._on_error(Exception("nats: 'Authorization Violation'")))
        asyncio.run(destination._on_error(ConnectionResetError(104, "Connection reset by peer")))
        assert _classify(TimeoutError(), destination._said) == "credentials"
        assert "Connection reset" in destination._said
