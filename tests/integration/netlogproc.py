"""A real ``netlog serve`` process on ephemeral ports, for integration tests."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from netlog.settings import PORT_FLAGS

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
#: The variables by which coverage measures a process it did not start itself.
COVERAGE_VARIABLES = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class NetlogProcess:
    """One running server; ``ports`` comes from its ready file."""

    proc: subprocess.Popen
    workdir: Path
    log_dir: Path
    ports: dict[str, int]
    stdout_path: Path
    stderr_path: Path
    extra_args: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def address(self, name: str) -> tuple[str, int]:
        return (HOST, self.ports[name])

    def records(self) -> list[dict]:
        """The records on disk; while the server runs, not a last line it is still writing."""
        path = self.log_dir / "records.jsonl"
        if not path.exists():
            return []
        data = path.read_bytes()
        if self.proc.poll() is None:
            # A read can see part of a write in progress: the complete lines
            # are the records written so far.  Once the server has exited,
            # a torn last line is a finding, and json.loads says so.
            data = data[: data.rfind(b"\n") + 1]
        return [json.loads(line) for line in data.splitlines()]

    def wait_records(self, count: int, timeout: float = 15.0) -> list[dict]:
        def enough():
            records = self.records()
            return records if len(records) >= count else None

        return wait_for(enough, timeout, what=f"{count} records on disk")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def worker_pids(self) -> dict[int, int]:
        """The server's worker processes (``--workers N``): their pid by worker number."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        pids = {}
        for child in map(int, children):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if b"servers.worker" in cmdline:
                pids[int(cmdline[cmdline.index(b"servers.worker") + 2])] = child
        return pids

    def send_signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def finish(self, timeout: float = 10.0) -> None:
        """End a test's server: SIGTERM, then SIGKILL if it has not exited in ``timeout``.

        Stopped cleanly, a server measured by coverage (pyproject.toml's
        ``patch = ["subprocess", "_exit"]``) saves what it ran; killed, it
        saves nothing.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self.kill()


def server_environment(extra: dict[str, str] | None = None, *, measured: bool = True):
    """The environment of a started server: ours, unbuffered, plus ``extra``.

    Unless ``measured``, without the variables that make coverage measure a
    subprocess (pyproject.toml's ``patch = ["subprocess"]`` sets them for
    every process the tests start): for a test that times the server under
    load, which tracing every call would slow several times over.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra or {})}
    if not measured:
        for name in COVERAGE_VARIABLES:
            env.pop(name, None)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "servers", *args]


def http_get(server, path, params=None, timeout=10.0):
    """``GET path?params`` on ``server``'s HTTP port -> (status, body as JSON or text)."""
    if params:
        path += "?" + urllib.parse.urlencode(params)
    conn = http.client.HTTPConnection(HOST, server.ports["http"], timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.getheader("Content-Type", "").startswith("application/json"):
            return response.status, json.loads(body)
        return response.status, body.decode()
    finally:
        conn.close()


def wait_ready(proc, ready: Path, stderr_path: Path, timeout: float, *, name: str) -> dict:
    """The ports in ``ready`` once ``proc`` writes it; an early exit fails with its stderr.

    A process that never gets ready is killed and reaped, so a failed start
    leaves nothing running.
    """

    def ready_ports():
        if proc.poll() is not None:
            raise AssertionError(
                f"{name} exited {proc.returncode} during start: {stderr_path.read_text()}"
            )
        try:
            return json.loads(ready.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    try:
        return wait_for(ready_ports, timeout, what=f"{name}'s ready file")
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        raise


def start(
    workdir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 20.0,
    measured: bool = True,
    workers: int = 1,
):
    """Start ``python -m servers`` with every port ephemeral unless ``args`` says otherwise.

    ``measured=False``: the server runs without coverage (:func:`server_environment`).
    ``workers`` above 1 adds ``--workers N`` unless ``args`` or ``env`` name it.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    log_dir = workdir / "data"
    ready = workdir / "ready.json"
    ready.unlink(missing_ok=True)
    defaults = {
        "--host": HOST,
        "--echo-port": "0",
        "--responder-port": "0",
        "--log-tcp-port": "0",
        "--log-udp-port": "0",
        **dict.fromkeys(PORT_FLAGS, "0"),
        "--log-dir": str(log_dir),
        "--console": "off",
        "--flush-interval": "0.05",
        "--ready-file": str(ready),
    }
    if workers > 1:
        defaults["--workers"] = str(workers)
    # An option given on the command line or in ``env`` is left to them.
    given = set(args) | {"--" + k[7:].lower().replace("_", "-") for k in (env or {})}
    argv = [item for key, value in defaults.items() if key not in given for item in (key, value)]
    argv += list(args)
    stdout_path = workdir / "stdout.txt"
    stderr_path = workdir / "stderr.txt"
    full_env = server_environment(env, measured=measured)
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            command(*argv), cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=full_env
        )
    ports = wait_ready(proc, ready, stderr_path, timeout, name="netlog")
    return NetlogProcess(proc, workdir, log_dir, ports, stdout_path, stderr_path, list(args))
