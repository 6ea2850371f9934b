"""Protocol ingest cost, side by side: the same records as JSON lines, GELF, forward and OTLP.

The question (issue 18, "Speed"): does a record cost netlog about as much
whichever way it arrives?  The goal is every protocol's server CPU per
record within 1.5x of netlog's own JSON lines over TCP.

The same ``--records`` records (a message, a level, a logger, four fields,
every tenth one with a traceback) are rendered, before any clock starts,
into each wire form as its real senders send it:

* ``json``: structlog ``JSONRenderer`` lines over TCP (the reference);
* ``json_udp``: the same lines, one datagram each (netlog's own UDP
  cost, the floor for GELF over UDP; not a goal row);
* ``gelf_udp`` / ``gelf_udp_zlib``: graypy's GELF object, one datagram a
  record, plain and zlib-compressed (graypy's default, ``compress=True``);
* ``gelf_tcp``: the same objects NUL-terminated over TCP;
* ``fluent_message``: Docker's ``fluentd`` driver: one Message-mode frame
  ``[tag, int time, {container_id, container_name, source, log}, {}]`` a
  printed line (fluent-logger-golang's ``EncodeData``: one ``Write`` per
  line, integer seconds unless ``fluentd-sub-second-precision``); the line
  is the application's JSON line, as a containerised structlog prints it;
* ``fluent_packed``: Fluent Bit's ``out_forward``: PackedForward frames of
  512 ``[EventTime, record]`` entries with the ``size`` option;
* ``otlp``: ``ExportLogsServiceRequest`` protobuf bodies of 512 records, as
  the OpenTelemetry SDK's ``BatchLogRecordProcessor`` exports them (its
  ``max_export_batch_size``), one scope per logger, POSTed on one
  keep-alive connection.

A trial starts a real ``python -m servers`` (``bench/harness.py``: pinned to
one core, every port ephemeral, ``--flush-interval 0.1``), sends one
protocol's bytes from this process (pinned to the other core: one
``sendall`` of the whole pre-rendered stream for TCP, one ``sendto`` a
datagram, one request a batch for OTLP) and waits until ``records.jsonl``
holds every record.  The metric is the server process's CPU seconds
(``/proc/PID/stat``) over that span divided by the records; records/s is
the records over the wall time (for UDP, the sender's pacing sets it: only
the CPU column compares there).  UDP is paced so the kernel drops nothing:
the sender watches the socket's receive queue in ``/proc/net/udp`` and
waits while it holds more than 1 MiB; the kernel's drop count and the
server's exit summary are checked after each trial.  Protocols alternate
(A B C... A B C...), a fresh server per trial; the table shows medians.

``--decode-only`` times the decoders alone, in this process, on the same
frames (no sockets, no store); ``--profile NAME`` runs one of them under
cProfile; ``--trees old,new`` alternates servers run from two source trees
(``git archive REV | tar -x -C /tmp/old``), one table each.

    PYTHONPATH=. python bench/protocols.py --records 60000 --trials 5
    PYTHONPATH=/tmp/old python bench/protocols.py --decode-only   # the old decoders
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import http.client
import itertools
import json
import os
import pstats
import socket
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import orjson

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
from ingest import LineCounter  # noqa: E402

PROTOCOLS = (
    "json",
    "json_udp",
    "gelf_udp",
    "gelf_udp_zlib",
    "gelf_tcp",
    "fluent_message",
    "fluent_packed",
    "otlp",
)
#: The ready-file key of the port each protocol goes to.
PORT = {
    "json": "log_tcp",
    "json_udp": "log_udp",
    "gelf_udp": "gelf_udp",
    "gelf_udp_zlib": "gelf_udp",
    "gelf_tcp": "gelf_tcp",
    "fluent_message": "fluent",
    "fluent_packed": "fluent",
    "otlp": "otlp",
}
#: The protocols sent as datagrams.
UDP = frozenset(("json_udp", "gelf_udp", "gelf_udp_zlib"))
#: The goal: server CPU per record within this many times JSON lines'.
GOAL = 1.5
#: Records a batch for OTLP (the SDK's BatchLogRecordProcessor) and PackedForward.
BATCH = 512
#: The UDP sender waits while the server's socket holds more than this.
UDP_QUEUE_LIMIT = 1 << 20
UDP_BURST = 32

LEVELS = ("debug", "info", "info", "info", "warning", "error")
#: Python level numbers, syslog severities and OTLP severity numbers of each.
PY_LEVEL = {"debug": 10, "info": 20, "warning": 30, "error": 40}
SYSLOG = {"debug": 7, "info": 6, "warning": 4, "error": 3}
OTLP_SEVERITY = {"debug": 5, "info": 9, "warning": 13, "error": 17}
LOGGERS = ("app.http", "app.db", "app.auth", "worker.jobs")
HOST = "web-1"
CONTAINER_ID = "3e8a437d25caa93d4d29f52592c1be4ac08a7d5b7360431b3759f2f9180a575b"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/handlers.py", line 42, in handle\n'
    "    item = store.fetch(item_id)\n"
    '  File "/srv/app/store.py", line 117, in fetch\n'
    "    return self._rows[item_id]\n"
    "KeyError: {i}"
)


# --- the records and their wire forms ------------------------------------------


def make_records(count: int, t0: float) -> list[dict[str, Any]]:
    """``count`` application records: what each sender is given to send."""
    out = []
    for i in range(count):
        level = LEVELS[i % len(LEVELS)]
        record: dict[str, Any] = {
            "message": f"request GET /api/items/{i} handled",
            "level": level,
            "logger": LOGGERS[i % len(LOGGERS)],
            "ts": t0 + i / 1000,
            "fields": {
                "user": f"user{i % 317}",
                "request_id": f"{i:016x}",
                "duration_ms": (i % 1000) / 10,
                "status": 200 if i % 13 else 500,
            },
            "exc": TRACEBACK.format(i=i) if i % 10 == 9 else None,
        }
        out.append(record)
    return out


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}Z"


def json_line(record: dict[str, Any]) -> bytes:
    """structlog's ``JSONRenderer`` output (``add_log_level``, ``TimeStamper``, exc as text)."""
    event = {
        "event": record["message"],
        **record["fields"],
        "logger": record["logger"],
        "level": record["level"],
        "timestamp": _iso(record["ts"]),
    }
    if record["exc"]:
        event["exception"] = record["exc"]
    return orjson.dumps(event)


