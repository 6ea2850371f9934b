"""``netlog serve --workers 2`` as a whole: restarts, loss accounting, back-pressure, the feed.

The promises shared with one process (ingest, drain, acks, health) are the
other integration tests, run with ``--workers 2`` too (conftest.py's
``WITH_WORKERS``); these are what only several processes can get wrong.
"""

import http.client
import json
import os
import re
import signal
import socket
import ssl
import struct
import time
from pathlib import Path

import pytest
from reliability_kit import record_figure
from test_http import metric, metric_values, read_events
from tlscerts import make_pki, tls_args

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


#: Where the source ports the balance tests bind come from: below the
#: ephemeral range (32768 and up), so no connection made meanwhile takes one.
PROBE_PORTS = range(20000 + (os.getpid() % 200) * 50, 20000 + (os.getpid() % 200) * 50 + 600)
SPLIT = re.compile(r"records by worker: 1: (\d+), 2: (\d+)")
PASSED = re.compile(r"connections passed at accept by worker: 1: (\d+), 2: (\d+)")


def bound_client(port: int, address: tuple[str, int]) -> socket.socket:
    """A connection to ``address`` from the source port ``port``."""
    client = socket.socket()
    client.settimeout(TIMEOUT)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        client.bind((HOST, port))
        client.connect(address)
    except BaseException:
        client.close()
        raise
    return client


def reset(client: socket.socket) -> None:
    """Close with a reset: the source port is free again at once (no TIME_WAIT)."""
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


def socket_counts(server) -> dict[int, int]:
    return {index: len(socket_inodes(pid)) for index, pid in server.worker_pids().items()}


def ports_hashed_to(server, listener: str, index: int, count: int) -> list[int]:
    """``count`` source ports the kernel's SO_REUSEPORT hash gives to worker ``index``.

    Found one connection at a time, each reset and gone from the worker
    before the next: with no other connection open, nothing is passed on,
    so who serves a probe is who the kernel chose, and will choose again
    for the same addresses.
    """
    idle = socket_counts(server)
    ports: list[int] = []
    for port in PROBE_PORTS:
        if len(ports) == count:
            return ports
        try:
            client = bound_client(port, server.address(listener))
        except OSError:
            continue  # taken by someone else
        served = wait_for(lambda c=client: owner(server, c), what="the probe accepted")
        reset(client)
        wait_for(lambda: socket_counts(server) == idle, what="the probe closed by its worker")
        if served == index:
            ports.append(port)
    raise AssertionError(f"only {len(ports)} of {len(PROBE_PORTS)} ports go to worker {index}")


def settle(server, idle: dict[int, int], count: int) -> tuple[int, int]:
    """Wait until worker 1 accepted all ``count`` connections: (kept, passed on)."""

    def accepted():
        kept = socket_counts(server)[1] - idle[1]
        values = metric_values(server)
        passed = metric(values, "netlog_worker_connections_handed_total", worker="1")
        return (kept, int(passed)) if kept + passed == count else None

    return wait_for(accepted, what="every connection accepted")


def queue_for_stopped_worker(
    server, ports: list[int], idle: dict[int, int]
) -> tuple[list[socket.socket], int, int]:
    """8 connections from ``ports`` (hashed to worker 1), those passed queued for worker 2.

    Worker 2 is stopped by the caller, after ``ports`` and ``idle`` were found
    (that needs it running).  Each connection sends 100 records; returns once
    worker 1's share is written, with the clients, how many worker 1 kept and
    how many it passed.
    """
    clients = [bound_client(port, server.address("log_tcp")) for port in ports]
    kept, passed = settle(server, idle, 8)  # before any record: no count falls meanwhile
    assert passed >= 3
    for n, client in enumerate(clients):
        client.sendall(b"".join(b'{"event": "c%d r%d"}\n' % (n, r) for r in range(100)))
    # Worker 1 serves what it kept; the rest is queued for worker 2, unread.
    wait_for(lambda: len(server.records()) == 100 * kept, what="worker 1's share written")
    return clients, kept, passed


