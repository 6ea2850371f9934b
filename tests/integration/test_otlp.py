"""OTLP logs over HTTP against the real process, from the real OpenTelemetry Python SDK."""

import gzip
import logging
import signal
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import orjson
import pytest
from google.protobuf.internal.encoder import _VarintBytes
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from reliability_kit import record_figure

from netlog.decode.otlp import MAX_ATTRIBUTES, MAX_RECORDS
from netlogproc import HOST, wait_for

#: The SDK's LoggingHandler warns it is deprecated (for opentelemetry-instrumentation-logging,
#: not installed here); it is still what the SDK ships and documents.
pytestmark = pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")

PROTOBUF = "application/x-protobuf"
TRACE_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_HEX = "eee19b7ec3c1b174"
USER_ADA = {"stringValue": "ada"}


class Sdk:
    """The OpenTelemetry SDK's logging set-up as the README shows it, tied to one stdlib logger."""

    def __init__(self, port: int, name: str, compression=None) -> None:
        self.provider = LoggerProvider(
            resource=Resource.create({"service.name": "checkout", "deployment.environment": "dev"})
        )
        exporter = OTLPLogExporter(
            endpoint=f"http://{HOST}:{port}/v1/logs", timeout=10, compression=compression
        )
        self.provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        self.handler = LoggingHandler(level=logging.DEBUG, logger_provider=self.provider)
        self.logger = logging.getLogger(name)
        self.logger.handlers[:] = [self.handler]
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False

    def flush(self) -> None:
        assert self.provider.force_flush(timeout_millis=20_000)

    def close(self) -> None:
        self.logger.handlers[:] = []
        self.provider.shutdown()


@pytest.fixture
def sdk_factory():
    made: list[Sdk] = []

    def factory(port: int, name: str, compression=None) -> Sdk:
        sdk = Sdk(port, name, compression)
        made.append(sdk)
        return sdk

    yield factory
    for sdk in made:
        sdk.close()


def post(port, body, content_type, encoding=None, path="/v1/logs", timeout=30.0):
    """POST ``body``; (status, content type, response body), whatever the status."""
    headers = {"Content-Type": content_type} if content_type else {}
    if encoding:
        headers["Content-Encoding"] = encoding
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def otlp_json(log_records, service="json-svc"):
    """A request as OTLP/JSON specifies it: camelCase, hex ids, integer enums, int64 as strings."""
    return orjson.dumps(
        {
            "resourceLogs": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                    },
                    "scopeLogs": [{"scope": {"name": "curl"}, "logRecords": log_records}],
                }
            ]
        }
    )


def pb_request(*messages, trace_ids=None):
    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    sl.scope.name = "raw"
    for index, message in enumerate(messages):
        lr = sl.log_records.add()
        lr.body.string_value = message
        lr.severity_number = 9
        if trace_ids is not None:
            lr.trace_id = trace_ids[index]
    return req.SerializeToString()


