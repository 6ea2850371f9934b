"""Prometheus metrics for ``GET /metrics``: netlog's own counters, read when scraped.

The hot path keeps counting in plain ``Counter`` objects (:mod:`netlog.stats`)
and attributes of the sinks and servers; nothing here runs per record.  A
custom collector turns those numbers into metric families at scrape time.
The one real prometheus_client metric is the flush-latency histogram,
observed once per flush by the runner.

Everything lives in a private :class:`~prometheus_client.CollectorRegistry`,
so the process-wide default registry (and whatever a host application put
in it) is never touched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from netlog.record import FORMATS
from netlog.stats import Stats

__all__ = ["CONTENT_TYPE", "FLUSH_BUCKETS", "Metrics"]

#: The ``Content-Type`` of :meth:`Metrics.render`'s output.
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

#: Flush latency buckets, seconds: a flush is usually well under a millisecond.
FLUSH_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

_LISTENERS: Final = ("log_tcp", "log_udp", "http")
_STREAM_LISTENERS: Final = ("log_tcp", "http")


class FileCounts(Protocol):
    """What the JSONL file sink tells (``JsonlFileSink``)."""

    @property
    def written(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def write_errors(self) -> int: ...
    @property
    def pending_bytes(self) -> int: ...
    @property
    def expired(self) -> int: ...


class ProbeCounts(Protocol):
    """What the UDP responder tells (``ResponderServer``)."""

    @property
    def answered(self) -> int: ...
    @property
    def rate_limited(self) -> int: ...
    @property
    def refused(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def health_checks(self) -> int: ...


class FeedCounts(Protocol):
    """What the live viewer's feed tells (``RecordFeed``)."""

    @property
    def subscribers(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def refused(self) -> int: ...
    @property
    def recent_bytes(self) -> int: ...


class GuardCounts(Protocol):
    """What the HTTP port's gate tells (``netlog.security.HttpGuard``)."""

    @property
    def auth_failures(self) -> int: ...
    @property
    def refused(self) -> Counter[str]: ...


class Metrics:
    """netlog's metrics: the shared :class:`Stats` plus whichever parts are running.

    ``files``, ``responder`` and ``feed`` are set by the runner once those
    exist; a part that is ``None`` (disabled) contributes no samples.
    ``draining`` is set when shutdown begins.
    """

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.files: FileCounts | None = None
        self.responder: ProbeCounts | None = None
        self.feed: FeedCounts | None = None
        self.guard: GuardCounts | None = None
        self.forward: Callable[[], dict[str, Any]] | None = None
        """The forwarder's status (its status file and the runner's counts), when forwarding."""
        self.compaction: Callable[[], tuple[int, int]] | None = None
        """Parquet files the history search's compaction wrote, and its failures."""
        self.workers: Callable[[], dict[str, dict[str, int]]] | None = None
        """Per worker process (``--workers``): ``records``, ``restarts``, ``lost``."""
        self.draining = False
        self.registry = CollectorRegistry(auto_describe=False)
        self.flush_seconds = Histogram(
            "netlog_flush_seconds",
            "Time one flush of the sinks (file write, console) took.",
            buckets=FLUSH_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Collector(self))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def _counter(name: str, text: str, label: str, counts: Counter[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, text, labels=[label])
    for key, value in sorted(counts.items()):
        family.add_metric([str(key)], value)
    return family


def _single(name: str, text: str, value: float, *, gauge: bool = False) -> Metric:
    if gauge:
        return GaugeMetricFamily(name, text, value=value)
    return CounterMetricFamily(name, text, value=value)


class _Collector(Collector):
    """Reads the counters when scraped; costs nothing between scrapes."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        s = m.stats
        s.refresh()  # the kernel's UDP drop counts are read when asked for
        received = Counter(dict.fromkeys(FORMATS, 0))
        received.update(s.received)
        yield _counter(
            "netlog_records_received", "Records decoded, by wire format.", "format", received
        )
        dropped = Counter(s.dropped)
        if m.files is not None and m.files.dropped:
            # The runner folds this into stats only after the HTTP listener
            # has closed, so no scrape counts it twice.
            dropped["disk_overflow"] += m.files.dropped
        yield _counter(
            "netlog_records_dropped", "Records or frames lost, by reason.", "reason", dropped
        )
        yield _counter(
            "netlog_bad_frames",
            "Undecodable input, by reason (also counted as dropped).",
            "reason",
            s.bad_frames,
        )
        yield _counter("netlog_notes", "Records kept but degraded, by reason.", "reason", s.notes)
        yield _counter(
            "netlog_kernel_dropped_datagrams",
            "Datagrams the kernel dropped for a full receive buffer, by listener.",
            "listener",
            s.kernel_dropped,
        )
        yield from self._connections(s)
        yield from self._http(s)
        yield from self._parts(m)
        if m.forward is not None:
            yield from _forward(m.forward())
        if m.compaction is not None:
            written, failed = m.compaction()
            yield _single(
                "netlog_compacted_files",
                "Parquet files written for the history search (rotated files, live-file segments).",
                written,
            )
            yield _single(
                "netlog_compaction_failures",
                "Compactions that failed (the JSONL is read instead; tried again later).",
                failed,
            )
        if m.workers is not None:
            yield from _workers(m.workers())
        yield _single(
            "netlog_draining",
            "1 while shutting down (GET /health answers 503).",
            m.draining,
            gauge=True,
        )

    @staticmethod
    def _connections(s: Stats) -> Iterator[Metric]:
        total = Counter(dict.fromkeys(_STREAM_LISTENERS, 0))
        total.update(s.connections_total)
        yield _counter(
            "netlog_connections", "Connections accepted, by listener.", "listener", total
        )
        open_now = GaugeMetricFamily(
            "netlog_connections_open", "Connections open now, by listener.", labels=["listener"]
        )
        for listener in sorted(set(_STREAM_LISTENERS) | set(s.connections_open)):
            open_now.add_metric([listener], s.connections_open.get(listener, 0))
        yield open_now
        bytes_in = Counter(dict.fromkeys(_LISTENERS, 0))
        bytes_in.update(s.bytes_in)
        yield _counter(
            "netlog_received_bytes", "Bytes read from senders, by listener.", "listener", bytes_in
        )

    @staticmethod
    def _http(s: Stats) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "netlog_http_requests",
            "HTTP requests answered, by route and status code.",
            labels=["route", "code"],
        )
        for (route, code), value in sorted(s.http_requests.items()):
            requests.add_metric([route, str(code)], value)
        yield requests

    @staticmethod
    def _parts(m: Metrics) -> Iterator[Metric]:
        if m.guard is not None:
            yield _single(
                "netlog_http_auth_failures",
                "HTTP requests refused 401 for a missing or wrong token, and failed logins.",
                m.guard.auth_failures,
            )
            refused = Counter(dict.fromkeys(("host", "cross_site", "auth", "throttled"), 0))
            refused.update(m.guard.refused)
            yield _counter(
                "netlog_http_refused",
                "HTTP requests refused by the gate, by reason (host, cross_site, auth, throttled).",
                "reason",
                refused,
            )
        if m.files is not None:
            f = m.files
            yield _single("netlog_records_written", "Records written to records.jsonl.", f.written)
            yield _single(
                "netlog_file_write_errors",
                "Failed writes, renames and fsyncs of records.jsonl.",
                f.write_errors,
            )
            yield _single(
                "netlog_store_expired",
                "Rotated files deleted for --max-age.",
                f.expired,
            )
            yield _single(
                "netlog_file_pending_bytes",
                "Bytes accepted but not yet written to records.jsonl.",
                f.pending_bytes,
                gauge=True,
            )
        if m.responder is not None:
            r = m.responder
            probes = CounterMetricFamily(
                "netlog_probes", "UDP responder datagrams, by outcome.", labels=["outcome"]
            )
            probes.add_metric(["answered"], r.answered)
            probes.add_metric(["rate_limited"], r.rate_limited)
            probes.add_metric(["refused"], r.refused)
            probes.add_metric(["error"], r.errors)
            probes.add_metric(["health_check"], r.health_checks)
            yield probes
        if m.feed is not None:
            yield _single(
                "netlog_viewer_clients",
                "Live viewer pages connected now.",
                m.feed.subscribers,
                gauge=True,
            )
            yield _single(
                "netlog_viewer_dropped_records",
                "Records not sent to viewer pages too slow to take them.",
                m.feed.dropped,
            )
            yield _single(
                "netlog_viewer_refused",
                "Viewer pages refused (503) because the most served at once were open.",
                m.feed.refused,
            )
            yield _single(
                "netlog_viewer_recent_bytes",
                "Bytes of the recent records the viewer keeps for new pages.",
                m.feed.recent_bytes,
                gauge=True,
            )


def _workers(counts: dict[str, dict[str, int]]) -> Iterator[Metric]:
    """Per worker process: the sums above hide a worker that stopped taking its share."""
    families = (
        ("records", "netlog_worker_records", "Records a worker handed to the writer."),
        ("restarts", "netlog_worker_restarts", "Times a worker died and was started again."),
        ("lost", "netlog_worker_lost_records", "Records a worker had decoded when it died."),
        (
            "handed",
            "netlog_worker_connections_handed",
            "Connections a worker accepted and passed to a less-loaded one.",
        ),
    )
    for key, name, text in families:
        family = CounterMetricFamily(name, text, labels=["worker"])
        for worker, values in sorted(counts.items(), key=lambda item: int(item[0])):
            family.add_metric([worker], values.get(key, 0))
        yield family
    yield _single(
        "netlog_connections_handed",
        "Connections passed at accept from one worker to a less-loaded one, all workers.",
        sum(values.get("handed", 0) for values in counts.values()),
    )


def _forward(status: dict[str, Any]) -> Iterator[Metric]:
    """The forwarder's metrics, from the status file it writes every second."""
    shipped = CounterMetricFamily(
        "netlog_forward_shipped", "Records a destination took.", labels=["destination"]
    )
    behind = GaugeMetricFamily(
        "netlog_forward_behind_bytes",
        "Stored bytes not yet shipped, by destination.",
        labels=["destination"],
    )
    corrupt = CounterMetricFamily(
        "netlog_forward_corrupt_lines",
        "Stored lines skipped as not a record, by destination.",
        labels=["destination"],
    )
    failures = CounterMetricFamily(
        "netlog_forward_failures",
        "Batches or connections a destination refused, by kind.",
        labels=["destination", "kind"],
    )
    destinations = status.get("destinations")
    for name, counts in sorted((destinations or {}).items()):
        shipped.add_metric([name], counts.get("shipped", 0))
        behind.add_metric([name], counts.get("behind_bytes", 0))
        corrupt.add_metric([name], counts.get("corrupt", 0))
        for kind, value in sorted((counts.get("failures") or {}).items()):
            failures.add_metric([name, kind], value)
    yield from (shipped, behind, corrupt, failures)
    yield _single(
        "netlog_forward_restarts",
        "Times the forwarder process died and was started again.",
        status.get("restarts", 0),
    )
    yield _single(
        "netlog_forward_unshipped_deleted",
        "Rotated files deleted before they were forwarded (store over --forward-backlog).",
        status.get("unshipped_deleted", 0),
    )
