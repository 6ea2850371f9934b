"""The HTTP port against the real process: HTTPHandler, bodies, health, metrics, events."""

import http.client
import json
import logging
import logging.handlers
import socket
import struct
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from netlogproc import HOST, wait_for

TIMEOUT = 5.0


class TimedHTTPHandler(logging.handlers.HTTPHandler):
    """The stdlib HTTPHandler, with a socket timeout (it has none of its own)."""

    def getConnection(self, host, secure):  # noqa: N802 - the stdlib's name
        assert not secure
        return http.client.HTTPConnection(host, timeout=TIMEOUT)


def stdlib_logger(name, handler):
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


def request(server, method, path, body=None, headers=None):
    """One request on a fresh connection: (status, headers, body)."""
    conn = http.client.HTTPConnection(HOST, server.ports["http"], timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def post(server, body, content_type):
    return request(server, "POST", "/log", body, {"Content-Type": content_type})


def by_message(records):
    return {r["message"]: r for r in records}


def metric_values(server):
    _, _, body = request(server, "GET", "/metrics")
    values = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return values


def metric(values, name, **labels):
    return values.get((name, frozenset(labels.items())))


class TestHTTPHandler:
    """logging.handlers.HTTPHandler, POST and GET, into records on disk."""

    @pytest.mark.parametrize("method", ["POST", "GET"])
    def test_records_land_on_disk(self, netlog, method):
        host = f"{HOST}:{netlog.ports['http']}"
        logger = stdlib_logger(f"app.http.{method.lower()}", TimedHTTPHandler(host, "/log", method))
        logger.info("hello %s, you are %d", "ada", 36, extra={"user": "ada", "request_id": 7})
        logger.warning("ünïcödé ✓ and a tab\there")
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.exception("division failed for %r", {"x": 1})
        records = by_message(netlog.wait_records(3))
        first = records["hello ada, you are 36"]
        assert first["format"] == "http"
        assert first["level"] == "info"
        assert first["logger"] == f"app.http.{method.lower()}"
        assert first["fields"]["user"] == "ada"
        assert first["fields"]["request_id"] == "7"
        assert first["fields"]["_src"]["func"] == "test_records_land_on_disk"
        assert first["fields"]["_src"]["line"] > 0
        assert first["peer"].startswith("127.0.0.1:")
        assert first["ts"] <= first["received"]
        assert records["ünïcödé ✓ and a tab\there"]["level"] == "warning"
        failed = records["division failed for {'x': 1}"]
        assert failed["level"] == "error"
        assert failed["exc"] == "ZeroDivisionError('division by zero')"


class TestBodies:
    """JSON, JSON lines, text and bad bodies on POST /log."""

    def test_json_json_lines_and_text(self, netlog):
        status, headers, body = post(
            netlog,
            json.dumps({"event": "one", "level": "error", "user": "ada"}),
            "application/json",
        )
        assert (status, json.loads(body)) == (202, {"accepted": 1})
        assert headers["Content-Type"] == "application/json"
        lines = b'{"event": "two"}\n{"event": "three", "logger": "jobs"}\n'
        assert post(netlog, lines, "application/x-ndjson")[:1] == (202,)
        assert post(netlog, b'[{"event": "four"}, {"event": "five"}]', "application/json")[0] == 202
        status, _, body = post(netlog, "six\nseven\n", "text/plain")
        assert json.loads(body) == {"accepted": 2}
        status, _, body = request(netlog, "GET", "/log?msg=eight&level=debug&job=cron")
        assert (status, json.loads(body)) == (202, {"accepted": 1})
        records = by_message(netlog.wait_records(8))
        assert set(records) == {"one", "two", "three", "four", "five", "six", "seven", "eight"}
        assert {r["format"] for r in records.values()} == {"http"}
        assert records["one"]["fields"] == {"user": "ada"}
        assert records["one"]["level"] == "error"
        assert records["three"]["logger"] == "jobs"
        assert records["eight"]["level"] == "debug"
        assert records["eight"]["fields"] == {"job": "cron"}

    @pytest.mark.parametrize(
        ("method", "path", "body", "content_type", "status", "words"),
        [
            ("POST", "/log", b'{"event": ', "application/json", 400, "not JSON"),
            ("POST", "/log", b'{"a": 1}\n[2]\n', "application/x-ndjson", 400, "line 2"),
            ("POST", "/log", b"", "application/json", 400, "empty"),
            ("POST", "/log", b"<a/>", "application/xml", 415, "application/xml"),
            ("GET", "/log", None, None, 400, "query string"),
            ("GET", "/nope", None, None, 404, "/nope"),
            ("DELETE", "/log", None, None, 405, "DELETE"),
            ("POST", "/health", b"x", "text/plain", 405, "POST"),
        ],
    )
    def test_bad_requests_get_one_line(
        self, netlog, method, path, body, content_type, status, words
    ):
        headers = {"Content-Type": content_type} if content_type else {}
        got, response_headers, text = request(netlog, method, path, body, headers)
        assert got == status
        lines = text.decode().splitlines()
        assert len(lines) == 1
        assert words in lines[0]
        if status == 405:
            assert "GET" in response_headers["Allow"]

    def test_oversized_body_is_refused_unread(self, netlog):
        with socket.create_connection(netlog.address("http"), timeout=TIMEOUT) as sock:
            sock.sendall(
                b"POST /log HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n{" % (11 << 20)
            )
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = sock.recv(4096)
                assert chunk, reply
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 413 ")
        assert b"Connection: close" in reply

    def test_oversized_chunked_body(self, netlog):
        conn = http.client.HTTPConnection(HOST, netlog.ports["http"], timeout=TIMEOUT)
        try:
            chunk = b"x" * (1 << 20)
            conn.request(
                "POST",
                "/log",
                body=iter([chunk] * 11),
                headers={"Content-Type": "text/plain"},
                encode_chunked=True,
            )
            assert conn.getresponse().status == 413
        finally:
            conn.close()
        assert netlog.records() == []

    @pytest.mark.parametrize(
        "raw",
        [
            b"GARBAGE REQUEST LINE HERE\r\n\r\n",
            b"POST /log HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST /log HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: zz\r\n\r\n",
        ],
    )
    def test_malformed_requests_get_400_and_no_traceback(self, netlog, raw):
        for close_early in (False, True):
            with socket.create_connection(netlog.address("http"), timeout=TIMEOUT) as sock:
                sock.sendall(raw)
                if close_early:  # gone before the answer: nothing may be printed
                    continue
                assert sock.recv(4096).startswith(b"HTTP/1.1 400 ")
        assert request(netlog, "GET", "/health")[0] == 200
        assert netlog.stop(timeout=15) == 0
        assert "Traceback" not in netlog.stderr()

    def test_ready_file_names_http_and_minus_one_disables_it(self, netlog_factory):
        server = netlog_factory("--http-port", "-1", "--echo-port", "-1")
        assert "http" not in server.ports
        assert "log_tcp" in server.ports


class TestHealth:
    """GET /health: 200 while serving, 503 through the shutdown drain."""

    def test_ok(self, netlog):
        status, headers, body = request(netlog, "GET", "/health")
        assert (status, body) == (200, b"ok\n")
        assert headers["Cache-Control"] == "no-store"
        assert request(netlog, "HEAD", "/health")[::2] == (200, b"")

    def test_503_while_draining_then_exit_zero(self, netlog_factory):
        server = netlog_factory("--grace", "3", "--echo-port", "-1")
        assert request(server, "GET", "/health")[0] == 200
        with socket.create_connection(server.address("log_tcp"), timeout=TIMEOUT) as sock:
            # Half a SocketHandler frame: shutdown waits the grace for the rest.
            sock.sendall(struct.pack(">L", 1000) + b"\x80\x04partial")
            time.sleep(0.2)
            started = time.monotonic()
            server.send_signal()
            statuses = []

            def draining():
                status = request(server, "GET", "/health")[0]
                statuses.append(status)
                return status == 503

            wait_for(draining, 2.5, what="/health to answer 503")
            assert statuses[-1] == 503
            assert set(statuses) <= {200, 503}
            # Still taking records while it drains: they are written too.
            status, _, _ = request(server, "GET", "/log?msg=during+the+drain")
            assert status == 202
            status, _, body = request(server, "GET", "/health")
            assert (status, body) == (503, b"draining\n")
            assert server.proc.wait(timeout=15) == 0
        took = time.monotonic() - started
        assert 2.5 < took < 8
        assert "Traceback" not in server.stderr()
        assert [r["message"] for r in server.records()] == ["during the drain"]
        with pytest.raises(OSError):
            request(server, "GET", "/health")


class TestMetrics:
    """GET /metrics: Prometheus text whose counters match what was sent."""

    def test_http_text_counts_invalid_utf8_like_tcp(self, netlog):
        status, _, _ = post(netlog, b"caf\xe9 ok\n", "text/plain")
        assert status == 202
        assert netlog.wait_records(1)[0]["message"] == "caf\\xe9 ok"
        assert metric(metric_values(netlog), "netlog_notes_total", reason="invalid_utf8") == 1

    def test_counters_match_traffic(self, netlog_factory):
        server = netlog_factory("--echo-port", "-1")
        handler = logging.handlers.SocketHandler(*server.address("log_tcp"))
        logger = stdlib_logger("metrics.pickle", handler)
        for i in range(5):
            logger.info("pickle %d", i)
        handler.close()
        sent = 0
        with socket.create_connection(server.address("log_tcp"), timeout=TIMEOUT) as sock:
            data = b"".join(b'{"event": "json %d"}\n' % i for i in range(3))
            sock.sendall(data)
            sent += len(data)
        with socket.create_connection(server.address("log_tcp"), timeout=TIMEOUT) as sock:
            data = b"text one\ntext two\n"
            sock.sendall(data)
            sent += len(data)
        with socket.create_connection(server.address("log_tcp"), timeout=TIMEOUT) as sock:
            data = struct.pack(">L", 8) + b"garbage!"  # one bad pickle frame
            sock.sendall(data)
            sent += len(data)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(TIMEOUT)
            udp.bind((HOST, 0))
            udp.sendto(b"ping", server.address("responder"))
            assert udp.recvfrom(100)[0] == b"pong"
        assert post(server, b'{"event": "via http"}', "application/json")[0] == 202
        assert post(server, b"{", "application/json")[0] == 400
        server.wait_records(11)

        def settled():
            values = metric_values(server)
            done = metric(values, "netlog_bad_frames_total", reason="bad_frame") == 1
            # With workers the writer writes on each hand-over, so the 11 can be
            # on disk before the first timed flush (every --flush-interval):
            # settled includes at least one flush timed in the histogram.
            done = done and metric(values, "netlog_flush_seconds_count") > 0
            return values if done and metric(values, "netlog_records_written_total") == 11 else None

        values = wait_for(settled, 10, what="metrics to settle")
        assert metric(values, "netlog_records_received_total", format="pickle") == 5
        assert metric(values, "netlog_records_received_total", format="json") == 3
        assert metric(values, "netlog_records_received_total", format="text") == 2
        assert metric(values, "netlog_records_received_total", format="http") == 1
        assert metric(values, "netlog_records_received_total", format="syslog") == 0
        assert metric(values, "netlog_records_dropped_total", reason="bad_frame") == 1
        assert metric(values, "netlog_bad_frames_total", reason="http_bad_json") == 1
        assert metric(values, "netlog_connections_total", listener="log_tcp") == 4
        assert metric(values, "netlog_connections_open", listener="log_tcp") == 0
        assert metric(values, "netlog_received_bytes_total", listener="log_tcp") >= sent
        assert metric(values, "netlog_probes_total", outcome="answered") == 1
        assert metric(values, "netlog_probes_total", outcome="rate_limited") == 0
        assert metric(values, "netlog_file_write_errors_total") == 0
        assert metric(values, "netlog_file_pending_bytes") == 0
        assert metric(values, "netlog_http_requests_total", route="/log", code="202") == 1
        assert metric(values, "netlog_http_requests_total", route="/log", code="400") == 1
        assert metric(values, "netlog_draining") == 0
        _, headers, _ = request(server, "GET", "/metrics")
        assert headers["Content-Type"].startswith("text/plain; version=")


def read_events(response, until, timeout=5.0):
    """Read server-sent events until ``until(events)`` is true; [(event, id, data)]."""
    events = []
    current = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = response.fp.readline()
        if not line:
            break
        line = line.rstrip(b"\r\n").decode()
        if line == "":
            if current:
                events.append((current.get("event"), current.get("id"), current.get("data")))
                current = {}
                if until(events):
                    return events
            continue
        name, _, value = line.partition(":")
        current[name] = value.removeprefix(" ")
    raise AssertionError(f"events so far: {events}")


class TestEvents:
    """GET /events: the viewer's stream."""

    def test_recent_then_live_then_bye_at_shutdown(self, netlog_factory):
        server = netlog_factory("--echo-port", "-1", "--grace", "10")
        post(server, b'{"event": "before"}', "application/json")
        conn = http.client.HTTPConnection(HOST, server.ports["http"], timeout=TIMEOUT)
        conn.request("GET", "/events")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/event-stream")
        events = read_events(response, lambda e: any(kind == "records" for kind, _, _ in e))
        records = [r for kind, _, data in events if kind == "records" for r in json.loads(data)]
        assert [r["message"] for r in records] == ["before"]
        assert events[-1][1] == "1"
        post(server, b'{"event": "live one"}\n{"event": "live two"}\n', "application/x-ndjson")
        events = read_events(response, lambda e: e and e[-1][0] == "records")
        assert [r["message"] for r in json.loads(events[-1][2])] == ["live one", "live two"]
        assert events[-1][1] == "3"
        assert metric(metric_values(server), "netlog_viewer_clients") == 1
        # A page that reconnects with Last-Event-ID gets only what it missed.
        post(server, b'{"event": "missed"}', "application/json")
        again = http.client.HTTPConnection(HOST, server.ports["http"], timeout=TIMEOUT)
        again.request("GET", "/events", headers={"Last-Event-ID": "3"})
        resumed = read_events(again.getresponse(), lambda e: any(k == "records" for k, _, _ in e))
        assert [r["message"] for k, _, d in resumed if k == "records" for r in json.loads(d)] == [
            "missed"
        ]
        started = time.monotonic()
        server.send_signal()
        events = read_events(response, lambda e: e[-1][0] == "bye")
        assert server.proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 5  # the open streams did not hold the exit
        conn.close()
        again.close()
