"""``netlog serve --workers 2`` as a whole: restarts, loss accounting, back-pressure, the feed.

The promises shared with one process (ingest, drain, acks, health) are the
other integration tests, run with ``--workers 2`` too (conftest.py's
``WITH_WORKERS``); these are what only several processes can get wrong.
"""

import http.client
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from reliability_kit import record_figure
from test_http import metric, metric_values, read_events

from netlogproc import HOST, start, wait_for

TIMEOUT = 5.0


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process ``pid`` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def tcp_table() -> list[tuple[int, int, str, int]]:
    """``/proc/net/tcp``: (local port, remote port, state, inode) of every IPv4 TCP socket."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote = int(parts[1].split(":")[1], 16), int(parts[2].split(":")[1], 16)
        rows.append((local, remote, parts[3], int(parts[9])))
    return rows


def owner(server, client: socket.socket) -> int | None:
    """The worker number serving ``client``'s connection (once it has accepted it)."""
    mine, theirs = client.getsockname()[1], client.getpeername()[1]
    inodes = {inode for local, remote, _, inode in tcp_table() if (local, remote) == (theirs, mine)}
    for index, pid in server.worker_pids().items():
        if socket_inodes(pid) & inodes:
            return index
    return None


def connect_to(server, index: int, made: list | None = None, tries: int = 200) -> socket.socket:
    """A connection the kernel gave to worker ``index`` (others are closed; all in ``made``)."""
    for _ in range(tries):
        client = socket.create_connection(server.address("log_tcp"), timeout=TIMEOUT)
        if made is not None:
            made.append(client)
        if wait_for(lambda c=client: owner(server, c), what="the connection accepted") == index:
            return client
        client.close()
    raise AssertionError(f"no connection reached worker {index} in {tries} tries")


def send_lines(server, messages: list[str]) -> None:
    """One connection per message, each closed after its line: spread over the workers."""
    for text in messages:
        with socket.create_connection(server.address("log_tcp"), timeout=TIMEOUT) as client:
            client.sendall(json.dumps({"event": text}).encode() + b"\n")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class TestStart:
    """The ready file appears once every worker is bound."""

    def test_ready_file_means_every_worker_listens_on_every_port(self, netlog_factory):
        server = netlog_factory("--workers", "2")
        workers = server.worker_pids()
        assert sorted(workers) == [1, 2]
        listening = {inode for local, _, state, inode in tcp_table() if state == "0A"}
        for name in ("echo", "log_tcp", "gelf_tcp", "fluent"):
            port = server.ports[name]
            on_port = {i for local, _, s, i in tcp_table() if local == port and s == "0A"}
            assert on_port <= listening
            for index, pid in workers.items():
                assert socket_inodes(pid) & on_port, f"worker {index} does not listen on {name}"
        # The parent listens on the HTTP port only, and no worker does.
        http_port = server.ports["http"]
        http_sockets = {i for local, _, s, i in tcp_table() if local == http_port and s == "0A"}
        assert socket_inodes(server.pid) & http_sockets
        assert not any(socket_inodes(pid) & http_sockets for pid in workers.values())
        assert server.stop() == 0


class TestSpread:
    """Both workers take records; one store, unique ids, the live feed, the sums."""

    def test_ids_unique_feed_carries_both_workers_metrics_add_up(self, netlog_factory):
        server = netlog_factory("--workers", "2")
        conn = http.client.HTTPConnection(HOST, server.ports["http"], timeout=TIMEOUT)
        conn.request("GET", "/events")
        response = conn.getresponse()
        assert response.status == 200
        # One message per worker, sent on a connection the test knows it served.
        made: list[socket.socket] = []
        for index in (1, 2):
            with connect_to(server, index, made) as client:
                client.sendall(json.dumps({"event": f"via worker {index}"}).encode() + b"\n")
        messages = [f"record {n}" for n in range(200)]
        send_lines(server, messages)
        expected = {f"via worker {i}" for i in (1, 2)} | set(messages)
        seen: set[str] = set()

        read = [0]

        def all_seen(events):
            for kind, _, data in events[read[0] :]:
                if kind == "records":
                    seen.update(r["message"] for r in json.loads(data))
            read[0] = len(events)
            return seen >= expected

        read_events(response, all_seen, timeout=15)
        records = server.wait_records(len(expected))
        assert {r["message"] for r in records} == expected
        ids = [r["id"] for r in records]
        assert len(set(ids)) == len(ids)
        values = metric_values(server)
        per_worker = [metric(values, "netlog_worker_records_total", worker=str(i)) for i in (1, 2)]
        assert all(count >= 1 for count in per_worker)
        assert sum(per_worker) == len(expected)
        assert metric(values, "netlog_records_received_total", format="json") == len(expected)
        assert metric(values, "netlog_connections_total", listener="log_tcp") == len(
            messages
        ) + len(made)
        conn.close()
        assert server.stop() == 0
        summary = server.stderr().strip().splitlines()[-1]
        assert f"{len(expected)} records written, 0 dropped" in summary
        assert "records by worker: 1: " in summary