def gelf_payload(record: dict[str, Any]) -> bytes:
    """graypy's GELF object for the record (``debugging_fields`` off, its logger as ``_logger``)."""
    obj: dict[str, Any] = {
        "version": "1.1",
        "host": HOST,
        "short_message": record["message"],
        "timestamp": record["ts"],
        "level": SYSLOG[record["level"]],
        "_logger": record["logger"],
        **{f"_{key}": value for key, value in record["fields"].items()},
    }
    if record["exc"]:
        obj["full_message"] = record["exc"]
    return orjson.dumps(obj)


def docker_body(record: dict[str, Any]) -> dict[str, str]:
    """What Docker's ``fluentd`` driver sends for one line the container printed."""
    return {
        "container_id": CONTAINER_ID,
        "container_name": "/web-1",
        "source": "stderr" if record["level"] == "error" else "stdout",
        "log": json_line(record).decode(),
    }


def fluent_message(record: dict[str, Any]) -> bytes:
    """fluent-logger-golang's Message frame, as Docker's driver writes it (an empty option map)."""
    return msgpack.packb(["docker.web", int(record["ts"]), docker_body(record), {}])


def event_time(ts: float) -> msgpack.ExtType:
    seconds = int(ts)
    return msgpack.ExtType(
        0, seconds.to_bytes(4, "big") + int((ts - seconds) * 1e9).to_bytes(4, "big")
    )


def fluent_packed(records: list[dict[str, Any]]) -> bytes:
    """One PackedForward frame, as Fluent Bit's ``out_forward`` sends a chunk."""
    entries = b"".join(msgpack.packb([event_time(r["ts"]), docker_body(r)]) for r in records)
    return msgpack.packb(["docker.web", entries, {"size": len(records)}], use_bin_type=True)