class TestSdk:
    """The SDK's LoggingHandler and OTLP/HTTP exporter (protobuf), on both ports."""

    @pytest.mark.parametrize("port_name", ["otlp", "http"])
    def test_records_with_trace_context(self, netlog, sdk_factory, port_name):
        sdk = sdk_factory(netlog.ports[port_name], "shop.payments")
        tracer = TracerProvider().get_tracer("test")
        with tracer.start_as_current_span("pay") as span:
            context = span.get_span_context()
            sdk.logger.info("paid %s", "ada", extra={"order": 42, "http.route": "/pay"})
            sdk.logger.warning("slow ünïcödé")
            try:
                {}["missing"]
            except KeyError:
                sdk.logger.exception("lookup failed")
        sdk.logger.debug("outside any span")
        sdk.flush()

        records = {r["message"]: r for r in netlog.wait_records(4)}
        paid = records["paid ada"]
        assert paid["format"] == "otlp"
        assert paid["level"] == "info"
        assert paid["logger"] == "shop.payments"
        assert paid["peer"].startswith("127.0.0.1:")
        assert paid["fields"]["order"] == 42
        assert paid["fields"]["http"] == {"route": "/pay"}
        assert paid["fields"]["service"]["name"] == "checkout"
        assert paid["fields"]["deployment"] == {"environment": "dev"}
        assert paid["fields"]["trace_id"] == format(context.trace_id, "032x")
        assert paid["fields"]["span_id"] == format(context.span_id, "016x")
        assert paid["ts"] <= paid["received"]
        assert records["slow ünïcödé"]["level"] == "warning"
        failed = records["lookup failed"]
        assert failed["level"] == "error"
        assert "Traceback" in failed["exc"]
        assert "KeyError" in failed["exc"]
        assert failed["fields"]["exception"]["type"] == "KeyError"
        outside = records["outside any span"]
        assert outside["level"] == "debug"
        assert "trace_id" not in outside["fields"]

    def test_readme_setup_with_the_environment_variable(self, netlog, monkeypatch):
        endpoint = f"http://{HOST}:{netlog.ports['otlp']}/v1/logs"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", endpoint)
        provider = LoggerProvider(resource=Resource.create({"service.name": "readme"}))
        provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
        logger = logging.getLogger("readme.example")
        logger.handlers[:] = [LoggingHandler(logger_provider=provider)]
        logger.propagate = False
        try:
            logger.warning("card declined", extra={"order": 42})
            assert provider.force_flush(timeout_millis=20_000)
        finally:
            logger.handlers[:] = []
            provider.shutdown()
        (record,) = netlog.wait_records(1)
        assert (record["message"], record["level"]) == ("card declined", "warning")
        assert record["fields"]["order"] == 42
        assert record["fields"]["service"]["name"] == "readme"

    def test_gzip_from_the_exporter(self, netlog, sdk_factory):
        sdk = sdk_factory(netlog.ports["otlp"], "zipped", Compression.Gzip)
        for i in range(300):
            sdk.logger.info("zipped %d", i)
        sdk.flush()
        records = netlog.wait_records(300)
        assert {r["message"] for r in records} == {f"zipped {i}" for i in range(300)}

    def test_trace_is_found_by_the_query_api(self, netlog, sdk_factory):
        sdk = sdk_factory(netlog.ports["otlp"], "traced")
        tracer = TracerProvider().get_tracer("test")
        with tracer.start_as_current_span("a") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            sdk.logger.info("in the trace")
        sdk.logger.info("not in it")
        sdk.flush()
        netlog.wait_records(2)
        query = urllib.parse.urlencode({"q": f"trace_id={trace_id}"})
        url = f"http://{HOST}:{netlog.ports['http']}/api/records?{query}"
        with urllib.request.urlopen(url, timeout=30) as response:
            found = orjson.loads(response.read())["records"]
        assert [r["message"] for r in found] == ["in the trace"]


