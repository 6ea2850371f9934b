"""Forwarding to a real NATS JetStream: every record once, through outages, kills and refusals.

Each test starts real nats-server processes (tests/integration/natscluster.py)
and a real ``python -m servers --nats ...``, sends JSON lines over TCP,
and reads the stream back with nats-py: the ids on the stream must be the
ids on disk, each once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import nats
import nats.js.api
import pytest
from natscluster import NatsCluster, nats_server_binary

from netlogproc import wait_for

pytestmark = pytest.mark.skipif(nats_server_binary() is None, reason="nats-server not installed")

SUBJECT = "netlog.records"


def send_lines(netlog, start: int, count: int) -> None:
    """``count`` JSON lines over one TCP connection, numbered from ``start``."""
    body = b"".join(
        json.dumps({"event": f"record {i}", "seq": i}).encode() + b"\n"
        for i in range(start, start + count)
    )
    with socket.create_connection(netlog.address("log_tcp"), timeout=10) as sock:
        sock.sendall(body)


def wait_stored(log_dir: Path, count: int, timeout: float = 30.0) -> None:
    """Wait until ``count`` records are on disk, in any of the store's files."""
    wait_for(lambda: len(disk_ids(log_dir)) >= count, timeout, 0.1, f"{count} records on disk")


def disk_ids(log_dir: Path) -> list[str]:
    """Every stored record's id, all files."""
    ids = []
    for path in sorted(log_dir.glob("records.jsonl*")):
        data = path.read_bytes()
        data = data[: data.rfind(b"\n") + 1]
        ids += [json.loads(line)["id"] for line in data.splitlines()]
    return ids


async def _read_stream(urls: str, stream: str) -> list[tuple[str, str, bytes]]:
    nc = await nats.connect(urls.split(","), connect_timeout=5)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(stream)).state.messages
        found: list[tuple[str, str, bytes]] = []
        if total == 0:
            return found
        sub = await js.subscribe(f"{SUBJECT}.>", stream=stream, ordered_consumer=True)
        deadline = time.monotonic() + 60
        while len(found) < total and time.monotonic() < deadline:
            msg = await sub.next_msg(timeout=10)
            found.append((msg.subject, (msg.headers or {}).get("Nats-Msg-Id", ""), msg.data))
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


def read_stream(urls: str, stream: str = "NETLOG") -> list[tuple[str, str, bytes]]:
    """(subject, Nats-Msg-Id, payload) of every message on the stream."""
    return asyncio.run(_read_stream(urls, stream))


async def _count(urls: str, stream: str) -> int:
    nc = await nats.connect(urls.split(","), connect_timeout=3, allow_reconnect=False)
    try:
        return (await nc.jetstream(timeout=3).stream_info(stream)).state.messages
    finally:
        await nc.close()


def stream_count(urls: str, stream: str = "NETLOG") -> int:
    """Messages on the stream now (-1 while it cannot be asked)."""
    try:
        return asyncio.run(_count(urls, stream))
    except Exception:
        return -1


def wait_count(urls: str, count: int, timeout: float = 60.0) -> None:
    wait_for(lambda: stream_count(urls) >= count, timeout, 0.25, f"{count} messages on the stream")


def forwarder_pid(netlog) -> int:
    """The sink's forwarder child."""

    def find():
        children = Path(f"/proc/{netlog.pid}/task/{netlog.pid}/children").read_text().split()
        for pid in children:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"netlog.forward" in cmdline:
                return int(pid)
        return None

    return wait_for(find, 15, what="the forwarder process")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def assert_exactly_once(urls: str, log_dir: Path, host: str) -> None:
    """The stream holds every stored record once: same ids, the stored line, the host's subject."""
    stored = disk_ids(log_dir)
    assert len(stored) == len(set(stored))
    messages = read_stream(urls)
    ids = [msg_id for _, msg_id, _ in messages]
    assert len(ids) == len(set(ids)), "a record is on the stream twice"
    assert sorted(ids) == sorted(stored)
    assert {subject for subject, _, _ in messages} == {f"{SUBJECT}.{host}"}
    for _, msg_id, payload in messages[:50]:
        assert json.loads(payload)["id"] == msg_id


@pytest.fixture
def single(tmp_path):
    cluster = NatsCluster(tmp_path / "nats", 1).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def trio(tmp_path):
    cluster = NatsCluster(tmp_path / "nats", 3).start()
    yield cluster
    cluster.stop()