class TestBalance:
    """Connections the kernel gives one worker are passed at accept to the less-loaded one."""

    @pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
    def test_eight_connections_hashed_to_one_worker_split_evenly(
        self, netlog_factory, tmp_path, tls
    ):
        pki = make_pki(tmp_path / "pki") if tls else None
        extra = () if pki is None else tls_args(pki)
        listener = "log_tls" if tls else "log_tcp"
        server = netlog_factory("--workers", "2", *extra)
        ports = ports_hashed_to(server, listener, 1, 8)
        # All 8 open at once: without balancing, worker 1 would serve all of them.
        clients = [bound_client(port, server.address(listener)) for port in ports]
        if pki is not None:
            context = ssl.create_default_context(cafile=pki.ca)
            clients = [context.wrap_socket(c, server_hostname="localhost") for c in clients]
        per_connection = 300
        for n, client in enumerate(clients):
            client.sendall(
                b"".join(b'{"event": "c%d r%d"}\n' % (n, r) for r in range(per_connection))
            )
        total = per_connection * len(clients)
        records = server.wait_records(total)
        for client in clients:
            client.close()
        assert server.stop() == 0
        messages = [r["message"] for r in records]
        assert sorted(messages) == sorted(
            f"c{n} r{r}" for n in range(len(clients)) for r in range(per_connection)
        )
        assert len({r["id"] for r in records}) == total
        summary = server.stderr().strip().splitlines()[-1]
        assert f"{total} records written, 0 dropped" in summary, server.stderr()
        split = SPLIT.search(summary)
        passed = PASSED.search(summary)
        assert split is not None
        one, two = map(int, split.groups())
        assert abs(one - two) <= per_connection, summary  # within one connection
        assert passed is not None, summary
        assert int(passed.group(1)) >= 3, summary
        record_figure(f"workers: 8 connections hashed to one worker ({listener})", split=[one, two])

    def test_metrics_count_connections_passed(self, netlog_factory):
        server = netlog_factory("--workers", "2")
        ports = ports_hashed_to(server, "log_tcp", 2, 4)
        clients = [bound_client(port, server.address("log_tcp")) for port in ports]
        for client in clients:
            wait_for(lambda c=client: owner(server, c), what="the connection accepted")
        values = metric_values(server)
        assert metric(values, "netlog_worker_connections_handed_total", worker="2") == 2
        assert metric(values, "netlog_worker_connections_handed_total", worker="1") == 0
        assert metric(values, "netlog_connections_handed_total") == 2
        served = [owner(server, c) for c in clients]
        assert sorted(served) == [1, 1, 2, 2]
        for client in clients:
            client.close()
        assert server.stop() == 0

    def test_connections_queued_for_a_worker_killed_are_served_by_the_other(self, netlog_factory):
        """kill -9 of the worker connections were passed to, before it took them: none lost."""
        server = netlog_factory("--workers", "2")
        ports = ports_hashed_to(server, "log_tcp", 1, 8)
        idle = socket_counts(server)
        target = server.worker_pids()[2]
        os.kill(target, signal.SIGSTOP)  # it cannot take what is passed to it
        try:
            clients, _kept, _passed = queue_for_stopped_worker(server, ports, idle)
            for client in clients:
                client.shutdown(socket.SHUT_WR)
        finally:
            os.kill(target, signal.SIGKILL)
        records = server.wait_records(800)
        for client in clients:
            client.close()
        assert server.stop() == 0
        assert sorted(r["message"] for r in records) == sorted(
            f"c{n} r{r}" for n in range(8) for r in range(100)
        )
        summary = server.stderr().strip().splitlines()[-1]
        assert "800 records written, 0 dropped" in summary
        assert "records by worker: 1: 800, 2: 0 (1 restarts)" in summary

    def test_sigterm_with_connections_queued_for_a_stopped_worker(self, netlog_factory):
        """Passed just before the signal, taken by the drain: exit 0, nothing lost."""
        server = netlog_factory("--workers", "2")
        ports = ports_hashed_to(server, "log_tcp", 1, 8)
        idle = socket_counts(server)
        target = server.worker_pids()[2]
        os.kill(target, signal.SIGSTOP)
        try:
            clients, kept, passed = queue_for_stopped_worker(server, ports, idle)
            server.send_signal(signal.SIGTERM)
            time.sleep(0.3)  # the writer has signalled both workers
        finally:
            os.kill(target, signal.SIGCONT)
        assert server.proc.wait(timeout=30) == 0
        for client in clients:
            client.close()
        records = server.records()
        assert sorted(r["message"] for r in records) == sorted(
            f"c{n} r{r}" for n in range(8) for r in range(100)
        )
        summary = server.stderr().strip().splitlines()[-1]
        assert "800 records written, 0 dropped" in summary
        assert f"records by worker: 1: {100 * kept}, 2: {100 * passed}" in summary
