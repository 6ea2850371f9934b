from types import SimpleNamespace

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from netlog.metrics import CONTENT_TYPE, Metrics
from netlog.stats import Stats


def samples(metrics):
    """{(sample name, frozenset of labels): value} from the exposition text."""
    text = metrics.render().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(found, name, **labels):
    return found[(name, frozenset(labels.items()))]


class TestMetrics:
    """netlog's counters as Prometheus text, read at scrape time."""

    def test_counters_from_stats(self):
        stats = Stats()
        stats.received.update({"pickle": 5, "json": 3})
        stats.dropped["bad_frame"] += 1
        stats.bad_frames["bad_frame"] += 1
        stats.notes["json_as_text"] += 2
        stats.connections_total["log_tcp"] += 4
        stats.connections_open["log_tcp"] += 1
        stats.bytes_in["log_udp"] += 99
        stats.http_requests[("/log", 202)] += 3
        found = samples(Metrics(stats))
        assert value(found, "netlog_records_received_total", format="pickle") == 5
        assert value(found, "netlog_records_received_total", format="json") == 3
        assert value(found, "netlog_records_received_total", format="http") == 0
        assert value(found, "netlog_records_dropped_total", reason="bad_frame") == 1
        assert value(found, "netlog_bad_frames_total", reason="bad_frame") == 1
        assert value(found, "netlog_notes_total", reason="json_as_text") == 2
        assert value(found, "netlog_connections_total", listener="log_tcp") == 4
        assert value(found, "netlog_connections_open", listener="log_tcp") == 1
        assert value(found, "netlog_connections_open", listener="http") == 0
        assert value(found, "netlog_received_bytes_total", listener="log_udp") == 99
        assert value(found, "netlog_http_requests_total", route="/log", code="202") == 3
        assert value(found, "netlog_draining") == 0

    def test_scrape_reads_current_values(self):
        stats = Stats()
        metrics = Metrics(stats)
        assert value(samples(metrics), "netlog_records_received_total", format="text") == 0
        stats.received["text"] += 7
        metrics.draining = True
        found = samples(metrics)
        assert value(found, "netlog_records_received_total", format="text") == 7
        assert value(found, "netlog_draining") == 1

    def test_parts(self):
        metrics = Metrics(Stats())
        metrics.files = SimpleNamespace(
            written=10, dropped=2, write_errors=1, pending_bytes=512, expired=3
        )
        metrics.responder = SimpleNamespace(
            answered=4, rate_limited=2, refused=1, errors=6, health_checks=9
        )
        metrics.feed = SimpleNamespace(subscribers=3, dropped=8, refused=5, recent_bytes=4096)
        metrics.flush_seconds.observe(0.002)
        found = samples(metrics)
        assert value(found, "netlog_records_written_total") == 10
        assert value(found, "netlog_records_dropped_total", reason="disk_overflow") == 2
        assert value(found, "netlog_file_write_errors_total") == 1
        assert value(found, "netlog_file_pending_bytes") == 512
        assert value(found, "netlog_probes_total", outcome="answered") == 4
        assert value(found, "netlog_probes_total", outcome="rate_limited") == 2
        assert value(found, "netlog_probes_total", outcome="refused") == 1
        assert value(found, "netlog_probes_total", outcome="error") == 6
        assert value(found, "netlog_probes_total", outcome="health_check") == 9
        assert value(found, "netlog_store_expired_total") == 3
        assert value(found, "netlog_viewer_clients") == 3
        assert value(found, "netlog_viewer_dropped_records_total") == 8
        assert value(found, "netlog_viewer_refused_total") == 5
        assert value(found, "netlog_viewer_recent_bytes") == 4096
        assert value(found, "netlog_flush_seconds_count") == 1
        assert value(found, "netlog_flush_seconds_bucket", le="0.0025") == 1
        assert value(found, "netlog_flush_seconds_bucket", le="0.001") == 0

    def test_absent_parts_have_no_samples(self):
        found = samples(Metrics(Stats()))
        names = {name for name, _ in found}
        assert "netlog_records_written_total" not in names
        assert "netlog_probes_total" not in names

    def test_private_registry(self):
        Metrics(Stats())
        Metrics(Stats())  # a second one would clash in a shared registry
        assert REGISTRY.get_sample_value("netlog_flush_seconds_count") is None
        assert CONTENT_TYPE.startswith("text/plain")
