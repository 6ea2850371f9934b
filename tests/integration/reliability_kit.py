"""Helpers shared by the reliability suite (issue 6): frames, counts, figures.

Each scenario's measured figures are printed and appended as one JSON line to
``$NETLOG_FIGURES`` (default ``<tmp>/netlog-reliability-figures.jsonl``), so a
run leaves the numbers that RELIABILITY.md reports.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import pickle
import re
import resource
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from netlog.store.writer import rotated_paths

FIGURES = Path(
    os.environ.get("NETLOG_FIGURES")
    or Path(tempfile.gettempdir()) / "netlog-reliability-figures.jsonl"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SUMMARY = re.compile(r"(\d+) records written, (\d+) dropped, (\d+) bad frames")
PROBES = re.compile(r"probes: (\d+) answered, (\d+) rate-limited, (\d+) refused")


def record_figure(scenario: str, **values) -> None:
    """Print a scenario's measured figures and append them to :data:`FIGURES`."""
    line = {"scenario": scenario, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), **values}
    print(f"FIGURE {json.dumps(line)}")
    with FIGURES.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def frame(record_dict: dict, protocol: int = 1) -> bytes:
    """A SocketHandler frame around any dict (or any object, for hostile frames)."""
    data = pickle.dumps(record_dict, protocol)
    return struct.pack(">L", len(data)) + data


def raw_frame(body: bytes) -> bytes:
    """A correctly framed, hand-made pickle body."""
    return struct.pack(">L", len(body)) + body


def log_frame(msg: str, name: str = "rel", **extra) -> bytes:
    """Exactly what ``logging.handlers.SocketHandler`` sends for one record."""
    record = logging.makeLogRecord({"name": name, "msg": msg, "levelname": "INFO", "levelno": 20})
    record.__dict__.update(extra)
    return logging.handlers.SocketHandler("127.0.0.1", 1).makePickle(record)


def seq_frame(conn: int, seq: int) -> bytes:
    """A small sequence-numbered frame: cheap to make by the hundred thousand."""
    return frame({"name": "seq", "msg": f"c{conn} s{seq}", "levelno": 20, "conn": conn, "seq": seq})


def connect(address, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


def udp_socket(timeout: float = 2.0, port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    sock.bind(("127.0.0.1", port))
    return sock


def summary(stderr: str) -> tuple[int, int, int]:
    """``(written, dropped, bad frames)`` from the shutdown line."""
    match = SUMMARY.search(stderr)
    assert match, f"no summary line in: {stderr!r}"
    return int(match[1]), int(match[2]), int(match[3])


def probes(stderr: str) -> tuple[int, int, int]:
    """``(answered, rate-limited, refused)`` from the shutdown line."""
    match = PROBES.search(stderr)
    assert match, f"no probe counts in: {stderr!r}"
    return int(match[1]), int(match[2]), int(match[3])


def metric(server, name: str, **labels: str) -> float:
    """One sample of the server's ``/metrics`` (0 when absent: counters start unseen)."""
    url = f"http://127.0.0.1:{server.ports['http']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    key = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_kib(pid: int) -> int:
    """The most resident memory a process has had (VmHWM), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file limit (children inherit it); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def is_closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (EOF or reset) within its timeout."""
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def parse_lines(path: Path) -> list[dict]:
    """Every line of a JSONL file, each asserted complete and valid."""
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path} ends in a torn line"
    return [json.loads(line) for line in data.split(b"\n")[:-1]]


def parse_all(log_dir: Path) -> list[dict]:
    """Every record in a log dir, rotated files first (oldest to newest), each line whole."""
    return [record for path in rotated_paths(log_dir) for record in parse_lines(path)]


def wait_lines(path: Path, count: int, timeout: float = 15.0) -> list[dict]:
    """Wait until the JSONL file at ``path`` (any log dir) holds ``count`` whole lines."""

    def enough():
        if not path.exists():
            return None
        data = path.read_bytes()
        lines = data.split(b"\n")[:-1]
        return [json.loads(line) for line in lines] if len(lines) >= count else None

    deadline = time.monotonic() + timeout
    while True:
        found = enough()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {count} lines in {path}")
        time.sleep(0.02)


@contextlib.contextmanager
def tmpfs(directory: Path, *options: str):
    """Mount a tmpfs on ``directory`` for the block; skip when mounting is impossible."""
    directory.mkdir(parents=True, exist_ok=True)
    opts = ",".join(options)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, check=False)


def remount(directory: Path, *options: str) -> None:
    subprocess.run(
        ["mount", "-o", ",".join(["remount", *options]), str(directory)],
        capture_output=True,
        check=True,
    )
