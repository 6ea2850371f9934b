"""Issue 20's end-to-end test: two hosts forward through JetStream to one collector, through faults.

Two real ``netlog serve`` processes ("hosts", ``--forward-host``) forward
their stores to NATS; one real ``netlog collect`` gathers them.  While
records are sent: a NATS node is killed and restarted, all of NATS is down
for a while, one host is killed with -9 and restarted, and the collector
is killed with -9 and restarted.  At the end the collector's store holds
every record each host stored, exactly once (count and ids), each with its
host.  The full run uses a 3-node cluster and an R3 stream (about 30 s
here); the fast variant keeps the kills of a host and of the collector, on
one node.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections import Counter
from pathlib import Path

import pytest
from collectproc import start_collect
from natscluster import STARTUP_LIMIT, NatsCluster, nats_server_binary

from netlogproc import wait_for

pytestmark = pytest.mark.skipif(nats_server_binary() is None, reason="nats-server not installed")

#: Records sent to each host per round.
ROUND = 200
#: How long the collector may take to catch up after the last fault.
CATCH_UP = 150.0


def stored(log_dir: Path) -> list[dict]:
    """Every complete record in a store, all its files, oldest first."""
    records = []
    for path in sorted(log_dir.glob("records.jsonl*")):
        data = path.read_bytes()
        data = data[: data.rfind(b"\n") + 1]
        records += [json.loads(line) for line in data.splitlines()]
    return records


class Host:
    """One netlog forwarding under a name; restartable on the same store."""

    def __init__(self, factory, name: str, urls: str, replicas: int, tmp_path: Path) -> None:
        self.factory = factory
        self.name = name
        self.log_dir = tmp_path / f"store-{name}"
        self.args = (
            "--nats", urls,
            "--nats-replicas", str(replicas),
            "--forward-host", name,
            "--log-dir", str(self.log_dir),
        )  # fmt: skip
        self.sent = 0
        self.process = factory(*self.args, name=name)

    def send(self, count: int) -> None:
        """``count`` JSON lines over TCP, then wait until all are on this host's disk."""
        body = b"".join(
            json.dumps({"event": f"{self.name} record {i}", "seq": i}).encode() + b"\n"
            for i in range(self.sent, self.sent + count)
        )
        with socket.create_connection(self.process.address("log_tcp"), timeout=10) as sock:
            sock.sendall(body)
        self.sent += count
        wait_for(lambda: len(stored(self.log_dir)) >= self.sent, 30, 0.05, f"{self.name}'s records")

    def kill_and_restart(self) -> None:
        self.process.kill()
        assert self.process.proc.returncode == -signal.SIGKILL
        self.process = self.factory(*self.args, name=self.name)


class Central:
    """The collector, restartable on the same store."""

    def __init__(self, tmp_path: Path, urls: str) -> None:
        self.workdir = tmp_path / "collector"
        self.urls = urls
        self.processes = []
        self.start()

    def start(self) -> None:
        # A short ack_wait: the batch a kill -9 left un-acked comes back in seconds.
        self.processes.append(start_collect(self.workdir, self.urls, "--nats-ack-wait", "3"))

    @property
    def process(self):
        return self.processes[-1]

    def kill_and_restart(self) -> None:
        self.process.kill()
        assert self.process.proc.returncode == -signal.SIGKILL
        self.start()

    def finish(self) -> None:
        for process in self.processes:
            process.finish()


def restart_all(cluster: NatsCluster) -> None:
    """Start every node again at once (one alone has no JetStream quorum to be healthy with)."""
    for node in cluster.nodes:
        node.start()
    deadline = time.monotonic() + STARTUP_LIMIT
    for node in cluster.nodes:
        node.wait_ready(deadline)


def assert_every_record_once(central: Central, hosts: list[Host]) -> None:
    expected = {}
    for host in hosts:
        records = stored(host.log_dir)
        assert len(records) == host.sent  # each host kept what it was sent
        expected.update({record["id"]: host.name for record in records})
    total = sum(host.sent for host in hosts)
    assert len(expected) == total

    def caught_up():
        return len(stored(central.process.log_dir)) >= total

    wait_for(caught_up, CATCH_UP, 0.25, f"{total} records at the collector")
    time.sleep(2)  # a duplicate arriving late would show now
    collected = stored(central.process.log_dir)
    counts = Counter(record["id"] for record in collected)
    assert [i for i, n in counts.items() if n > 1] == []
    assert len(collected) == total
    assert set(counts) == set(expected)
    assert all(record["host"] == expected[record["id"]] for record in collected)


def kill_collector_while_it_catches_up(central: Central, hosts: list[Host]) -> None:
    """Send a round, and kill -9 the collector as soon as part of it has reached its store."""
    before = len(stored(central.process.log_dir))
    for host in hosts:
        host.send(ROUND)
    wait_for(
        lambda: len(stored(central.process.log_dir)) > before, 60, 0.01, "the collector at work"
    )
    central.kill_and_restart()


@pytest.fixture
def central_factory(tmp_path):
    started = []

    def factory(urls: str) -> Central:
        central = Central(tmp_path, urls)
        started.append(central)
        return central

    yield factory
    for central in started:
        central.finish()


def test_two_hosts_one_collector_host_and_collector_killed(
    tmp_path, netlog_factory, central_factory
):
    """One node: a host and the collector each killed -9 and restarted; every record once."""
    with NatsCluster(tmp_path / "nats", 1) as cluster:
        hosts = [Host(netlog_factory, n, cluster.urls, 1, tmp_path) for n in ("alpha", "beta")]
        central = central_factory(cluster.urls)
        for host in hosts:
            host.send(ROUND)
        hosts[0].kill_and_restart()
        for host in hosts:
            host.send(ROUND)
        kill_collector_while_it_catches_up(central, hosts)
        for host in hosts:
            host.send(ROUND)
        assert_every_record_once(central, hosts)
        assert central.process.stop() == 0


def test_chaos_three_nodes_r3(tmp_path, netlog_factory, central_factory):
    """3 nodes, R3: a node lost, all of NATS down, a host and the collector killed -9."""
    with NatsCluster(tmp_path / "nats", 3) as cluster:
        hosts = [Host(netlog_factory, n, cluster.urls, 3, tmp_path) for n in ("alpha", "beta")]
        central = central_factory(cluster.urls)
        for host in hosts:
            host.send(ROUND)
        # One node of three killed while records flow, then back.
        cluster.nodes[2].kill()
        for host in hosts:
            host.send(ROUND)
        cluster.restart(cluster.nodes[2])
        # All of NATS down for a while: the hosts keep storing.
        for node in cluster.nodes:
            node.kill()
        for host in hosts:
            host.send(ROUND)
        time.sleep(5)
        restart_all(cluster)
        # A host killed -9 and restarted (its forwarder resumes from its cursor).
        hosts[1].send(ROUND)
        hosts[1].kill_and_restart()
        for host in hosts:
            host.send(ROUND)
        # The collector killed -9 while it catches up, and restarted.
        kill_collector_while_it_catches_up(central, hosts)
        for host in hosts:
            host.send(ROUND)
        assert_every_record_once(central, hosts)
        assert central.process.stop() == 0