class TestForwardNats:
    """Records stored by netlog reach JetStream once each."""

    def test_every_record_once_single_node(self, netlog_factory, single):
        """2,000 records over TCP: the stream holds each once, its id in Nats-Msg-Id."""
        netlog = netlog_factory("--nats", single.urls, "--forward-host", "web1.example")
        # It runs on CPU nobody else wants: the sink and its senders first.
        child = forwarder_pid(netlog)
        wait_for(lambda: os.sched_getscheduler(child) == os.SCHED_IDLE, 15, what="SCHED_IDLE")
        assert os.sched_getscheduler(netlog.pid) == os.SCHED_OTHER
        send_lines(netlog, 0, 2000)
        wait_stored(netlog.log_dir, 2000)
        wait_count(single.urls, 2000)
        assert_exactly_once(single.urls, netlog.log_dir, "web1_example")

        def metrics():
            url = "http://127.0.0.1:{}/metrics".format(netlog.ports["http"])
            with urllib.request.urlopen(url, timeout=10) as answer:
                text = answer.read().decode()
            return (
                text if 'netlog_forward_shipped_total{destination="nats"} 2000.0' in text else None
            )

        text = wait_for(metrics, 15, 0.2, "/metrics to show the records shipped")
        assert 'netlog_forward_behind_bytes{destination="nats"} 0.0' in text
        assert "netlog_forward_restarts_total 0.0" in text
        assert netlog.stop() == 0
        assert "forward to nats" not in netlog.stderr()
        assert "netlog forward: stopped: records shipped: nats 2000" in netlog.stderr()

    def test_three_node_r3_survives_a_node(self, netlog_factory, trio):
        """R3 on 3 nodes: a node killed and restarted mid-stream, nothing lost or doubled."""
        netlog = netlog_factory(
            "--nats",
            trio.urls,
            "--nats-replicas",
            "3",
            "--forward-host",
            "h3",
            "--max-bytes",
            "64KB",
            "--backups",
            "1000",
        )
        send_lines(netlog, 0, 1500)
        wait_count(trio.urls, 1500)
        trio.nodes[1].kill()
        send_lines(netlog, 1500, 1500)
        wait_stored(netlog.log_dir, 3000)
        time.sleep(1)
        trio.restart(trio.nodes[1])
        send_lines(netlog, 3000, 1000)
        wait_count(trio.urls, 4000, timeout=90)
        assert_exactly_once(trio.urls, netlog.log_dir, "h3")

    def test_nats_down_then_back_nothing_lost(self, netlog_factory, single):
        """All of NATS down while records arrive: shipped once it is back, the outage said once."""
        netlog = netlog_factory(
            "--nats", single.urls, "--forward-host", "h", "--max-bytes", "64KB", "--backups", "1000"
        )
        send_lines(netlog, 0, 500)
        wait_count(single.urls, 500)
        node = single.nodes[0]
        node.kill()
        for part in range(4):
            send_lines(netlog, 500 + part * 500, 500)
            time.sleep(0.5)
        wait_stored(netlog.log_dir, 2500)
        # Longer than a batch's ack timeout (10 s): the outage must be seen, not ridden out.
        wait_for(lambda: "unreachable" in netlog.stderr(), 30, 0.2, "the outage reported")
        time.sleep(3)
        single.restart(node)
        wait_count(single.urls, 2500, timeout=90)
        assert_exactly_once(single.urls, netlog.log_dir, "h")
        err = netlog.stderr()
        assert err.count("forward to nats: unreachable") == 1, err
        assert "shipping again" in err

    def test_kill9_forwarder_and_sink_nothing_lost_no_duplicates(
        self, netlog_factory, single, tmp_path
    ):
        """kill -9 of the forwarder mid-shipping, then of the sink: resumed, deduped by id."""
        log_dir = tmp_path / "shared-data"
        args = ("--nats", single.urls, "--forward-host", "k", "--log-dir", str(log_dir))
        netlog = netlog_factory(*args)
        send_lines(netlog, 0, 20000)
        child = forwarder_pid(netlog)
        wait_for(lambda: stream_count(single.urls) > 0, 30, 0.05, "some shipped")
        os.kill(child, signal.SIGKILL)
        send_lines(netlog, 20000, 2000)
        wait_stored(log_dir, 22000)
        wait_for(lambda: forwarder_pid(netlog) != child, 15, what="a new forwarder")
        netlog.kill()  # -9: the forwarder child gets SIGTERM from the kernel (PDEATHSIG)
        wait_for(lambda: not Path(f"/proc/{child}").exists(), 10, what="the old forwarder gone")
        netlog = netlog_factory(*args)
        send_lines(netlog, 22000, 1000)
        wait_count(single.urls, 23000, timeout=120)
        time.sleep(1.5)  # a resend past the cursor would show as an extra message now
        assert stream_count(single.urls) == 23000
        assert_exactly_once(single.urls, log_dir, "k")
        assert "restarts so far" in (tmp_path / "netlog0" / "stderr.txt").read_text()


