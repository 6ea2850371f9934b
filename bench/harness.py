"""Run netlog and its anchors on the same workloads, in the same run, and report.

Called by ``bench/run`` (which installs and builds first); see the "How to
run" part of BENCHMARKS.md.  Every server runs pinned to core 0 and every
client to core 1 (``taskset``).  Each workload runs its servers in turn,
A B C A B C..., a fresh process per trial, and the table shows medians and
the ratio netlog / anchor.

Nothing here leaves 127.0.0.1, and every client is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BUILD = BENCH / "build"
ANCHORS = BENCH / "anchors"
NETLOG_PYTHON = ROOT / ".venv" / "bin" / "python"
BENCH_VENV_PYTHON = BUILD / "venv" / "bin" / "python"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
BEGIN_MARK = "<!-- BEGIN bench/run OUTPUT: generated, do not edit by hand -->"
END_MARK = "<!-- END bench/run OUTPUT -->"

_PORT_FLAGS: dict[Path, list[str]] = {}


def every_port(tree: Path, value: str) -> list[str]:
    """``--X-port value`` for every listener the netlog in ``tree`` has.

    Asked of that tree's own ``--help``, so an older checkout compared by
    ``bench/ab.py`` gets only the flags it knows, and a newer one binds no
    default port whatever listeners it gained.
    """
    if tree not in _PORT_FLAGS:
        shown = subprocess.run(
            [str(NETLOG_PYTHON), "-m", "servers", "--help"],
            cwd=tree,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        _PORT_FLAGS[tree] = sorted(set(re.findall(r"(--[a-z-]+-port)\b", shown)))
    return [arg for flag in _PORT_FLAGS[tree] for arg in (flag, value)]


def _cores() -> tuple[str, str]:
    """The server's core and the client's: the first two this process may use."""
    allowed = sorted(os.sched_getaffinity(0))
    return str(allowed[0]), str(allowed[1] if len(allowed) > 1 else allowed[0])


SERVER_CORE, CLIENT_CORE = _cores()
#: ``--workers N`` for netlog (``bench/workers.py`` sets it per trial; ``--workers``
#: here for a whole run).  Above 1, netlog may use every core (no pinning).
NETLOG_WORKERS = 1
#: Pin clients to the client core (``bench/workers.py`` lets the scheduler place
#: them when the server needs both cores).
PIN_CLIENTS = True
HOST = "127.0.0.1"
#: netlog writes to disk every --flush-interval seconds (1 s by default); the
#: ingest workloads wait for the lines on disk, so a 1 s quantum would
#: dominate a run of a few seconds.  0.1 s keeps that error small.
NETLOG_INGEST_FLUSH = "0.1"

LABELS = {
    "netlog": "netlog",
    "uvloop": "uvloop",
    "asyncio": "asyncio",
    "go": "Go",
    "epoll": "C epoll",
    "cookbook": "cookbook receiver",
    "minimal": "minimal receiver (UNSAFE pickle.loads)",
    "rsyslog": "rsyslog",
}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def bench_python() -> Path:
    """The interpreter for the Python anchors and the ingest driver."""
    return BENCH_VENV_PYTHON if BENCH_VENV_PYTHON.exists() else NETLOG_PYTHON


def has_uvloop() -> bool:
    probe = subprocess.run(
        [str(bench_python()), "-c", "import uvloop"], capture_output=True, check=False
    )
    return probe.returncode == 0


# -- servers -------------------------------------------------------------------


@dataclass
class Running:
    """A started server: its process, bound ports and where it writes."""

    name: str
    proc: subprocess.Popen[bytes]
    pid: int
    ports: dict[str, int]
    workdir: Path
    command: list[str]
    out: Path | None = None
    stopped_in: float | None = None
    stderr_text: str = ""

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process (all threads) and its live children so far.

        The children are ``--workers``' worker processes (and a forwarder).
        """
        total = _process_cpu(self.pid)
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            children = []
        for child in children:
            used = _process_cpu(int(child))
            if used == used:  # a child that just exited is nan: not counted
                total += used
        return total

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads), nan once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class ServerError(Exception):
    """A server did not start."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_ready(proc: subprocess.Popen[bytes], ready: Path, timeout: float = 30.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            with contextlib.suppress(ValueError):
                return dict(json.loads(ready.read_text()))
        if proc.poll() is not None:
            raise ServerError(f"exited with status {proc.returncode} before it was ready")
        time.sleep(0.02)
    raise ServerError("not ready in time")


def last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return lines[-1][-300:] if lines else ""


def wait_port(proc: subprocess.Popen[bytes], port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"exited with status {proc.returncode} before it was ready")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.02)
    raise ServerError("not listening in time")


def start_server(
    name: str,
    workdir: Path,
    netlog_args: tuple[str, ...] = (),
    *,
    tree: Path = ROOT,
    pinned: bool = True,
) -> Running:
    """Start one server and wait until it listens.

    Pinned to the server core unless ``pinned`` is false (``bench/soak.py``
    runs its senders in the same process and lets the scheduler place both).
    netlog runs from ``tree``: ``python -m servers`` imports the tree's own
    code first, so ``bench/ab.py`` can run another checkout with the same venv.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / "ready.json"
    pin = ["taskset", "-c", SERVER_CORE] if pinned else []
    out: Path | None = None
    cwd = ROOT
    if name == "netlog":
        if NETLOG_WORKERS > 1:
            pin = []
            netlog_args = ("--workers", str(NETLOG_WORKERS), *netlog_args)
        cwd = tree
        logs = workdir / "logs"
        out = logs / "records.jsonl"
        command = [
            *pin, str(NETLOG_PYTHON), "-m", "servers", "--host", HOST,
            *every_port(tree, "0"), "--http-port", "-1", "--log-dir", str(logs),
            "--console", "off", "--ready-file", str(ready), "--responder-rate", "0",
            *netlog_args,
        ]  # fmt: skip
    elif name in {"asyncio", "uvloop"}:
        command = [
            *pin, str(bench_python()), str(ANCHORS / "echo_asyncio.py"),
            "--loop", name, "--host", HOST, "--ready-file", str(ready),
        ]  # fmt: skip
    elif name == "go":
        command = [*pin, str(BUILD / "echo_go"), "-host", HOST, "-ready", str(ready)]
    elif name == "epoll":
        command = [*pin, str(BUILD / "echo_epoll"), HOST, "0", "0", str(ready)]
    elif name == "cookbook":
        out = workdir / "records.jsonl"
        command = [
            *pin, str(bench_python()), str(ANCHORS / "cookbook_receiver.py"),
            "--host", HOST, "--port", "0", "--out", str(out), "--ready-file", str(ready),
        ]  # fmt: skip
    elif name == "minimal":
        # UNSAFE anchor (pickle.loads on the wire): a speed limit, loopback only.
        # The project venv's interpreter, because it needs orjson.
        out = workdir / "records.jsonl"
        command = [
            *pin, str(NETLOG_PYTHON), str(ANCHORS / "minimal_unsafe_receiver.py"),
            "--host", HOST, "--port", "0", "--out", str(out), "--ready-file", str(ready),
        ]  # fmt: skip
    elif name == "rsyslog":
        out = workdir / "records.jsonl"
        port = free_port()
        conf = workdir / "rsyslog.conf"
        text = (ANCHORS / "rsyslog.conf").read_text()
        for key, value in {"@WORKDIR@": workdir, "@PORT@": port, "@OUTFILE@": out}.items():
            text = text.replace(key, str(value))
        conf.write_text(text)
        rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        command = [*pin, rsyslogd, "-n", "-f", str(conf), "-i", str(workdir / "rsyslogd.pid")]
        cwd = workdir
    else:
        raise ValueError(name)
    stderr = (workdir / "stderr.txt").open("wb")
    proc = subprocess.Popen(
        command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
    )
    stderr.close()
    try:
        if name == "rsyslog":
            wait_port(proc, port)
            ports = {"pid": proc.pid, "log_tcp": port}
        else:
            ports = wait_ready(proc, ready)
    except ServerError as exc:
        stop_server_proc(proc)
        raise ServerError(f"{exc}: {last_line(workdir / 'stderr.txt')}") from None
    return Running(name, proc, proc.pid, ports, workdir, command, out)