def otlp_body(records: list[dict[str, Any]]) -> bytes:
    """One ``ExportLogsServiceRequest`` as the SDK's OTLP/HTTP exporter encodes a batch."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (  # noqa: PLC0415
        ExportLogsServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: PLC0415

    def kv(key: str, value: Any) -> KeyValue:
        if isinstance(value, str):
            return KeyValue(key=key, value=AnyValue(string_value=value))
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        return KeyValue(key=key, value=AnyValue(double_value=value))

    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(
        [kv("service.name", "web"), kv("host.name", HOST), kv("telemetry.sdk.language", "python")]
    )
    scopes = {}
    for record in records:
        scope = scopes.get(record["logger"])
        if scope is None:
            scope = scopes[record["logger"]] = resource_logs.scope_logs.add()
            scope.scope.name = record["logger"]
        log = scope.log_records.add()
        nanos = int(record["ts"] * 1e9)
        log.time_unix_nano = nanos
        log.observed_time_unix_nano = nanos
        log.severity_number = OTLP_SEVERITY[record["level"]]  # type: ignore[assignment]
        log.severity_text = record["level"].upper()
        log.body.string_value = record["message"]
        log.attributes.extend(kv(key, value) for key, value in record["fields"].items())
        if record["exc"]:
            log.attributes.extend(
                [
                    kv("exception.type", "KeyError"),
                    kv("exception.message", record["exc"].rsplit(": ", 1)[1]),
                    kv("exception.stacktrace", record["exc"]),
                ]
            )
    return request.SerializeToString()


def render(protocol: str, records: list[dict[str, Any]]) -> list[bytes]:
    """The frames (TCP), datagrams (UDP) or bodies (OTLP) of ``records`` in ``protocol``."""
    batches = [records[k : k + BATCH] for k in range(0, len(records), BATCH)]
    if protocol == "json":
        return [json_line(r) + b"\n" for r in records]
    if protocol == "json_udp":
        return [json_line(r) for r in records]
    if protocol == "gelf_udp":
        return [gelf_payload(r) for r in records]
    if protocol == "gelf_udp_zlib":
        return [zlib.compress(gelf_payload(r)) for r in records]
    if protocol == "gelf_tcp":
        return [gelf_payload(r) + b"\0" for r in records]
    if protocol == "fluent_message":
        return [fluent_message(r) for r in records]
    if protocol == "fluent_packed":
        return [fluent_packed(b) for b in batches]
    if protocol == "otlp":
        return [otlp_body(b) for b in batches]
    raise ValueError(protocol)


# --- sending -------------------------------------------------------------------


def send_stream(port: int, frames: list[bytes], timeout: float) -> None:
    """The whole stream in one ``sendall``: the kernel, not this process, paces it."""
    with socket.create_connection((harness.HOST, port), timeout=timeout) as sock:
        sock.sendall(b"".join(frames))


def udp_queue(port: int) -> tuple[int, int]:
    """Bytes queued on, and datagrams dropped by, the UDP socket bound to ``port`` (127.0.0.1)."""
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        cols = line.split()
        if cols[1] == local:
            return int(cols[4].split(":")[1], 16), int(cols[-1])
    return 0, 0


def send_datagrams(port: int, frames: list[bytes], deadline: float) -> None:
    """One ``sendto`` a datagram, in bursts, waiting while the server's queue is full."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        address = (harness.HOST, port)
        for start in range(0, len(frames), UDP_BURST):
            while udp_queue(port)[0] > UDP_QUEUE_LIMIT:
                if time.monotonic() > deadline:
                    raise TimeoutError("the server's UDP queue did not drain")
                time.sleep(0.0005)
            for frame in frames[start : start + UDP_BURST]:
                sock.sendto(frame, address)


def send_otlp(port: int, bodies: list[bytes], timeout: float) -> None:
    """One POST a batch on one keep-alive connection, each answer read, as the exporter does."""
    conn = http.client.HTTPConnection(harness.HOST, port, timeout=timeout)
    try:
        for body in bodies:
            conn.request(
                "POST",
                "/v1/logs",
                body,
                {
                    "Content-Type": "application/x-protobuf",
                    "User-Agent": "OTel-OTLP-Exporter-Python",
                },
            )
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                raise RuntimeError(f"OTLP answered {response.status}: {answer[:200]!r}")
    finally:
        conn.close()


# --- one trial -------------------------------------------------------------------


@dataclass
class Trial:
    """One protocol's run on a fresh server."""

    protocol: str
    records: int
    lines: int
    seconds: float
    server_cpu: float
    load: float
    kernel_dropped: int
    summary: str
    tree: str

    @property
    def us_per_record(self) -> float:
        return self.server_cpu / self.records * 1e6

    @property
    def per_second(self) -> float:
        return self.records / self.seconds