class TestRefusals:
    """An engine that refuses is reported once and retried calmly; the sink goes on."""

    @pytest.fixture
    def auth_server(self, tmp_path):
        binary = nats_server_binary()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        log = (tmp_path / "auth-nats.log").open("wb")
        proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "auth"),
             "--user", "right", "--pass", "secret"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(lambda: _connectable(port), 20, 0.1, "nats-server with auth")
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            log.close()

    def test_ctrl_c_to_the_group_leaves_the_forwarder_to_the_sink(self, netlog_factory, single):
        """SIGINT to sink and forwarder alike: the forwarder waits for the sink's SIGTERM."""
        netlog = netlog_factory("--nats", single.urls)
        child = forwarder_pid(netlog)
        send_lines(netlog, 0, 100)
        wait_count(single.urls, 100)
        os.kill(child, signal.SIGINT)
        netlog.send_signal(signal.SIGINT)
        assert netlog.proc.wait(timeout=30) == 0
        err = netlog.stderr()
        assert "restarts so far" not in err, err
        assert "records shipped: nats 100" in err

    def test_wrong_credentials_reported_once_no_busy_loop(self, netlog_factory, auth_server):
        """Wrong password: one stderr line, retried with backoff, little CPU; sink unaffected."""
        url = f"nats://right:wrong@127.0.0.1:{auth_server}"
        netlog = netlog_factory("--nats", url)
        child = forwarder_pid(netlog)
        send_lines(netlog, 0, 100)
        wait_stored(netlog.log_dir, 100)
        # The server's "Authorization Violation" may be lost to its reset on
        # one attempt (the kernel drops unread data on RST); a retry hears it.
        wait_for(lambda: "nats: credentials" in netlog.stderr(), 30, what="credentials reported")
        before = cpu_seconds(child)
        time.sleep(8)
        used = cpu_seconds(child) - before
        assert used < 1.0, f"the failing forwarder used {used:.2f}s CPU in 8s"
        err = netlog.stderr()
        assert err.count("forward to nats: credentials") == 1, err
        send_lines(netlog, 100, 100)
        wait_stored(netlog.log_dir, 200)
        assert netlog.stop() == 0

    def test_full_stream_reported_once_then_ships_when_room(self, netlog_factory, single):
        """Room for 50 (discard new): 'stream full' said once; given room, all arrive."""
        asyncio.run(_make_stream(single.urls, max_msgs=50))
        netlog = netlog_factory("--nats", single.urls, "--forward-host", "f")
        send_lines(netlog, 0, 300)
        wait_stored(netlog.log_dir, 300)
        wait_for(lambda: "stream full" in netlog.stderr(), 30, what="the refusal reported")
        time.sleep(3)
        assert netlog.stderr().count("forward to nats: stream full") == 1, netlog.stderr()
        assert stream_count(single.urls) == 50
        asyncio.run(_make_stream(single.urls, max_msgs=-1, update=True))
        wait_count(single.urls, 300, timeout=90)
        assert_exactly_once(single.urls, netlog.log_dir, "f")


def _connectable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


async def _make_stream(urls: str, *, max_msgs: int, update: bool = False) -> None:
    nc = await nats.connect(urls.split(","))
    try:
        config = nats.js.api.StreamConfig(
            name="NETLOG",
            subjects=[f"{SUBJECT}.>"],
            max_msgs=max_msgs,
            discard=nats.js.api.DiscardPolicy.NEW,
        )
        js = nc.jetstream()
        if update:
            await js.update_stream(config)
        else:
            await js.add_stream(config)
    finally:
        await nc.close()


class TestTls:
    """A ``tls://`` NATS server with a private CA: verified with ``--nats-ca``, refused without."""

    @pytest.fixture
    def tls_server(self, tmp_path):
        from tlscerts import make_pki  # noqa: PLC0415 - the TLS tests' certificates

        pki = make_pki(tmp_path / "pki")
        extra = ("--tls", "--tlscert", str(pki.server_cert), "--tlskey", str(pki.server_key))
        with NatsCluster(tmp_path / "nats", 1, extra) as cluster:
            yield cluster, pki

    @staticmethod
    def stream_messages(url: str, ca: Path) -> int:
        import ssl  # noqa: PLC0415

        async def count() -> int:
            context = ssl.create_default_context(cafile=str(ca))
            nc = await nats.connect([url], tls=context, connect_timeout=3, allow_reconnect=False)
            try:
                return (await nc.jetstream(timeout=3).stream_info("NETLOG")).state.messages
            finally:
                await nc.close()

        try:
            return asyncio.run(count())
        except Exception:
            return -1

    def test_private_ca_verified_with_nats_ca(self, netlog_factory, tls_server):
        cluster, pki = tls_server
        url = f"tls://127.0.0.1:{cluster.nodes[0].port}"
        netlog = netlog_factory("--nats", url, "--nats-ca", str(pki.ca))
        send_lines(netlog, 0, 300)
        wait_stored(netlog.log_dir, 300)
        wait_for(lambda: self.stream_messages(url, pki.ca) == 300, 60, 0.25, "300 on the stream")
        assert netlog.stop() == 0

    def test_without_the_ca_the_server_is_refused_and_reported(self, netlog_factory, tls_server):
        cluster, pki = tls_server
        url = f"tls://127.0.0.1:{cluster.nodes[0].port}"
        netlog = netlog_factory("--nats", url)
        send_lines(netlog, 0, 10)
        wait_stored(netlog.log_dir, 10)
        wait_for(
            lambda: "certificate verify failed" in netlog.stderr().lower(),
            30,
            0.2,
            "the refusal reported",
        )
        assert self.stream_messages(url, pki.ca) in {-1, 0}
        assert netlog.stop() == 0
