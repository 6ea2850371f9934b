"""``netlog collect`` against a real JetStream (one node, and a 3-node cluster with an R3 stream).

Records are published as a host's forwarder publishes them: the stored JSON
line, on ``netlog.records.<host>``, with ``Nats-Msg-Id`` set to its id.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from collectproc import (
    consumer_info,
    make_records,
    publish,
    start_collect,
    stored_line,
)
from natscluster import NatsCluster, nats_server_binary

from netlogproc import http_get as get
from netlogproc import wait_for

pytestmark = pytest.mark.skipif(nats_server_binary() is None, reason="nats-server not installed")

TIMEOUT = 10.0


def metric(server, name: str) -> float:
    """One unlabelled sample of ``/metrics``."""
    _status, text = get(server, "/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def ids_once(records: list[dict]) -> Counter:
    """How often each id is stored (every value must be 1)."""
    return Counter(record["id"] for record in records)


@pytest.fixture
def nats1(tmp_path):
    with NatsCluster(tmp_path / "nats", 1) as cluster:
        yield cluster


@pytest.fixture
def collectors(tmp_path):
    """Start collectors; each is stopped at teardown."""
    started = []

    def factory(urls: str, *args: str, env=None, name: str = "collect"):
        server = start_collect(tmp_path / name, urls, *args, env=env)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.finish()


class TestOneNode:
    """Single JetStream server: the records, their keys and the HTTP side."""

    def test_records_arrive_once_with_host_and_their_own_keys(self, nats1, collectors):
        web = make_records("web1", 150)
        db = make_records("db", 60)
        # A resend JetStream's duplicate window drops (same Nats-Msg-Id), and
        # one it cannot (a new message, as after the window): both once on disk.
        again = [(subject, data, record_id) for subject, data, record_id in web[:10]]
        resent = [(subject, data, None) for subject, data, _id in db[:10]]
        publish(nats1.urls, web + db + again + resent)
        collector = collectors(nats1.urls)
        records = collector.wait_records(210)
        time.sleep(0.5)  # nothing more may come
        records = collector.records()
        assert len(records) == 210
        assert set(ids_once(records).values()) == {1}
        published = {record_id: json.loads(data) for _s, data, record_id in web + db}
        assert set(ids_once(records)) == set(published)
        for record in records:
            original = published[record["id"]]
            assert record["host"] == ("web1" if record["message"].startswith("web1") else "db")
            # Every original key as it was, and host just before the id.
            assert {k: v for k, v in record.items() if k != "host"} == original
            assert list(record)[-2:] == ["host", "id"]
        assert metric(collector, "netlog_collect_duplicates_total") == 10
        assert collector.stop() == 0
        info = consumer_info(nats1.urls)
        assert info.num_ack_pending == 0
        assert info.num_pending == 0

    def test_query_api_and_facets_by_host(self, nats1, collectors):
        publish(nats1.urls, make_records("web1", 30) + make_records("db", 12))
        collector = collectors(nats1.urls)
        collector.wait_records(42)
        status, page = get(collector, "/api/records", {"q": "host=db", "limit": 100})
        assert status == 200
        assert len(page["records"]) == 12
        assert {record["host"] for record in page["records"]} == {"db"}
        status, facets = get(collector, "/api/facets", {"field": "host"})
        assert status == 200
        assert {v["value"]: v["count"] for v in facets["values"]} == {"web1": 30, "db": 12}
        status, page = get(collector, "/api/records", {"q": "-host=web1 db", "limit": 100})
        assert len(page["records"]) == 12

    def test_junk_is_counted_and_terminated(self, nats1, collectors):
        junk = [
            ("netlog.records.web1", b"not json at all", None),
            ("netlog.records.web1", b"[1, 2, 3]", None),
            ("netlog.records.web1", b'{"message": "no id, no times"}', None),
            ("netlog.records.web1", stored_line("short-id", "bad id"), None),
        ]
        good = make_records("web1", 20)
        publish(nats1.urls, good[:10] + junk + good[10:])
        collector = collectors(nats1.urls)
        collector.wait_records(20)
        wait_for(lambda: metric(collector, "netlog_collect_junk_total") == 4, what="junk counted")
        assert len(collector.records()) == 20
        info = wait_for(
            lambda: (i := consumer_info(nats1.urls)).num_ack_pending == 0 and i,
            what="every message acked or terminated",
        )
        assert info.num_pending == 0
        assert collector.stop() == 0
        assert "4 bad frames" in collector.stderr()

    def test_killed_between_write_and_ack_then_restarted(self, nats1, collectors):
        """kill -9 after the fsync, before the ack: delivered again, found in the store, skipped."""
        first = make_records("web1", 100)
        publish(nats1.urls, first)
        collector = collectors(
            nats1.urls, "--nats-ack-wait", "2", env={"NETLOG_COLLECT_ACK_DELAY": "60"}
        )
        collector.wait_records(100)
        # Written and fsynced, and JetStream has not had one ack: the crash lands in between.
        info = consumer_info(nats1.urls)
        assert info.ack_floor.stream_seq == 0
        assert info.num_ack_pending == 100
        collector.kill()
        assert collector.proc.returncode == -signal.SIGKILL
        again = collectors(nats1.urls, "--nats-ack-wait", "2", name="collect")
        # The ids come from the store's tail (the line follows the ready file,
        # in the same stderr file as the first run's "0 ids" line).
        wait_for(
            lambda: "(100 ids remembered from the store)" in again.stderr(),
            what="the restarted consumer's start line",
        )
        wait_for(
            lambda: metric(again, "netlog_collect_duplicates_total") >= 100,
            timeout=30,
            what="the redelivered batch skipped",
        )
        second = make_records("web1", 50, "after")
        publish(nats1.urls, second)
        again.wait_records(150)
        wait_for(lambda: consumer_info(nats1.urls).num_ack_pending == 0, what="all acked")
        records = again.records()
        assert len(records) == 150
        assert set(ids_once(records).values()) == {1}
        assert set(ids_once(records)) == {record_id for *_rest, record_id in first + second}
        assert metric(again, "netlog_collect_records_total") == 50

    def test_sigterm_finishes_the_batch_and_exits_0(self, nats1, collectors):
        publish(nats1.urls, make_records("web1", 400))
        collector = collectors(nats1.urls)
        collector.wait_records(1)
        assert collector.stop() == 0
        stored = collector.records()
        # Every delivered message was acked before the exit (the server may take
        # a moment to apply the last acks), and what was acked is on disk.
        info = wait_for(
            lambda: (i := consumer_info(nats1.urls)).num_ack_pending == 0 and i,
            what="the last batch's acks applied",
        )
        assert 0 < info.ack_floor.stream_seq <= len(stored)
        again = collectors(nats1.urls, name="collect")
        again.wait_records(400)
        time.sleep(0.5)
        records = again.records()
        assert len(records) == 400
        assert set(ids_once(records).values()) == {1}

    def test_started_before_the_stream_exists_it_waits_then_collects(self, nats1, collectors):
        collector = collectors(nats1.urls)
        wait_for(lambda: "stream not found" in collector.stderr(), what="the wait reported")
        publish(nats1.urls, make_records("late", 25))
        assert len(collector.wait_records(25, timeout=30)) == 25
        assert collector.stderr().count("stream not found") <= 2  # rate limited, not a loop
        assert collector.stop() == 0

    def test_sigterm_while_nats_is_down_exits_0(self, nats1, collectors):
        publish(nats1.urls, make_records("web1", 20))
        collector = collectors(nats1.urls)
        collector.wait_records(20)
        nats1.nodes[0].kill()
        time.sleep(1.5)  # the consumer is now reconnecting
        assert collector.stop(timeout=20) == 0
        assert "20 records written" in collector.stderr()

    def test_collect_without_nats_is_one_line_and_exit_2(self, tmp_path):
        done = subprocess.run(
            [sys.executable, "-m", "netlog.cli", "collect", "--log-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 2
        assert "--nats" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


class TestCluster:
    """A 3-node cluster, an R3 stream, a node killed and restarted while records flow."""

    def test_r3_node_loss_exactly_once(self, tmp_path, collectors):
        with NatsCluster(tmp_path / "nats3", 3) as cluster:
            batches = [make_records(f"host{i % 2}", 100, f"b{i}-") for i in range(4)]
            publish(cluster.urls, batches[0], replicas=3)
            collector = collectors(cluster.urls)
            collector.wait_records(100)
            victim = cluster.nodes[0]
            victim.kill()
            others = ",".join(node.url for node in cluster.nodes[1:])
            publish(others, batches[1], replicas=3)
            collector.wait_records(200, timeout=60)
            cluster.restart(victim)
            publish(cluster.urls, batches[2], replicas=3)
            cluster.nodes[1].kill()
            publish(",".join(n.url for n in (cluster.nodes[0], cluster.nodes[2])), batches[3])
            cluster.restart(cluster.nodes[1])
            collector.wait_records(400, timeout=60)
            assert collector.stop() == 0
            records = collector.records()
            assert len(records) == 400
            assert set(ids_once(records).values()) == {1}
            expected = {record_id for batch in batches for *_rest, record_id in batch}
            assert set(ids_once(records)) == expected
            assert {r["host"] for r in records} == {"host0", "host1"}
