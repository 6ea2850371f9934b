"""A real rsyslogd (Debian's) run unprivileged, for the syslog forwarding tests.

It runs in the foreground (``-n -f CONF -i PIDFILE``) with its work
directory in the test's tmp_path, and only the inputs a test asks for:
imtcp and imudp on one free 127.0.0.1 port, optionally imtcp over TLS
(RFC 5425, rsyslog's gtls driver) on another; no imuxsock, no imklog, so it
touches nothing of the machine's own logging.  Every message is written to
``messages.jsonl`` through a template of rsyslog's OWN parsed properties
(``app``, ``severity``, ``sd``, ``msg``, ``hostname``, ``ts``, ``msgid``,
``procid``, ``protocol``), so a test checks what rsyslog understood, not
what was sent.  rsyslog's defaults are kept, so what a test sees is what an
ordinary rsyslog does: a newline inside a message arrives escaped as
``#012``, and the BOM stays at the start of ``msg`` (rsyslog/rsyslog#284).

``extra_config`` is appended to the configuration: issue 21 adds an
``omfwd`` action there to make rsyslog a sender into netlog.

A stopped instance starts again on the same ports and keeps its file, which
is what the restart tests need.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

RSYSLOGD = "/usr/sbin/rsyslogd"
HOST = "127.0.0.1"
STARTUP_LIMIT = 20.0
#: rsyslog's default (8 KiB) would cut long tracebacks before the test sees them.
MAX_MESSAGE_SIZE = "256k"
#: The app-name of start-up probes: filtered into their own file.
PROBE_APP = "rsyslogd-probe"

_TEMPLATE = """
template(name="props" type="list" option.jsonf="on") {
  property(outname="app" name="app-name" format="jsonf")
  property(outname="severity" name="syslogseverity-text" format="jsonf")
  property(outname="facility" name="syslogfacility-text" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="ts" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="protocol" name="protocol-version" format="jsonf")
  property(outname="input" name="inputname" format="jsonf")
}
"""


def rsyslogd_available() -> bool:
    """Whether Debian's rsyslogd is installed here."""
    return Path(RSYSLOGD).exists() or shutil.which("rsyslogd") is not None


def free_port() -> int:
    """A 127.0.0.1 port free for both TCP and UDP right now."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind((HOST, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise AssertionError("no port free for both TCP and UDP")


class Rsyslogd:
    """One rsyslogd process; :meth:`start`, :meth:`stop` (SIGTERM), :meth:`kill` (-9)."""

    def __init__(
        self,
        workdir: Path,
        *,
        tls: tuple[Path, Path] | None = None,
        extra_config: str = "",
    ) -> None:
        """``tls``: (certificate, key) files for a TLS input on :attr:`tls_port`."""
        self.workdir = workdir
        self.port = free_port()
        self.tls = tls
        self.tls_port = free_port() if tls else None
        self.output = workdir / "messages.jsonl"
        self.probes = workdir / "probes.jsonl"
        self.config = workdir / "rsyslog.conf"
        self.pidfile = workdir / "rsyslogd.pid"
        self.log = workdir / "rsyslogd.log"
        self.extra_config = extra_config
        self.process: subprocess.Popen[bytes] | None = None
        self._probe = 0

    def _configuration(self) -> str:
        spool = self.workdir / "spool"
        spool.mkdir(exist_ok=True)
        lines = [
            f'global(workDirectory="{spool}" maxMessageSize="{MAX_MESSAGE_SIZE}")',
            'module(load="imudp")',
            f'input(type="imudp" address="{HOST}" port="{self.port}" name="udp")',
        ]
        if self.tls is None:
            lines += [
                'module(load="imtcp")',
                f'input(type="imtcp" address="{HOST}" port="{self.port}" name="tcp")',
            ]
        else:
            cert, key = self.tls
            lines += [
                'module(load="imtcp")',
                f'input(type="imtcp" address="{HOST}" port="{self.port}" name="tcp")',
                (
                    f'input(type="imtcp" address="{HOST}" port="{self.tls_port}" name="tls"'
                    ' streamDriver.name="gtls" streamDriver.mode="1"'
                    ' streamDriver.authMode="anon"'
                    f' streamDriver.certFile="{cert}" streamDriver.keyFile="{key}")'
                ),
            ]
        lines += [
            _TEMPLATE,
            f'if $app-name == "{PROBE_APP}" then {{',
            f'  action(type="omfile" file="{self.probes}" template="props")',
            "  stop",
            "}",
            f'action(type="omfile" file="{self.output}" template="props")',
            self.extra_config,
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> Self:
        """Start (or start again, same ports) and wait until TCP and UDP both take messages."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self._configuration())
        self.pidfile.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [RSYSLOGD, "-n", "-f", str(self.config), "-i", str(self.pidfile)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self) -> None:
        """Ready when a probe sent over UDP and one sent over TCP are in the probe file."""
        deadline = time.monotonic() + STARTUP_LIMIT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"rsyslogd exited {self.process.returncode}: {self._log()}")
            self._probe += 1
            tag = f"probe-{self._probe}"
            message = f"<14>1 - - {PROBE_APP} - - - {tag}".encode()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.sendto(message, (HOST, self.port))
            with (
                contextlib.suppress(OSError),
                socket.create_connection((HOST, self.port), 1) as tcp,
            ):
                tcp.sendall(b"%d %b" % (len(message), message))
            time.sleep(0.2)
            inputs = {m["input"] for m in _read(self.probes) if m["msg"] == tag}
            if {"udp", "tcp"} <= inputs:
                return
        raise AssertionError(f"rsyslogd not ready after {STARTUP_LIMIT}s: {self._log()}")

    def _log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM and wait: rsyslog closes its connections and writes what it has queued."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise

    def kill(self) -> None:
        """SIGKILL: what it had not written is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=10)

    def messages(self) -> list[dict[str, str]]:
        """Every message rsyslog has written so far, as its parsed properties."""
        return _read(self.output)

    def wait_messages(self, count: int, timeout: float = 20.0) -> list[dict[str, str]]:
        """Poll until at least ``count`` messages are written (fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages()
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


def _read(path: Path) -> list[dict[str, str]]:
    """The complete lines of an rsyslog output file, as JSON objects."""
    if not path.exists():
        return []
    data = path.read_bytes()
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines()]
