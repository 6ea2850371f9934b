"""The command line from outside: bad input, ready file, signals."""

import inspect
import json
import logging
import logging.handlers
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from netlog.settings import PORT_FLAGS
from netlogproc import ROOT, command, wait_for


def run_cli(*args, env=None, timeout=30):
    return subprocess.run(
        command(*args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def ephemeral(log_dir, *overrides: str) -> list[str]:
    """Every listener on an ephemeral 127.0.0.1 port, then ``overrides``."""
    args = ["--host", "127.0.0.1", "--log-dir", str(log_dir)]
    for option in PORT_FLAGS:
        args += [option, "0"]
    return [*args, *overrides]


def catches_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def assert_one_line_error(done, *words):
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0]


class TestBadCommandLine:
    """Every bad command line: one line on stderr, exit 2, no traceback."""

    @pytest.mark.parametrize(
        ("args", "words"),
        [
            (["--echo-port", "abc"], ["--echo-port", "abc"]),
            (["--log-tcp-port", "70000"], ["--log-tcp-port", "70000"]),
            (["--responder-port", "-2"], ["--responder-port"]),
            (["--grace", "soon"], ["--grace"]),
            (["--console", "loud"], ["--console", "loud"]),
            (["--max-connections", "0"], ["--max-connections"]),
            (["--max-bytes", "10XB"], ["--max-bytes", "'10XB' is not a size", "KiB", "1024"]),
            (["--max-frame", "0KiB"], ["--max-frame", "at least 1 byte"]),
            (["--console-src", "long"], ["--console-src", "long"]),
            (["--no-such-option"], ["--no-such-option"]),
        ],
    )
    def test_bad_option(self, args, words):
        assert_one_line_error(run_cli(*args), *words)

    def test_bad_environment_variable_is_named(self):
        done = run_cli(env={"NETLOG_ECHO_PORT": "seven"})
        assert_one_line_error(done, "NETLOG_ECHO_PORT", "seven")

    def test_port_in_use(self, tmp_path):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            done = run_cli(*ephemeral(tmp_path / "d", "--echo-port", str(port)))
        assert_one_line_error(done, str(port), "in use")

    def test_unwritable_log_dir(self, tmp_path):
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        done = run_cli(
            *ephemeral(str(blocker / "logs")),
        )
        assert_one_line_error(done, "log dir", str(blocker / "logs"))


def charge_card(handler):
    """Log one record from a known line, as an application would; that line."""
    logger = logging.getLogger("billing")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    line = inspect.currentframe().f_lineno + 1
    logger.warning("charged", extra={"amount": 12.5, "tags": ["a", "b"], "card": {"last4": "42"}})
    handler.close()
    logger.handlers[:] = []
    return line


class TestConsole:
    """serve's pretty console: the user's fields first, where the record was made after them."""

    def test_source_is_short_and_after_the_fields(self, netlog_factory):
        server = netlog_factory("--console", "pretty")
        line = charge_card(logging.handlers.SocketHandler(*server.address("log_tcp")))
        server.wait_records(1)
        assert server.stop() == 0
        out = server.stdout()
        assert "charged" in out
        assert "_src" not in out
        assert "{'" not in out
        expected = (
            f'amount=12.5 tags=["a","b"] card={{"last4":"42"}} test_cli.py:{line} in charge_card'
        )
        assert expected in out

    @pytest.mark.parametrize(("mode", "shown"), [("off", None), ("full", "/test_cli.py:")])
    def test_source_option(self, netlog_factory, mode, shown):
        server = netlog_factory("--console", "pretty", "--console-src", mode)
        charge_card(logging.handlers.SocketHandler(*server.address("log_tcp")))
        server.wait_records(1)
        assert server.stop() == 0
        out = server.stdout()
        assert "charged" in out
        if shown is None:
            assert "charge_card" not in out
        else:
            assert f"{ROOT}/tests/integration{shown}" in out
            assert "in charge_card, thread MainThread, pid " in out


class TestSizes:
    """Byte options take the units people write."""

    def test_max_bytes_with_a_unit_rotates_there(self, netlog_factory):
        server = netlog_factory("--max-bytes", "2KiB", "--backups", "100")
        with socket.create_connection(server.address("log_tcp"), timeout=10) as sock:
            sock.sendall(
                b"".join(
                    b'{"event": "record %d", "pad": "%s"}\n' % (i, b"x" * 100) for i in range(60)
                )
            )
        server.wait_records(1)
        wait_for(
            lambda: len(list(server.log_dir.glob("records.jsonl.*"))) >= 2, 15, what="rotation"
        )
        assert server.stop() == 0
        rotated = list(server.log_dir.glob("records.jsonl.*"))
        assert all(1024 < path.stat().st_size <= 2048 for path in rotated), [
            path.stat().st_size for path in rotated
        ]


class TestReadyFile:
    """The ready file names every bound port, and only enabled listeners."""

    def test_ports_are_real_and_disabled_listeners_absent(self, netlog_factory):
        server = netlog_factory("--responder-port", "-1")
        assert server.ports["pid"] == server.pid
        assert "responder" not in server.ports
        for name in ("echo", "log_tcp"):
            with socket.create_connection(server.address(name), timeout=5):
                pass

    def test_environment_sets_options_and_flags_win(self, netlog_factory):
        server = netlog_factory(
            "--echo-port", "-1", env={"NETLOG_ECHO_PORT": "0", "NETLOG_RESPONDER_PORT": "-1"}
        )
        assert "echo" not in server.ports  # flag beat the environment
        assert "responder" not in server.ports  # environment beat the default


class TestSignals:
    """SIGTERM and SIGINT stop the server cleanly, exit 0, no traceback."""

    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
    def test_signal_exits_zero_with_summary(self, netlog, signum):
        started = time.monotonic()
        assert netlog.stop(signum, timeout=20) == 0
        assert time.monotonic() - started < 10
        err = netlog.stderr()
        assert "Traceback" not in err
        assert "records written" in err

    def test_open_echo_connection_does_not_block_shutdown(self, netlog):
        with socket.create_connection(netlog.address("echo"), timeout=10) as sock:
            sock.sendall(b"x")
            assert netlog.stop(timeout=20) == 0

    def test_signal_during_start_up_exits_cleanly(self, tmp_path):
        ready = tmp_path / "ready.json"
        proc = subprocess.Popen(
            command(
                *ephemeral(str(tmp_path / "d")),
                "--ready-file",
                str(ready),
            ),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        # Signal as soon as the process catches SIGTERM, before it is ready:
        # the imports and binding are still ahead of it.
        wait_for(lambda: catches_sigterm(proc.pid), 20, interval=0.001, what="SIGTERM caught")
        assert not ready.exists()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert b"Traceback" not in err


class TestEntryPoints:
    """`netlog serve` and `python -m servers` are the same command."""

    def test_console_script_serves(self, tmp_path):
        script = Path(sys.executable).with_name("netlog")
        if not script.exists():
            pytest.skip("the netlog console script is not installed in this environment")
        ready = tmp_path / "ready.json"
        proc = subprocess.Popen(
            [
                str(script),
                "serve",
                "--host",
                "127.0.0.1",
                *[arg for flag in PORT_FLAGS for arg in (flag, "-1")],
                "--echo-port",
                "0",
                "--ready-file",
                str(ready),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        try:
            ports = wait_for(lambda: ready.exists() and json.loads(ready.read_text()), 20)
            with socket.create_connection(("127.0.0.1", ports["echo"]), timeout=5) as sock:
                sock.sendall(b"hi")
                assert sock.recv(2) == b"hi"
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=20)
        assert proc.returncode == 0


class TestHelp:
    """Every command's --help works from outside and names its options."""

    @pytest.mark.parametrize(
        ("cmd", "words"),
        [
            (["serve"], ["--log-tcp-port", "NETLOG_LOG_TCP_PORT", "--ready-file"]),
            (["send"], ["--address", "NETLOG_ADDRESS", "127.0.0.1:9020", "--timeout"]),
            (["probe"], ["--retries", "127.0.0.1:7007"]),
            (["tail"], ["--follow", "NETLOG_LOG_DIR"]),
        ],
    )
    def test_help(self, cmd, words):
        done = subprocess.run(
            [sys.executable, "-m", "netlog.cli", *cmd, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"usage: netlog {cmd[0]} ")
        for word in words:
            assert word in done.stdout

    @pytest.mark.parametrize("flag", ["--version", "-V"])
    def test_version(self, flag):
        """`netlog --version` prints the installed version, needing no COMMAND."""
        done = subprocess.run(
            [sys.executable, "-m", "netlog.cli", flag],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
        assert (done.returncode, done.stdout, done.stderr) == (0, f"netlog {version}\n", "")

    def test_python_m_servers_is_serve(self):
        done = run_cli("--help")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("usage: netlog serve ")