class TestWire:
    """OTLP/HTTP as the specification states it, sent by hand."""

    def test_json_body_answered_in_json(self, netlog):
        body = otlp_json(
            [
                {
                    "timeUnixNano": "1700000000000000000",
                    "severityNumber": 17,
                    "severityText": "ERROR",
                    "traceId": TRACE_HEX.upper(),
                    "spanId": SPAN_HEX,
                    "body": {
                        "kvlistValue": {
                            "values": [{"key": "user", "value": {"stringValue": "ada"}}]
                        }
                    },
                    "attributes": [{"key": "retry", "value": {"intValue": "3"}}],
                }
            ]
        )
        status, content_type, answer = post(netlog.ports["otlp"], body, "application/json")
        assert (status, content_type) == (200, "application/json")
        assert orjson.loads(answer) == {}
        (record,) = netlog.wait_records(1)
        assert record["level"] == "error"
        assert record["logger"] == "curl"
        assert record["ts"] == "2023-11-14T22:13:20.000000Z"
        assert record["fields"]["trace_id"] == TRACE_HEX
        assert record["fields"]["span_id"] == SPAN_HEX
        assert record["fields"]["retry"] == 3
        assert record["fields"]["body"] == {"user": "ada"}
        assert orjson.loads(record["message"]) == {"user": "ada"}

    def test_protobuf_gzip_answered_in_protobuf(self, netlog):
        body = gzip.compress(pb_request("one", "two"))
        status, content_type, answer = post(netlog.ports["http"], body, PROTOBUF, "gzip")
        assert (status, content_type) == (200, PROTOBUF)
        assert not ExportLogsServiceResponse.FromString(answer).HasField("partial_success")
        assert sorted(r["message"] for r in netlog.wait_records(2)) == ["one", "two"]

    def test_partial_success(self, netlog):
        body = pb_request("kept", "refused", trace_ids=[b"\x01" * 16, b"\x01" * 5])
        status, _, answer = post(netlog.ports["otlp"], body, PROTOBUF)
        assert status == 200
        partial = ExportLogsServiceResponse.FromString(answer).partial_success
        assert partial.rejected_log_records == 1
        assert "trace_id" in partial.error_message
        status, _, answer = post(
            netlog.ports["otlp"], otlp_json([{"traceId": "not hex"}, {}]), "application/json"
        )
        assert orjson.loads(answer)["partialSuccess"]["rejectedLogRecords"] == "1"
        records = netlog.wait_records(2)
        assert sorted(r["message"] for r in records) == ["", "kept"]

    def test_refusals(self, netlog_factory):
        netlog = netlog_factory("--otlp-max-body", "64KiB")
        port = netlog.ports["otlp"]
        assert post(port, b"\x00" * (65 << 10), PROTOBUF)[0] == 413
        bomb = gzip.compress(b"\x00" * (64 << 20))
        assert post(port, bomb, PROTOBUF, "gzip")[0] == 413
        assert post(port, b"\xff\xff\xff\xff", PROTOBUF)[0] == 400
        assert post(port, b"{not json", "application/json")[0] == 400
        assert post(port, pb_request("x"), "text/plain")[0] == 415
        assert post(port, pb_request("x"), PROTOBUF, "br")[0] == 415
        assert get(port, "/v1/logs") == 405
        # After all of it, the port still takes records.
        assert post(port, pb_request("still here"), PROTOBUF)[0] == 200
        assert [r["message"] for r in netlog.wait_records(1)] == ["still here"]
        metrics = urllib.request.urlopen(
            f"http://{HOST}:{netlog.ports['http']}/metrics", timeout=10
        ).read()
        assert b"otlp_" in metrics

    def test_otlp_port_serves_only_logs_and_health(self, netlog):
        port = netlog.ports["otlp"]
        assert get(port, "/health") == 200
        assert get(port, "/") == 404
        assert get(port, "/api/records") == 404
        assert get(port, "/metrics") == 404
        assert post(port, b"msg=hi", "application/x-www-form-urlencoded", path="/log")[0] == 404

    def test_disabled(self, netlog_factory):
        netlog = netlog_factory("--otlp-port", "-1")
        assert "otlp" not in netlog.ports
        assert post(netlog.ports["http"], pb_request("via http"), PROTOBUF)[0] == 200
        netlog.wait_records(1)


def many_attributes(count: int) -> bytes:
    """One log record carrying ``count`` attributes, each a two-byte empty KeyValue."""
    record = b"\x32\x00" * count  # LogRecord.attributes (field 6), an empty KeyValue
    record += b"\x2a\x06" + b"\x0a\x04huge"  # body (field 5): AnyValue string "huge"
    scope_logs = b"\x12" + _VarintBytes(len(record)) + record  # ScopeLogs.log_records
    return wrap_scope_logs(scope_logs)


def many_records(count: int) -> bytes:
    """``count`` empty log records, two bytes each: the most messages a body can hold."""
    return wrap_scope_logs(b"\x12\x00" * count)


def wrap_scope_logs(scope_logs: bytes) -> bytes:
    resource_logs = b"\x12" + _VarintBytes(len(scope_logs)) + scope_logs  # ResourceLogs.scope_logs
    return b"\x0a" + _VarintBytes(len(resource_logs)) + resource_logs


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident size so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