def run_trial(
    protocol: str,
    frames: list[bytes],
    count: int,
    workdir: Path,
    timeout: float,
    tree: Path = harness.ROOT,
) -> Trial:
    """Start a server from ``tree``, send ``frames``, wait for ``count`` lines; the server's CPU."""
    load = os.getloadavg()[0]
    flush = ("--flush-interval", harness.NETLOG_INGEST_FLUSH)
    with harness.serving("netlog", workdir, flush, tree=tree) as server:
        assert server.out is not None
        port = server.ports[PORT[protocol]]
        time.sleep(0.3)  # start-up work (imports done, store opened) is not the trial's
        counter = LineCounter(server.out)
        cpu0 = server.cpu_seconds()
        start = time.monotonic()
        deadline = start + timeout
        if protocol == "otlp":
            send_otlp(port, frames, timeout)
        elif protocol in UDP:
            send_datagrams(port, frames, deadline)
        else:
            send_stream(port, frames, timeout)
        lines = counter.poll()
        while lines < count and time.monotonic() < deadline:
            time.sleep(0.002)
            lines = counter.poll()
        seconds = time.monotonic() - start
        cpu = server.cpu_seconds() - cpu0
        counter.close()
        dropped = udp_queue(port)[1] if protocol in UDP else 0
    summary = next(
        (line for line in server.stderr_text.splitlines() if "records written" in line), ""
    )
    return Trial(protocol, count, lines, seconds, cpu, load, dropped, summary.strip(), str(tree))


# --- decoders alone ----------------------------------------------------------------


def decoder_of(protocol: str) -> Callable[[list[bytes]], int]:
    """A function feeding ``frames`` to ``protocol``'s decoder in the server; records made."""
    from netlog.decode.datagram import decode_datagram  # noqa: PLC0415
    from netlog.decode.forward import ForwardDecoder  # noqa: PLC0415
    from netlog.decode.gelf import GelfDatagrams, GelfStreamDecoder  # noqa: PLC0415
    from netlog.decode.otlp import PROTOBUF, decode_export  # noqa: PLC0415
    from netlog.decode.stream import StreamDecoder  # noqa: PLC0415
    from netlog.settings import DEFAULT_MAX_FRAME  # noqa: PLC0415

    peer = "127.0.0.1:5000"
    read = 256 << 10  # the server's TCP read size

    def stream(factory: Callable[[str], Any]) -> Callable[[list[bytes]], int]:
        def run(frames: list[bytes]) -> int:
            decoder = factory(peer)
            data = b"".join(frames)
            made = 0
            for k in range(0, len(data), read):
                made += len(decoder.feed(data[k : k + read]))
            return made + len(decoder.feed(b""))

        return run

    if protocol == "json":
        return stream(StreamDecoder)
    if protocol == "gelf_tcp":
        return stream(GelfStreamDecoder)
    if protocol.startswith("fluent"):
        return stream(ForwardDecoder)
    if protocol == "json_udp":

        def json_datagrams(frames: list[bytes]) -> int:
            return sum(decode_datagram(f, peer, time.time()) is not None for f in frames)

        return json_datagrams
    if protocol in UDP:

        def datagrams(frames: list[bytes]) -> int:
            notes: collections.Counter[str] = collections.Counter()
            decode = GelfDatagrams(notes=notes, dropped=collections.Counter())
            return sum(decode(f, peer, time.time()) is not None for f in frames)

        return datagrams

    def otlp(frames: list[bytes]) -> int:
        return sum(
            len(decode_export(f, PROTOBUF, peer, time.time(), limit=DEFAULT_MAX_FRAME).records)
            for f in frames
        )

    return otlp


def decode_only(rendered: dict[str, list[bytes]], count: int, repeats: int) -> None:
    """Each decoder's CPU a record on the same frames, best of ``repeats``; ratio to JSON."""
    base = None
    for protocol, frames in rendered.items():
        run = decoder_of(protocol)
        best = float("inf")
        for _ in range(repeats):
            start = time.process_time()
            made = run(frames)
            best = min(best, time.process_time() - start)
        if made != count:
            raise RuntimeError(f"{protocol}: {made} records decoded of {count}")
        us = best / count * 1e6
        base = base or us
        print(f"{protocol:16} {us:7.2f} µs/record  {us / base:5.2f}x json")


def profile(protocol: str, frames: list[bytes], top: int) -> None:
    """The decoder of ``protocol`` under cProfile, in this process, on the same frames."""
    run = decoder_of(protocol)
    profiler = cProfile.Profile()
    profiler.runcall(run, frames)
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(top)


# --- report ----------------------------------------------------------------------


