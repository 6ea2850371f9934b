"""Settings: defaults, environment, flags, bad values, and the README's options table.

Options are parsed by the ``netlog`` command's own parser (``netlog.cli.main``).
"""

import dataclasses
import os
import re
from pathlib import Path

import pytest

from netlog.cli.main import parse_args
from netlog.cli.serve import settings_from_namespace
from netlog.settings import (
    CONSOLE_MODES,
    OPTIONS,
    SOURCE_MODES,
    OptionError,
    Settings,
    env_name,
    options_table,
    parse_size,
)

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN, END = "<!-- options:begin -->\n", "<!-- options:end -->"


def parse_serve_args(argv, environ):
    """``netlog serve ARGV`` with ``environ`` as the environment, as the command parses it."""
    namespace = parse_args(["serve", *argv], environ)
    assert namespace.command == "serve"
    return settings_from_namespace(namespace)


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
            "NETLOG_CONSOLE_SRC": "off",
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
            console_src="off",
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
            ["--console-src", "long"],
            ["--host", ""],
            ["--max-bytes", "10XB"],
            ["--max-bytes", "-5MB"],
            ["--max-bytes", "0"],
            ["--max-bytes", "ten megabytes"],
            ["--max-frame", "1e6"],
            ["--max-line", "9999999T"],
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


class TestSizes:
    """Byte options take sizes as people write them, and say which units they take."""

    @pytest.mark.parametrize(
        ("text", "size"),
        [
            ("4096", 4096),
            ("10MB", 10_000_000),
            ("10mb", 10_000_000),
            ("512KiB", 512 * 1024),
            ("512kib", 512 * 1024),
            ("1G", 1 << 30),
            ("1GB", 10**9),
            ("2T", 2 << 40),
            ("10M", 10 << 20),
            ("100 MiB", 100 << 20),
            (" 1.5G ", 3 << 29),
            (".5K", 512),
            ("100B", 100),
        ],
    )
    def test_units(self, text, size):
        assert parse_size(text) == size

    @pytest.mark.parametrize(
        "text", ["", "MB", "10XB", "-1", "1e6", "10 M B", "1,000", "0x10", "\u0661\u0660MB"]
    )
    def test_nonsense(self, text):
        with pytest.raises(OptionError, match=r"is not a size .*KB MB GB.*1000.*KiB MiB.*1024"):
            parse_size(text)

    def test_every_byte_option_takes_units(self):
        s = parse_serve_args(
            ["--max-bytes", "10MB", "--max-frame", "512KiB"], environ={"NETLOG_MAX_LINE": "1G"}
        )
        assert (s.max_bytes, s.max_frame, s.max_line) == (10_000_000, 512 * 1024, 1 << 30)

    def test_help_says_which_units(self, capsys):
        with pytest.raises(SystemExit):
            parse_args(["serve", "--help"], {})
        out = " ".join(capsys.readouterr().out.split())
        assert "KB MB GB TB (powers of 1000)" in out
        assert "K M G T or KiB MiB GiB TiB (of 1024)" in out

    def test_nonsense_is_one_line_naming_the_units(self, capsys):
        with pytest.raises(SystemExit) as exit_info:
            parse_serve_args(["--max-bytes", "10XB"], environ={})
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "--max-bytes" in err
        assert "'10XB' is not a size" in err
        assert "KiB" in err


class TestOneTable:
    """The Settings fields are the options: parser, environment and README follow them."""

    def test_every_field_is_an_option(self):
        names = [f.name for f in dataclasses.fields(Settings)]
        assert [o.name for o in OPTIONS] == names
        for option in OPTIONS:
            assert option.flag == "--" + option.name.replace("_", "-")
            assert option.env == env_name(option.flag)
            assert option.default == getattr(Settings(), option.name)

    def test_every_option_parses_from_flag_and_environment(self):
        """Each option's own default, given as text, round-trips through both sources."""
        for option in OPTIONS:
            if option.default is None:
                continue
            text = str(option.default)
            by_flag = parse_serve_args([option.flag, text], environ={})
            by_env = parse_serve_args([], environ={option.env: text})
            assert getattr(by_flag, option.name) == option.default
            assert getattr(by_env, option.name) == option.default

    def test_help_names_every_option_and_variable(self, capsys):
        with pytest.raises(SystemExit) as exit_info:
            parse_args(["serve", "--help"], {})
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        for option in OPTIONS:
            assert option.flag in out
            assert option.env in re.sub(r"\s+", "", out)

    def test_console_modes(self):
        assert CONSOLE_MODES == ("pretty", "json", "off")
        for mode in CONSOLE_MODES:
            assert parse_serve_args(["--console", mode.upper()], environ={}).console == mode

    def test_console_source_modes(self):
        assert SOURCE_MODES == ("short", "full", "off")
        assert Settings().console_src == "short"
        for mode in SOURCE_MODES:
            by_flag = parse_serve_args(["--console-src", mode.upper()], environ={})
            by_env = parse_serve_args([], environ={"NETLOG_CONSOLE_SRC": mode})
            assert by_flag.console_src == by_env.console_src == mode

    def test_readme_table_is_generated(self):
        """The README's table between the markers is options_table()'s output."""
        text = README.read_text(encoding="utf-8")
        assert text.count(BEGIN) == 1, f"README.md needs one {BEGIN.strip()} line"
        head, rest = text.split(BEGIN)
        current, tail = rest.split(END, 1)
        expected = options_table()
        if current != expected and os.environ.get("UPDATE_README") == "1":
            README.write_text(head + BEGIN + expected + END + tail, encoding="utf-8")
            current = expected
        assert current == expected, (
            "README.md's options table differs from netlog/settings.py; regenerate it with "
            "UPDATE_README=1 .venv/bin/pytest -q -p no:cacheprovider "
            "tests/unit/test_settings.py -k readme"
        )