class TestHostileBody:
    """Bodies of millions of messages: bounded memory and time, other senders unaffected."""

    @pytest.mark.parametrize(
        ("scenario", "body", "kept"),
        [
            ("otlp_million_attributes", many_attributes(1_000_000), 1),
            # The worst the default --otlp-max-body (4 MiB) lets in: ~2.1 million
            # attributes, or as many empty records (10,000 kept, the rest rejected).
            ("otlp_attributes_at_the_cap", many_attributes((4 << 20) // 2 - 16), 1),
            ("otlp_records_at_the_cap", many_records((4 << 20) // 2 - 16), MAX_RECORDS),
            # As many empty resource groups: refused whole (400), never walked.
            ("otlp_groups_at_the_cap", b"\x0a\x00" * ((4 << 20) // 2), 0),
        ],
        ids=["million_attributes", "attributes_at_cap", "records_at_cap", "groups_at_cap"],
    )
    def test_huge_body(self, netlog, scenario, body, kept):
        rss_before = netlog.rss_kib()
        stop = threading.Event()
        sent = []

        def other_sender():
            with socket.create_connection(netlog.address("log_tcp"), timeout=10) as sock:
                for i in range(5000):
                    if stop.is_set():
                        break
                    sock.sendall(b'{"event": "bystander %d"}\n' % i)
                    sent.append(i)
                    time.sleep(0.002)

        bystander = threading.Thread(target=other_sender)
        bystander.start()
        took = []
        answers = []
        try:
            for _ in range(3):
                started = time.perf_counter()
                status, _, answer = post(netlog.ports["otlp"], body, PROTOBUF, timeout=60)
                took.append(time.perf_counter() - started)
                assert status == (200 if kept else 400), answer
                if kept:
                    answers.append(ExportLogsServiceResponse.FromString(answer))
        finally:
            stop.set()
            bystander.join(30)
        peak = peak_rss_kib(netlog.pid)
        records = netlog.wait_records(3 * kept + len(sent), timeout=60)
        otlp = [r for r in records if r["format"] == "otlp"]
        assert len(otlp) == 3 * kept
        if not kept:
            assert b"resource or scope groups" in answer
        elif kept == 1:
            assert otlp[0]["message"] == "huge"
            assert otlp[0]["fields"]["otlp_cut"] == body.count(b"\x32\x00") - MAX_ATTRIBUTES
            assert len(otlp[0]["fields"]) <= MAX_ATTRIBUTES + 2
        else:
            rejected = body.count(b"\x12\x00") - MAX_RECORDS
            assert answers[0].partial_success.rejected_log_records == rejected
        bystanders = {r["message"] for r in records if r["format"] == "json"}
        assert bystanders == {f"bystander {i}" for i in sent}
        record_figure(
            scenario,
            body_bytes=len(body),
            requests=3,
            seconds_per_request=round(max(took), 3),
            rss_before_mib=round(rss_before / 1024, 1),
            rss_peak_mib=round(peak / 1024, 1),
            records_kept=len(otlp),
            bystander_lines=len(sent),
        )
        assert (peak - rss_before) / 1024 < 512


class TestShutdown:
    """SIGTERM right after the exporter's flush: every record it exported is on disk."""

    @pytest.mark.parametrize("port_name", ["otlp", "http"])
    def test_sigterm_after_flush(self, netlog, sdk_factory, port_name):
        sdk = sdk_factory(netlog.ports[port_name], "before.stop")
        for i in range(1000):
            sdk.logger.info("record %d", i)
        sdk.flush()
        assert netlog.stop(signal.SIGTERM) == 0
        records = netlog.records()
        assert sorted(r["message"] for r in records) == sorted(f"record {i}" for i in range(1000))

    def test_health_fails_while_draining(self, netlog_factory):
        netlog = netlog_factory("--grace", "2")
        port = netlog.ports["otlp"]
        # A log connection left open keeps the drain going for the grace.
        with socket.create_connection(netlog.address("log_tcp"), timeout=10) as sock:
            sock.sendall(b'{"event": "partial"')
            netlog.send_signal(signal.SIGTERM)
            wait_for(lambda: get(port, "/health") == 503, 10, what="503 while draining")
            assert post(port, pb_request("during drain"), PROTOBUF)[0] == 200
        assert netlog.proc.wait(30) == 0
        assert "during drain" in {r["message"] for r in netlog.records()}