def table(trials: list[Trial]) -> str:
    """Medians a protocol; ratios to JSON lines over TCP, and to JSON over the same transport."""
    by: dict[str, list[Trial]] = collections.defaultdict(list)
    for trial in trials:
        by[trial.protocol].append(trial)
    cost = {p: statistics.median(t.us_per_record for t in runs) for p, runs in by.items()}
    rows = [
        (
            "| protocol | records/s | server CPU µs/record | ratio to JSON lines (TCP) "
            "| ratio to JSON on its transport | goal (<= 1.5x JSON lines) |"
        ),
        "|---|---:|---:|---:|---:|---|",
    ]
    for protocol, runs in by.items():
        us = cost[protocol]
        rate = statistics.median(t.per_second for t in runs)
        ratio = us / cost["json"]
        same = cost.get("json_udp" if protocol in UDP else "json")
        if protocol == "json":
            goal = "reference"
        elif protocol == "json_udp":
            goal = "(netlog's own UDP)"
        else:
            goal = "met" if ratio <= GOAL else "missed"
        beside = f"{us / same:.2f}" if same else "-"
        rows.append(f"| {protocol} | {rate:,.0f} | {us:.1f} | {ratio:.2f} | {beside} | {goal} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--only", action="append", choices=PROTOCOLS, help="repeatable")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a trial, at most")
    parser.add_argument("--json", type=Path, help="also write every trial here")
    parser.add_argument("--decode-only", action="store_true", help="the decoders alone, in-process")
    parser.add_argument("--profile", choices=PROTOCOLS, help="cProfile one decoder, in-process")
    parser.add_argument(
        "--trees",
        default=str(harness.ROOT),
        help="comma-separated source trees to run the server from, alternating (A/B)",
    )
    args = parser.parse_args()
    protocols = args.only or list(PROTOCOLS)
    if "json" not in protocols:
        protocols.insert(0, "json")
    if not harness.NETLOG_PYTHON.exists():  # a worktree without its own venv: this interpreter
        harness.NETLOG_PYTHON = Path(sys.executable)
    records = make_records(args.records, time.time() - 3600)
    rendered = {p: render(p, records) for p in protocols}

    if args.profile:
        profile(args.profile, rendered[args.profile], 25)
        return 0
    if args.decode_only:
        decode_only(rendered, args.records, args.trials)
        return 0

    os.sched_setaffinity(0, {int(harness.CLIENT_CORE)})
    trees = [Path(tree).resolve() for tree in args.trees.split(",")]
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="netlog-protocols-") as tmp:
        for round_, protocol, tree in itertools.product(range(args.trials), protocols, trees):
            workdir = Path(tmp) / f"{protocol}-{round_}-{trees.index(tree)}"
            trial = run_trial(
                protocol, rendered[protocol], args.records, workdir, args.timeout, tree
            )
            trials.append(trial)
            harness.log(
                f"{tree.name} {protocol}: {trial.lines}/{trial.records} lines "
                f"in {trial.seconds:.2f}s, "
                f"{trial.us_per_record:.1f} µs/record server CPU, load {trial.load:.2f}, "
                f"kernel dropped {trial.kernel_dropped}; {trial.summary}"
            )
            with contextlib.suppress(OSError):
                for path in workdir.glob("logs/records.jsonl*"):
                    path.unlink()
    loads = [t.load for t in trials]
    sizes = {p: sum(map(len, f)) / args.records for p, f in rendered.items()}
    for tree in trees:
        if len(trees) > 1:
            print(f"\nserver from {tree}:\n")
        print(table([t for t in trials if t.tree == str(tree)]))
    print()
    print(
        f"{args.records:,} records a trial, {args.trials} trial(s) a protocol, alternating, "
        f"medians; server pinned to core {harness.SERVER_CORE}, sender to core "
        f"{harness.CLIENT_CORE}; 1-minute load average {min(loads):.2f} to {max(loads):.2f}."
    )
    print("wire bytes a record: " + ", ".join(f"{p} {s:.0f}" for p, s in sizes.items()))
    incomplete = [t for t in trials if t.lines < t.records or t.kernel_dropped]
    if args.json:
        args.json.write_text(
            json.dumps([{**t.__dict__, "us_per_record": t.us_per_record} for t in trials], indent=1)
        )
    if incomplete:
        for t in incomplete:
            harness.log(
                f"incomplete: {t.protocol} {t.lines}/{t.records}, dropped {t.kernel_dropped}"
            )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