class TestWorkerKilled:
    """kill -9 of one worker: counted and reported, restarted; the other is untouched."""

    def test_restart_loss_reported_other_unaffected_new_connections_served(self, netlog_factory):
        server = netlog_factory("--workers", "2", "--grace", "2")
        victim = connect_to(server, 1)
        survivor = connect_to(server, 2)
        half = b'{"event": "half'
        victim.sendall(b'{"event": "before 1"}\n' + half)
        survivor.sendall(b'{"event": "before 2"}\n')
        server.wait_records(2)
        time.sleep(0.5)  # let worker 1 report what it holds (every --flush-interval)
        old = server.worker_pids()
        os.kill(old[1], signal.SIGKILL)
        line = wait_for(
            lambda: next(
                (x for x in server.stderr().splitlines() if "worker 1 exited with status -9" in x),
                None,
            ),
            what="the loss report",
        )
        held = f"lost about 0 records it had decoded, {len(half)} bytes of unfinished records"
        assert held in line
        assert "and 1 open connections" in line
        assert "starting it again in 1s (1 restarts so far)" in line
        # The connection the dead worker served is gone; the other one works on.
        victim.settimeout(TIMEOUT)
        assert victim.recv(1) == b""
        victim.close()
        survivor.sendall(b'{"event": "after, same connection"}\n')
        server.wait_records(3)
        # Meanwhile and after, new connections are served (by whoever is alive).
        send_lines(server, [f"new {n}" for n in range(20)])
        wait_for(lambda: 1 in server.worker_pids() and server.worker_pids()[1] != old[1])
        assert server.worker_pids()[2] == old[2]
        send_lines(server, [f"newer {n}" for n in range(20)])
        records = server.wait_records(43)
        assert len(records) == 43
        record_figure("workers: kill -9 of a worker", report=line, records=len(records))
        values = metric_values(server)
        assert metric(values, "netlog_worker_restarts_total", worker="1") == 1
        assert metric(values, "netlog_worker_restarts_total", worker="2") == 0
        survivor.close()
        assert server.stop() == 0
        summary = server.stderr().strip().splitlines()[-1]
        assert "43 records written" in summary
        assert "(1 restarts)" in summary


class TestSigtermDuringRestart:
    """SIGTERM while a worker is dead and waiting to be started again: exit 0, nothing lost."""

    def test_exit_zero_everything_sent_is_on_disk(self, netlog_factory):
        server = netlog_factory("--workers", "2")
        survivor = connect_to(server, 2)
        os.kill(server.worker_pids()[1], signal.SIGKILL)
        wait_for(lambda: "worker 1 exited with status -9" in server.stderr(), what="the death")
        lines = b"".join(b'{"event": "r%d"}\n' % n for n in range(5000))
        survivor.sendall(lines)
        server.send_signal(signal.SIGTERM)  # worker 1 is in its 1 s back-off now
        assert server.proc.wait(timeout=30) == 0
        survivor.close()
        records = server.records()
        assert [r["message"] for r in records] == [f"r{n}" for n in range(5000)]
        assert "5000 records written, 0 dropped" in server.stderr().strip().splitlines()[-1]