def stop_server_proc(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_server(server: Running, timeout: float = 30.0) -> None:
    started = time.monotonic()
    stop_server_proc(server.proc, timeout)
    server.stopped_in = time.monotonic() - started
    server.stderr_text = (server.workdir / "stderr.txt").read_text(errors="replace")


@contextlib.contextmanager
def serving(
    name: str, workdir: Path, netlog_args: tuple[str, ...] = (), *, tree: Path = ROOT
) -> Iterator[Running]:
    server = start_server(name, workdir, netlog_args, tree=tree)
    try:
        yield server
    finally:
        stop_server(server)


# -- clients -------------------------------------------------------------------


def core_busy(core: str) -> float:
    """Seconds core ``core`` has spent not idle since boot (all processes, irqs)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            ticks = [int(x) for x in line.split()[1:]]
            busy = sum(ticks[:8]) - ticks[3] - ticks[4]  # minus idle and iowait
            return busy / os.sysconf("SC_CLK_TCK")
    return float("nan")


def run_client(
    command: list[str],
    timeout: float,
    server: Running | None = None,
    *,
    handshake: bool = False,
) -> dict[str, Any]:
    """Run a client pinned to the client core; its last stdout line is JSON.

    With ``server``, the result also gets ``server_share`` (the server's CPU
    as a share of its core while the client ran) and ``others_share`` (what
    the rest of the machine used of the server's core meanwhile: the machine
    is shared).  With ``handshake``, the client prints a line once it is
    ready and waits for one on stdin, so that its set-up is not measured.
    """
    full = ["taskset", "-c", CLIENT_CORE, *command] if PIN_CLIENTS else command
    proc = subprocess.Popen(
        full, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        if handshake:
            proc.stdout.readline()
        t0, cpu0, busy0 = time.monotonic(), float("nan"), float("nan")
        if server is not None:
            cpu0, busy0 = server.cpu_seconds(), core_busy(SERVER_CORE)
        if handshake:
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wall = time.monotonic() - t0
    lines = stdout.decode().strip().splitlines()
    if not lines:
        raise RuntimeError(
            f"client printed nothing (status {proc.returncode}): {stderr.decode()[-500:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    result["status"] = proc.returncode
    if server is not None and wall > 0:
        used = server.cpu_seconds() - cpu0
        result["server_share"] = used / wall
        result["others_share"] = max(0.0, core_busy(SERVER_CORE) - busy0 - used) / wall
    return result


def load(*args: object) -> list[str]:
    return [str(BUILD / "load"), *map(str, args)]


def ingest(*args: object) -> list[str]:
    return [str(bench_python()), str(BENCH / "ingest.py"), *map(str, args)]


# -- workloads -----------------------------------------------------------------


@dataclass
class Trial:
    """One measurement: a value, plus what shows whether it can be trusted."""

    value: float | None
    client_cpu: float | None = None  # fraction of one core
    server_cpu: float | None = None  # fraction of one core
    others_cpu: float | None = None  # others' use of the server's core
    note: str = ""
    server_command: list[str] = field(default_factory=list)
    client_command: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)


@dataclass
class Workload:
    """A workload: its servers (netlog first), how to measure one, and its goals."""

    key: str
    title: str
    metric: str
    higher_is_better: bool
    servers: list[str]
    measure: Callable[[str, Path, Params], Trial]
    goals: dict[str, float] = field(default_factory=dict)  # anchor -> min ratio
    absolute_goal: tuple[str, float] | None = None  # ("<", 5.0)
    description: str = ""


@dataclass
class Params:
    """Sizes and durations: full run or --quick."""

    seconds: float
    warmup: float
    stream_bytes: int
    ingest_records: int
    drain_records: int
    idle_conns: int
    timeout: float
    quiet_wait: float


FULL = Params(
    seconds=5.0,
    warmup=1.0,
    stream_bytes=1 << 30,
    ingest_records=160_000,
    drain_records=160_000,
    idle_conns=1000,
    timeout=180.0,
    quiet_wait=15.0,
)
QUICK = Params(
    seconds=0.3,
    warmup=0.1,
    stream_bytes=16 << 20,
    ingest_records=2_000,
    drain_records=2_000,
    idle_conns=50,
    timeout=30.0,
    quiet_wait=0.0,
)


def cpu_fraction(result: dict[str, Any], seconds: float) -> float | None:
    if seconds <= 0:
        return None
    return float(result["cpu_user"] + result["cpu_sys"]) / seconds


def measure_tcp(conns: int, size: int, unit: float) -> Callable[[str, Path, Params], Trial]:
    def measure(name: str, workdir: Path, p: Params) -> Trial:
        with serving(name, workdir) as server:
            command = load("tcp", HOST, server.ports["echo"], conns, size, p.seconds, p.warmup)
            result = run_client(command, p.timeout, server)
        seconds = result["seconds"]
        if result["errors"] or seconds <= 0:
            return Trial(None, note=f"client errors: {result}", server_command=server.command)
        value = result["ops"] / seconds if unit == 0 else result["bytes"] / seconds / unit
        return Trial(
            value,
            cpu_fraction(result, seconds),
            result["server_share"],
            others_cpu=result["others_share"],
            server_command=server.command,
            client_command=command,
            ports=server.ports,
        )

    return measure


def measure_stream(name: str, workdir: Path, p: Params) -> Trial:
    with serving(name, workdir) as server:
        command = load("stream", HOST, server.ports["echo"], p.stream_bytes, 65536, p.timeout)
        result = run_client(command, p.timeout + 10, server)
    seconds = result["seconds"]
    if result["errors"] or not result["ops"]:
        return Trial(None, note=f"client errors: {result}", server_command=server.command)
    return Trial(
        p.stream_bytes / seconds / 1e6,
        cpu_fraction(result, seconds),
        result["server_share"],
        others_cpu=result["others_share"],
        server_command=server.command,
        client_command=command,
        ports=server.ports,
    )


def measure_udp_from(sockets: int) -> Callable[[str, Path, Params], Trial]:
    """UDP probes from ``sockets`` client sockets (senders), 64 in flight on each."""
    extra = (sockets,) if sockets > 1 else ()

    def measure(name: str, workdir: Path, p: Params) -> Trial:
        with serving(name, workdir) as server:
            command = load(
                "udp", HOST, server.ports["responder"], 64, 64, p.seconds, p.warmup, *extra
            )
            result = run_client(command, p.timeout, server)
        return udp_trial(server, command, result)

    return measure


def udp_trial(server: Running, command: list[str], result: dict[str, Any]) -> Trial:
    seconds = result["seconds"]
    if seconds <= 0 or not result["ops"]:
        return Trial(None, note=f"no replies: {result}", server_command=server.command)
    note = f"lost {result['lost']}" if result["lost"] else ""
    return Trial(
        result["ops"] / seconds,
        cpu_fraction(result, seconds),
        result["server_share"],
        others_cpu=result["others_share"],
        note=note,
        server_command=server.command,
        client_command=command,
        ports=server.ports,
    )


measure_udp = measure_udp_from(1)


def measure_ingest(fmt: str) -> Callable[..., Trial]:
    def measure(name: str, workdir: Path, p: Params, *, tree: Path = ROOT) -> Trial:
        netlog_args = ("--flush-interval", NETLOG_INGEST_FLUSH)
        with serving(name, workdir, netlog_args, tree=tree) as server:
            assert server.out is not None
            command = ingest(
                "--host", HOST, "--port", server.ports["log_tcp"], "--format", fmt,
                "--records", p.ingest_records, "--senders", 8, "--out", server.out,
                "--timeout", p.timeout, "--handshake",
            )  # fmt: skip
            result = run_client(command, p.timeout + 60, server, handshake=True)
        seconds = result["seconds"]
        if result["timed_out"] or result["errors"]:
            return Trial(
                None,
                note=f"{result['lines']} of {p.ingest_records} lines, {result['errors']}",
                server_command=server.command,
                client_command=command,
                ports=server.ports,
            )
        return Trial(
            p.ingest_records / seconds,
            cpu_fraction(result, seconds),
            result["server_share"],
            others_cpu=result["others_share"],
            note=f"{result['bytes'] / p.ingest_records:.0f} B/record on the wire",
            server_command=server.command,
            client_command=command,
            ports=server.ports,
        )

    return measure


SUMMARY = re.compile(r"netlog: stopped in ([0-9.]+)s: (\d+) records written, (\d+) dropped")


def measure_drain(name: str, workdir: Path, p: Params) -> Trial:
    server = start_server(name, workdir)
    command = ingest(
        "--host", HOST, "--port", server.ports["log_tcp"], "--format", "pickle",
        "--records", p.drain_records, "--senders", 8, "--mode", "drain",
        "--pid", server.pid, "--timeout", p.timeout,
    )  # fmt: skip
    full = ["taskset", "-c", CLIENT_CORE, *command]
    client = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    exited = None
    deadline = time.monotonic() + p.timeout
    try:
        # The driver signals the server itself; wait for the server's exit,
        # giving up if the driver dies first and the server outlives it.
        client_gone: float | None = None
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.proc.wait(0.002)
                exited = time.monotonic()
                break
            if client_gone is None and client.poll() is not None:
                client_gone = time.monotonic()
            if client_gone is not None and time.monotonic() - client_gone > 30:
                break
        stdout, stderr = client.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        stop_server(server)
    try:
        result = json.loads(stdout.decode().strip().splitlines()[-1])
    except (IndexError, ValueError):
        return Trial(None, note=f"driver failed: {stderr.decode()[-300:]}")
    if exited is None or "signal_at" not in result:
        return Trial(None, note="the server did not exit after SIGTERM")
    lines = 0
    if server.out is not None and server.out.exists():
        with server.out.open("rb") as handle:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    match = SUMMARY.search(server.stderr_text)
    written = int(match.group(2)) if match else None
    seconds = exited - result["signal_at"]
    note = f"{lines} lines on disk, summary: {match.group(0) if match else 'missing'}"
    ok = server.proc.returncode == 0 and lines == p.drain_records and written == p.drain_records
    if not ok:
        note = f"LOST RECORDS or bad exit ({server.proc.returncode}): {note}"
    return Trial(
        seconds if ok else None,
        note=note,
        server_command=server.command,
        client_command=command,
        ports=server.ports,
    )


def measure_idle(name: str, workdir: Path, p: Params) -> Trial:
    with serving(name, workdir) as server:
        time.sleep(0.2)
        before = server.rss_mib()
        command = load("idle", HOST, server.ports["echo"], p.idle_conns, p.timeout)
        full = ["taskset", "-c", CLIENT_CORE, *command]
        client = subprocess.Popen(
            full, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert client.stdout is not None
        assert client.stdin is not None
        line = client.stdout.readline()
        time.sleep(0.5)  # let the server settle
        rss = server.rss_mib()
        client.stdin.close()
        try:
            client.wait(p.timeout)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait()
    try:
        result = json.loads(line)
    except ValueError:
        return Trial(None, note="idle client failed", server_command=server.command)
    if result["errors"]:
        return Trial(None, note=f"{result['errors']} connections failed")
    return Trial(
        rss,
        note=f"{before:.1f} MiB before the connections",
        server_command=server.command,
        client_command=command,
        ports=server.ports,
    )


ECHO_ANCHORS = ["uvloop", "asyncio", "go", "epoll"]

WORKLOADS = [
    Workload(
        "echo_1k",
        "TCP echo, 1 KiB messages, 100 connections",
        "req/s",
        higher_is_better=True,
        servers=["netlog", *ECHO_ANCHORS],
        measure=measure_tcp(100, 1024, 0),
        goals={"uvloop": 1.0, "go": 1.0},
        description="100 connections, each sending 1 KiB and waiting for its 1 KiB echo, "
        "in a loop; round trips per second (after a warm-up).",
    ),
    Workload(
        "echo_64k",
        "TCP echo, 64 KiB messages, 10 connections",
        "MB/s",
        higher_is_better=True,
        servers=["netlog", *ECHO_ANCHORS],
        measure=measure_tcp(10, 65536, 1e6),
        goals={"go": 1.0},
        description="10 connections, each sending 64 KiB and waiting for the whole echo, "
        "in a loop; MB (10^6 bytes) echoed per second.",
    ),
    Workload(
        "stream_1g",
        "TCP echo, one 1 GiB stream",
        "MB/s",
        higher_is_better=True,
        servers=["netlog", *ECHO_ANCHORS],
        measure=measure_stream,
        goals={"go": 1.0},
        description="One connection writes 1 GiB in 64 KiB writes while reading the echo; "
        "the clock stops when the last byte is back (--quick: 16 MiB).",
    ),
    Workload(
        "udp",
        "UDP 64-byte probes, window 64",
        "replies/s",
        higher_is_better=True,
        servers=["netlog", *ECHO_ANCHORS],
        measure=measure_udp,
        goals={"uvloop": 1.0},
        description="One UDP socket keeps 64 datagrams of 64 bytes ('ping seq=....') in "
        "flight; each reply lets one more go; 20 ms of silence counts the window "
        "lost and refills it.  netlog runs with --responder-rate 0.",
    ),
    Workload(
        "ingest_pickle",
        "SocketHandler frames → JSONL, 8 senders",
        "rec/s",
        higher_is_better=True,
        servers=["netlog", "cookbook", "minimal"],
        measure=measure_ingest("pickle"),
        goals={"cookbook": 4.0, "minimal": 0.6},
        description="160,000 records pre-built with SocketHandler.makePickle, sent by 8 "
        "threads with one sendall each; records/s until all 160,000 lines are in the "
        f"sink's JSONL file (netlog: --flush-interval {NETLOG_INGEST_FLUSH}).  The minimal "
        "receiver is UNSAFE (pickle.loads on the wire, a 5-key record): the per-core "
        "speed limit of a Python receiver, not a server to compare features with.",
    ),
    Workload(
        "ingest_json",
        "JSON lines → JSONL, 8 senders",
        "rec/s",
        higher_is_better=True,
        servers=["netlog", "rsyslog"],
        measure=measure_ingest("json"),
        goals={"rsyslog": 1.0},
        description="160,000 structlog-JSONRenderer-like lines, 8 senders as above; "
        "rsyslog imtcp→omfile writes each line as a JSON object with its receive time "
        "and peer (no JSON parsing), netlog parses and normalises each one.",
    ),
    Workload(
        "drain",
        "drain 160k buffered records at SIGTERM",
        "seconds (lower is better)",
        higher_is_better=False,
        servers=["netlog"],
        measure=measure_drain,
        absolute_goal=("<", 5.0),
        description="8 senders sendall 160,000 SocketHandler frames, keeping their "
        "connections open; SIGTERM right after the last sendall returns; seconds until "
        "the process exits.  Counts as a number only if all 160,000 lines are on disk "
        "and the summary line says so.",
    ),
    Workload(
        "idle_1000",
        "1,000 idle echo connections",
        "server RSS MiB (lower is better)",
        higher_is_better=False,
        servers=["netlog", *ECHO_ANCHORS],
        measure=measure_idle,
        absolute_goal=("<=", 64.0),
        description="1,000 connections to the echo port, each has sent one byte and read "
        "its echo, then stays open; the server's VmRSS (--quick: 50 connections).",
    ),
]
BY_KEY = {w.key: w for w in WORKLOADS}


# -- running and reporting -----------------------------------------------------


def available(server: str, *, quick: bool) -> str | None:
    """Why ``server`` cannot run here, or None."""
    missing = {
        "go": not (BUILD / "echo_go").exists(),
        "epoll": not (BUILD / "echo_epoll").exists(),
        "rsyslog": shutil.which("rsyslogd") is None and not Path("/usr/sbin/rsyslogd").exists(),
        "uvloop": not has_uvloop(),
    }
    if missing.get(server):
        reason = {
            "go": "Go not installed (golang-go)",
            "epoll": "echo_epoll not built",
            "rsyslog": "rsyslog not installed",
            "uvloop": "uvloop not installed",
        }[server]
        return reason + ("" if quick else "; run bench/run without --quick to install it")
    return None


def run_all(
    keys: list[str], params: Params, reps: int, *, quick: bool
) -> dict[str, dict[str, list[Trial]]]:
    results: dict[str, dict[str, list[Trial]]] = {}
    loads.clear()
    waits.clear()
    unavailable = {s: available(s, quick=quick) for s in {s for w in WORKLOADS for s in w.servers}}
    with tempfile.TemporaryDirectory(prefix="netlog-bench-") as tmp:
        for key in keys:
            workload = BY_KEY[key]
            servers = [s for s in workload.servers if unavailable[s] is None]
            for skipped in sorted(set(workload.servers) - set(servers)):
                log(f"{key}: skipping {skipped}: {unavailable[skipped]}")
            results[key] = {s: [] for s in servers}
            for rep in range(reps):
                for server in servers:  # A B C ... A B C ...
                    workdir = Path(tmp) / f"{key}-{server}-{rep}"
                    waits.append(wait_quiet(params.quiet_wait))
                    loads.append(os.getloadavg()[0])
                    started = time.monotonic()
                    try:
                        trial = workload.measure(server, workdir, params)
                    except (ServerError, RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                        trial = Trial(None, note=f"{type(exc).__name__}: {exc}")
                    results[key][server].append(trial)
                    shown = "FAILED" if trial.value is None else f"{trial.value:,.1f}"
                    log(
                        f"{key} rep {rep + 1}/{reps} {server}: {shown} {workload.metric}"
                        f"  ({time.monotonic() - started:.1f}s) {trial.note}"
                    )
    return results


def wait_quiet(max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) until others leave both cores mostly idle; the wait.

    Runs between trials, when none of our processes is busy, so any CPU in
    use is somebody else's (the machine is shared with other test runs).
    """
    if max_wait <= 0:
        return 0.0
    started = time.monotonic()
    while True:
        before = core_busy(SERVER_CORE) + core_busy(CLIENT_CORE)
        time.sleep(0.25)
        busy = (core_busy(SERVER_CORE) + core_busy(CLIENT_CORE) - before) / 0.25
        waited = time.monotonic() - started
        if busy < QUIET_BELOW or waited >= max_wait:
            return waited


#: "Quiet" for wait_quiet: less than this many cores' worth busy, over both.
QUIET_BELOW = 0.25

#: The 1-minute load average at the start of each trial: the machine is shared,
#: and a load well above 2 (our server + client) means someone else was busy.
loads: list[float] = []
#: Seconds spent waiting for a quiet machine before each trial.
waits: list[float] = []


def median(trials: list[Trial]) -> float | None:
    values = [t.value for t in trials if t.value is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def goal_text(workload: Workload, anchor: str | None, ratio: float | None) -> str:
    if anchor is None:
        if workload.absolute_goal is None:
            return ""
        op, bound = workload.absolute_goal
        value = median_cache.get((workload.key, "netlog"))
        if value is None:
            return f"{op} {bound:g}"
        met = value < bound if op == "<" else value <= bound
        return f"{op} {bound:g}: {'met' if met else 'NOT met'}"
    if anchor not in workload.goals:
        return "context"
    bound = workload.goals[anchor]
    if ratio is None:
        return f"≥ {bound:g}x"
    return f"≥ {bound:g}x: {'met' if ratio >= bound else 'NOT met'}"


median_cache: dict[tuple[str, str], float | None] = {}


def table(results: dict[str, dict[str, list[Trial]]]) -> str:
    rows = [
        "| workload | metric | netlog | anchor | anchor value | netlog / anchor | goal |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    for key, by_server in results.items():
        workload = BY_KEY[key]
        for server, trials in by_server.items():
            median_cache[key, server] = median(trials)
        ours = median_cache.get((key, "netlog"))
        anchors = [s for s in by_server if s != "netlog"]
        first = f"| {workload.title} | {workload.metric} | {fmt(ours)} "
        if workload.absolute_goal is not None:
            rows.append(f"{first}| — | — | — | {goal_text(workload, None, None)} |")
            first = "| | | "
        for anchor in anchors:
            theirs = median_cache[key, anchor]
            ratio = ours / theirs if ours is not None and theirs else None
            shown = "—" if ratio is None else f"{ratio:.2f}x"
            rows.append(
                f"{first}| {LABELS[anchor]} | {fmt(theirs)} | {shown} "
                f"| {goal_text(workload, anchor, ratio)} |"
            )
            first = "| | | "
        for anchor in workload.goals:
            if anchor not in by_server:
                rows.append(
                    f"{first}| {LABELS[anchor]} | not run | — "
                    f"| ≥ {workload.goals[anchor]:g}x: not measured |"
                )
                first = "| | | "
        if not anchors and workload.absolute_goal is None:
            rows.append(f"{first}| — | — | — | |")
    return "\n".join(rows)


def details(results: dict[str, dict[str, list[Trial]]]) -> str:
    rows = [
        (
            "| workload | server | trials, in run order | median | client CPU | server CPU "
            "| others on server core | notes |"
        ),
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for key, by_server in results.items():
        for server, trials in by_server.items():
            values = ", ".join(fmt(t.value) for t in trials)
            client = [t.client_cpu for t in trials if t.client_cpu is not None]
            srv = [t.server_cpu for t in trials if t.server_cpu is not None]
            others = [t.others_cpu for t in trials if t.others_cpu is not None]
            notes = "; ".join(sorted({t.note for t in trials if t.note}))
            rows.append(
                f"| {key} | {LABELS[server]} | {values} | {fmt(median(trials))} "
                f"| {pct(statistics.median(client) if client else None)} "
                f"| {pct(statistics.median(srv) if srv else None)} "
                f"| {pct(statistics.median(others) if others else None)} | {notes} |"
            )
    return "\n".join(rows)


def commands(results: dict[str, dict[str, list[Trial]]]) -> str:
    def show(cmd: list[str]) -> str:
        text = " ".join(cmd)
        text = re.sub(r"/tmp/netlog-bench-[^/ ]+/[^/ ]+", "$WORK", text)
        return text.replace(str(ROOT) + "/", "")

    placeholders = {"echo": "$ECHO_PORT", "responder": "$UDP_PORT", "log_tcp": "$LOG_PORT"}

    def client_text(trial: Trial) -> str:
        words = [str(w) for w in trial.client_command]
        for name, port in trial.ports.items():
            shown = "$PID" if name == "pid" else placeholders.get(name, f"${name.upper()}")
            words = [shown if w == str(port) else w for w in words]
        return show(words)

    out = []
    for key, by_server in results.items():
        out.append(f"- `{key}`:")
        client_shown = False
        for server, trials in by_server.items():
            trial = next((t for t in trials if t.server_command), None)
            if trial is None:
                continue
            out.append(f"  - {LABELS[server]}: `{show(trial.server_command)}`")
            if trial.client_command and not client_shown:
                out.append(f"  - client: `taskset -c {CLIENT_CORE} {client_text(trial)}`")
                client_shown = True
    return "\n".join(out)


def versions() -> str:
    def first_line(cmd: list[str]) -> str:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "not installed"
        if done.returncode != 0:
            return "not installed"
        text = (done.stdout or done.stderr).strip().splitlines()
        return text[0].strip() if text else "?"

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    uv = first_line([str(bench_python()), "-c", "import uvloop; print(uvloop.__version__)"])
    rsyslog = first_line([shutil.which("rsyslogd") or "/usr/sbin/rsyslogd", "-v"])
    gevent = first_line([str(NETLOG_PYTHON), "-c", "import gevent; print(gevent.__version__)"])
    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}; "
        f"{first_line([str(NETLOG_PYTHON), '-V'])}, gevent {gevent}, uvloop {uv}, "
        f"{first_line(['go', 'version'])}, "
        f"{rsyslog.split(' compiled')[0].replace('rsyslogd  ', 'rsyslogd ')}, "
        f"{first_line(['gcc', '--version'])}"
    )


def git_state() -> str:
    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "netlog", "servers")
    return f"netlog at commit {head}" + (" plus uncommitted changes" if dirty else "")


def report(
    results: dict[str, dict[str, list[Trial]]], reps: int, params: Params, *, quick: bool
) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    mode = "--quick (smoke sizes, not for comparison)" if quick else "full run"
    return "\n".join(
        [
            (
                f"Generated by `bench/run` on {stamp}: {mode}, {reps} repetition(s) per "
                "server, servers alternating A B A B, medians."
            ),
            "",
            (
                f"{git_state()}.  Machine: {versions()}.  Server pinned to core {SERVER_CORE}, "
                f"clients to core {CLIENT_CORE}.  1-minute load average at the start of "
                f"the trials: {min(loads, default=0):.2f} to {max(loads, default=0):.2f} "
                "(the machine is shared with other test runs: medians, not means)."
                + (
                    f"  Before each trial the harness waited up to {params.quiet_wait:g} s for "
                    "both cores to be nearly idle: "
                    f"{sum(w >= params.quiet_wait for w in waits)} of {len(waits)} trials "
                    "started without that."
                    if params.quiet_wait
                    else ""
                )
            ),
            "",
            table(results),
            "",
            (
                "Every trial, in run order.  CPU columns are medians, as a share of one "
                "core while the client ran: the client's own (getrusage), the server's "
                "(/proc/PID/stat), and what everything else on the machine used of the "
                "server's core meanwhile (/proc/stat; the machine is shared, and loopback "
                "softirq work not charged to the server lands here too)."
            ),
            "",
            details(results),
            "",
            "Commands (first trial of each; `$WORK` is a fresh temporary directory):",
            "",
            commands(results),
        ]
    )


def write_benchmarks_md(generated: str) -> None:
    block = f"{BEGIN_MARK}\n{generated}\n{END_MARK}"
    if BENCHMARKS_MD.exists():
        text = BENCHMARKS_MD.read_text()
        if BEGIN_MARK in text and END_MARK in text:
            head, rest = text.split(BEGIN_MARK, 1)
            tail = rest.split(END_MARK, 1)[1]
            BENCHMARKS_MD.write_text(head + block + tail)
            return
        BENCHMARKS_MD.write_text(text.rstrip() + "\n\n## Results\n\n" + block + "\n")
        return
    BENCHMARKS_MD.write_text(f"# Benchmarks\n\n## Results\n\n{block}\n")


PROFILED = {
    "echo_1k": "TCP echo 1 KiB x 100 connections, 10 s",
    "ingest_pickle": "SocketHandler ingest, 8 senders x 20,000 records",
    "ingest_json": "JSON-lines ingest, 8 senders x 20,000 records",
}


def py_spy() -> str | None:
    candidate = BUILD / "venv" / "bin" / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def shorten(frame: str) -> str:
    """A frame's file path without the checkout and site-packages prefixes."""
    frame = frame.replace(str(ROOT) + "/", "")
    return re.sub(r"\S*/site-packages/", "", frame)


def summarise_profile(raw: Path, top: int = 20) -> str:
    """Self and inclusive time per function from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        frames = [shorten(f) for f in frames]
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return "(no samples)"
    lines = [f"{total} samples", "", "self time:"]
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / total:5.1f}%  {frame}")
    lines += ["", "inclusive time:"]
    for frame, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / total:5.1f}%  {frame}")
    return "\n".join(lines)


def profile(keys: list[str]) -> int:
    """Run netlog under ``py-spy record`` for the profiled workloads."""
    spy = py_spy()
    if spy is None:
        log("py-spy is not installed: run bench/run without --quick first")
        return 2
    status = 0
    with tempfile.TemporaryDirectory(prefix="netlog-profile-") as tmp:
        for key in keys:
            if key not in PROFILED:
                log(f"{key}: not profiled (only {', '.join(PROFILED)})")
                continue
            raw = BUILD / f"profile-{key}.txt"
            netlog_args = (
                ("--flush-interval", NETLOG_INGEST_FLUSH) if key.startswith("ingest") else ()
            )
            with serving("netlog", Path(tmp) / key, netlog_args) as server:
                # py-spy runs on the client core, and exits when netlog does.
                spy_proc = subprocess.Popen(
                    ["taskset", "-c", CLIENT_CORE, spy, "record", "--pid", str(server.pid),
                     "--rate", "250", "--format", "raw", "--output", str(raw)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                )  # fmt: skip
                time.sleep(1.0)
                if key == "echo_1k":
                    command = load("tcp", HOST, server.ports["echo"], 100, 1024, 10, 0.5)
                else:
                    assert server.out is not None
                    command = ingest(
                        "--host", HOST, "--port", server.ports["log_tcp"],
                        "--format", key.removeprefix("ingest_"),
                        "--records", 160_000, "--senders", 8, "--out", server.out,
                    )  # fmt: skip
                result = run_client(command, 300)
            _, spy_err = spy_proc.communicate(timeout=60)
            if not raw.exists():
                log(f"{key}: py-spy wrote nothing: {spy_err.decode()[-500:]}")
                status = 1
                continue
            summary = summarise_profile(raw)
            (BUILD / f"profile-{key}.summary.txt").write_text(summary + "\n")
            print(f"## profile: {PROFILED[key]}\n\nclient: {json.dumps(result)}\n")
            print(summary + "\n")
            log(f"{key}: collapsed stacks in {raw} (flamegraph.pl or speedscope read them)")
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes, one repetition")
    parser.add_argument(
        "--only", action="append", choices=list(BY_KEY), help="run this workload (repeatable)"
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 3, --quick 1)")
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the table into BENCHMARKS.md (default: only for a full run of everything)",
    )
    parser.add_argument("--json", type=Path, help="also write every trial here as JSON")
    parser.add_argument(
        "--profile", action="store_true", help="profile netlog with py-spy instead of comparing"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="netlog's --workers (above 1: not pinned)"
    )
    args = parser.parse_args()
    global NETLOG_WORKERS  # noqa: PLW0603 - one run's setting, read by start_server
    NETLOG_WORKERS = args.workers
    keys = args.only or list(BY_KEY)
    params = QUICK if args.quick else FULL
    reps = args.reps or (1 if args.quick else 3)
    if not NETLOG_PYTHON.exists():
        log(f"{NETLOG_PYTHON} is missing: create the project venv first")
        return 2
    if not (BUILD / "load").exists():
        log("bench/build/load is missing: run bench/run, which builds it")
        return 2

    if args.profile:
        return profile(args.only or list(PROFILED))
    # The harness itself stays off the server's core: it mostly waits, but it
    # polls during the drain workload.
    os.sched_setaffinity(0, {int(CLIENT_CORE)})
    started = time.monotonic()
    results = run_all(keys, params, reps, quick=args.quick)
    generated = report(results, reps, params, quick=args.quick)
    print(generated)
    write = args.write if args.write is not None else not args.quick and not args.only
    if write:
        write_benchmarks_md(generated)
        log(f"wrote {BENCHMARKS_MD}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    k: {s: [t.__dict__ for t in ts] for s, ts in v.items()}
                    for k, v in results.items()
                },
                indent=1,
            )
        )
    failed = [
        f"{key}/{server}"
        for key, by_server in results.items()
        for server, trials in by_server.items()
        if any(t.value is None for t in trials)
    ]
    log(f"done in {time.monotonic() - started:.0f}s")
    if failed:
        log(f"no number for: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
