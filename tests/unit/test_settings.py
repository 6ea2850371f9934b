"""Settings: defaults, environment, flags, and bad values."""

from pathlib import Path

import pytest

from netlog.settings import Settings, env_name, parse_serve_args


class TestPrecedence:
    """Command line beats environment beats default."""

    def test_defaults_match_the_design(self):
        s = parse_serve_args([], environ={})
        assert s == Settings()
        assert (s.echo_port, s.responder_port) == (7007, 7007)
        assert (s.log_tcp_port, s.log_udp_port, s.http_port) == (9020, 9021, 9022)
        assert s.log_dir == Path("./netlog-data")
        assert s.max_frame == s.max_line == 1 << 20
        assert s.idle_timeout == 300
        assert s.max_connections == 1000
        assert s.responder_rate == 1000

    def test_environment_overrides_default(self):
        s = parse_serve_args([], environ={"NETLOG_ECHO_PORT": "0", "NETLOG_GRACE": "2.5"})
        assert s.echo_port == 0
        assert s.grace == 2.5

    def test_flag_overrides_environment(self):
        s = parse_serve_args(["--echo-port", "-1"], environ={"NETLOG_ECHO_PORT": "0"})
        assert s.echo_port == -1

    def test_every_option_has_an_environment_variable(self):
        environ = {
            "NETLOG_HOST": "127.0.0.1",
            "NETLOG_LOG_DIR": "/tmp/x",
            "NETLOG_CONSOLE": "json",
            "NETLOG_READY_FILE": "/tmp/ready",
            "NETLOG_IDLE_TIMEOUT": "9",
            "NETLOG_MAX_CONNECTIONS": "7",
            "NETLOG_MAX_FRAME": "100",
            "NETLOG_MAX_LINE": "200",
            "NETLOG_RESPONDER_RATE": "0",
            "NETLOG_FLUSH_INTERVAL": "0.5",
            "NETLOG_MAX_BYTES": "1000",
            "NETLOG_BACKUPS": "0",
            "NETLOG_LOG_TCP_PORT": "1",
            "NETLOG_LOG_UDP_PORT": "2",
            "NETLOG_HTTP_PORT": "3",
            "NETLOG_RESPONDER_PORT": "4",
        }
        s = parse_serve_args([], environ=environ)
        assert s == Settings(
            host="127.0.0.1",
            log_dir=Path("/tmp/x"),
            console="json",
            ready_file=Path("/tmp/ready"),
            idle_timeout=9,
            max_connections=7,
            max_frame=100,
            max_line=200,
            responder_rate=0,
            flush_interval=0.5,
            max_bytes=1000,
            backups=0,
            log_tcp_port=1,
            log_udp_port=2,
            http_port=3,
            responder_port=4,
        )

    def test_env_name(self):
        assert env_name("--log-tcp-port") == "NETLOG_LOG_TCP_PORT"

    def test_settings_are_frozen(self):
        with pytest.raises(AttributeError):
            Settings().echo_port = 1  # type: ignore[misc]


class TestBadValues:
    """A bad value from either source exits 2 with one line naming it."""

    @pytest.mark.parametrize(
        "argv",
        [
            ["--echo-port", "x"],
            ["--echo-port", "65536"],
            ["--echo-port", "-2"],
            ["--grace", "-1"],
            ["--grace", "nan"],
            ["--flush-interval", "0"],
            ["--backups", "-1"],
            ["--console", "rainbow"],
            ["--host", ""],
        ],
    )
    def test_flag(self, argv, capsys):
        with pytest.raises(SystemExit) as exit_info:
            parse_serve_args(argv, environ={})
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
        assert argv[0] in err

    def test_environment(self, capsys):
        with pytest.raises(SystemExit) as exit_info:
            parse_serve_args([], environ={"NETLOG_MAX_FRAME": "big"})
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "NETLOG_MAX_FRAME" in err
        assert len(err.strip().splitlines()) == 1