class TestSlowWriter:
    """A stalled writer: the workers stop reading, TCP pushes back, memory stays bounded."""

    def test_stopped_parent_back_pressures_the_sender(self, netlog_factory):
        server = netlog_factory("--workers", "2")
        client = connect_to(server, 1)
        worker = server.worker_pids()[1]
        before = rss_kib(worker)
        line = b'{"event": "%s"}\n' % (b"x" * 200)
        chunk = line * 1000
        cap = 400 << 20  # far beyond what the buffers on the way can hold
        sent = 0
        os.kill(server.pid, signal.SIGSTOP)
        try:
            client.settimeout(2.0)
            while sent < cap:
                try:
                    sent += client.send(chunk[sent % len(chunk) :])
                except TimeoutError:
                    break
            blocked_at = sent
            grown = rss_kib(worker) - before
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert blocked_at < cap, "the sender was never held back"
        assert grown < 64 * 1024, f"the worker grew by {grown} KiB while the writer was stopped"
        client.settimeout(TIMEOUT)
        rest = len(line) - blocked_at % len(line)
        if rest != len(line):
            client.sendall(line[len(line) - rest :])
        client.close()
        count = (blocked_at + len(line) - 1) // len(line)
        server.wait_records(count, timeout=60)
        assert server.stop() == 0
        assert len(server.records()) == count
        record_figure(
            "workers: stalled writer",
            sent_before_blocked_mib=round(blocked_at / 2**20, 1),
            worker_rss_growth_kib=grown,
            records=count,
        )


class TestStartFails:
    """A worker that cannot bind stops ``serve``: one line, exit 2, no worker left behind."""

    def test_port_taken_without_reuseport(self, tmp_path):
        taken = socket.socket()
        taken.bind((HOST, 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        tag = f"test-workers-{os.getpid()}-{time.monotonic_ns()}"
        try:
            with pytest.raises(AssertionError, match="exited 2 during start") as failure:
                start(tmp_path / "w", "--workers", "2", "--log-tcp-port", port, env={"TAG": tag})
        finally:
            taken.close()
        text = str(failure.value)
        assert f"cannot listen for TCP logs on port {port}" in text
        assert "worker 1 could not start" in text
        # The server's workers carry its environment: none is left.
        assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _tagged(p, tag)]


def _tagged(proc: Path, tag: str) -> bool:
    """Whether ``proc`` is a worker started with ``TAG=tag`` in its environment."""
    try:
        if b"servers.worker" not in (proc / "cmdline").read_bytes():
            return False
        return f"TAG={tag}".encode() in (proc / "environ").read_bytes().split(b"\0")
    except OSError:
        return False


class TestStuckWorker:
    """A worker that stops (SIGSTOP: a decode that never ends) does not stall the others."""

    def test_other_worker_keeps_writing(self, netlog_factory):
        server = netlog_factory("--workers", "2")
        stuck = connect_to(server, 1)
        working = connect_to(server, 2)
        stuck.sendall(b'{"event": "before the stall"}\n')
        server.wait_records(1)
        pid = server.worker_pids()[1]
        os.kill(pid, signal.SIGSTOP)
        try:
            stuck.sendall(b'{"event": "held by the stuck worker"}\n')
            working.sendall(b"".join(b'{"event": "w%d"}\n' % n for n in range(1000)))
            records = server.wait_records(1001)
            assert "held by the stuck worker" not in {r["message"] for r in records}
        finally:
            os.kill(pid, signal.SIGCONT)
        server.wait_records(1002)
        stuck.close()
        working.close()
        assert server.stop() == 0
        assert "1002 records written, 0 dropped" in server.stderr().strip().splitlines()[-1]


class TestNoReuseport:
    """Where the system has no ``SO_REUSEPORT``, ``--workers 2`` serves in one process."""

    def test_one_process_said_and_serving(self, netlog_factory, tmp_path):
        shim = tmp_path / "shim"
        shim.mkdir()
        # Imported by the server's interpreter at start: a socket module without it.
        (shim / "sitecustomize.py").write_text(
            'import socket\n\ndel socket.SO_REUSEPORT\nsocket.__all__.remove("SO_REUSEPORT")\n'
        )
        path = os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH")) if p)
        server = netlog_factory("--workers", "2", env={"PYTHONPATH": path})
        assert "no SO_REUSEPORT: running one process, not 2 workers" in server.stderr()
        assert server.worker_pids() == {}
        send_lines(server, ["one", "two"])
        wait_for(lambda: len(server.records()) == 2, 10, what="both records on disk")
        assert server.stop() == 0
        assert sorted(r["message"] for r in server.records()) == ["one", "two"]
