"""The HTTP port's gate against the real process: Host, cross-site, the token, the warning.

Each refusal is checked for what it did not do as well: a marker record
sent after it is the only one on disk, so a refused request wrote nothing.
"""

import http.client
import json
import logging
import logging.handlers
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from prometheus_client.parser import text_string_to_metric_families

from netlogproc import HOST, ROOT, command, server_environment, wait_for

TIMEOUT = 5.0
TOKEN = "integration-token-9f3a"
EVIL = "http://evil.example"


def request(server, method, path, body=None, headers=None):
    """One request on a fresh connection: (status, headers, body)."""
    conn = http.client.HTTPConnection(HOST, server.ports["http"], timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def post_log(server, message, headers=None):
    body = json.dumps({"event": message}).encode()
    return request(
        server, "POST", "/log", body, {"Content-Type": "application/json", **(headers or {})}
    )


def bearer(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def only_marker_written(server, marker, headers=None):
    """Send ``marker`` as the one record that may be written; the messages on disk."""
    assert post_log(server, marker, headers)[0] == 202
    wait_for(lambda: any(r["message"] == marker for r in server.records()), what=marker)
    return [r["message"] for r in server.records()]


def metric(server, name, labels=None, headers=None):
    status, _, body = request(server, "GET", "/metrics", headers=headers)
    assert status == 200
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == (labels or {}):
                return sample.value
    raise AssertionError(f"no {name} {labels} in /metrics")


class TimedHTTPHandler(logging.handlers.HTTPHandler):
    """The stdlib HTTPHandler, with a socket timeout (it has none of its own)."""

    def getConnection(self, host, secure):  # noqa: N802 - the stdlib's name
        assert not secure
        return http.client.HTTPConnection(host, timeout=TIMEOUT)


def log_through_handler(name, handler, message):
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.info(message)
    finally:
        handler.close()
        logger.handlers[:] = []


class TestHost:
    """DNS rebinding: a Host that is not this server's gets 403 and writes nothing."""

    def test_rebound_name_is_refused_and_writes_nothing(self, netlog):
        port = netlog.ports["http"]
        status, headers, body = post_log(netlog, "rebound", {"Host": f"evil.example:{port}"})
        assert (status, body) == (403, b"forbidden\n")
        assert headers["X-Content-Type-Options"] == "nosniff"
        for path in ("/", "/api/records", "/events", "/metrics"):
            assert request(netlog, "GET", path, headers={"Host": "evil.example"})[0] == 403
        assert request(netlog, "GET", "/health", headers={"Host": "evil.example"})[0] == 200
        assert only_marker_written(netlog, "after") == ["after"]
        assert metric(netlog, "netlog_http_refused_total", {"reason": "host"}) == 5

    def test_loopback_names_pass(self, netlog):
        port = netlog.ports["http"]
        for host in ("localhost", f"127.0.0.1:{port}", f"localhost:{port}"):
            assert post_log(netlog, host, {"Host": host})[0] == 202
        netlog.wait_records(3)

    def test_allowed_hosts_addition(self, netlog_factory):
        server = netlog_factory("--allowed-hosts", "logs.example, other.example")
        assert post_log(server, "added", {"Host": "logs.example:9022"})[0] == 202
        assert post_log(server, "no", {"Host": "evil.example"})[0] == 403
        assert only_marker_written(server, "marker") == ["added", "marker"]

    def test_star_allows_any(self, netlog_factory):
        server = netlog_factory(env={"NETLOG_ALLOWED_HOSTS": "*"})
        assert post_log(server, "any", {"Host": "evil.example"})[0] == 202
        server.wait_records(1)


class TestCrossSite:
    """A browser's write from another site is refused unless it carries the token."""

    @pytest.mark.parametrize(
        "headers",
        [
            {"Origin": EVIL},
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1"},
            {"Origin": "null"},
        ],
    )
    def test_cross_site_post_is_refused(self, netlog, headers):
        status, _, _ = post_log(netlog, "injected", headers)
        assert status == 403
        form = urllib.parse.urlencode({"msg": "via GET"})
        assert request(netlog, "GET", f"/log?{form}", headers=headers)[0] == 403
        assert request(netlog, "GET", "/api/records", headers=headers)[0] == 403
        assert only_marker_written(netlog, "marker") == ["marker"]

    def test_same_origin_passes(self, netlog):
        origin = f"http://{HOST}:{netlog.ports['http']}"
        headers = {"Origin": origin, "Sec-Fetch-Site": "same-origin"}
        assert post_log(netlog, "same", headers)[0] == 202
        netlog.wait_records(1)

    def test_token_lets_the_same_request_through(self, netlog_factory):
        server = netlog_factory("--auth-token", TOKEN)
        cross = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}
        assert post_log(server, "refused", cross)[0] == 403
        assert post_log(server, "with token", {**cross, **bearer()})[0] == 202
        assert only_marker_written(server, "marker", bearer()) == ["with token", "marker"]


class TestClientsWithoutOrigin:
    """HTTPHandler, urllib (curl's shape) and a bare POST keep working with no token set."""

    def test_httphandler_urllib_and_bare_post(self, netlog):
        port = netlog.ports["http"]
        handler = TimedHTTPHandler(f"{HOST}:{port}", "/log", method="POST")
        log_through_handler("sec.plain", handler, "from HTTPHandler")
        data = urllib.parse.urlencode({"msg": "from urllib"}).encode()
        with urllib.request.urlopen(f"http://localhost:{port}/log", data, TIMEOUT) as response:
            assert response.status == 202
        assert post_log(netlog, "bare")[0] == 202
        messages = {r["message"] for r in netlog.wait_records(3)}
        assert messages == {"from HTTPHandler", "from urllib", "bare"}


class TestToken:
    """--auth-token: every route but /health needs it; failures are 401, counted, throttled."""

    def test_missing_wrong_right(self, netlog_factory):
        server = netlog_factory("--auth-token", TOKEN)
        status, headers, body = request(server, "GET", "/api/records")
        assert (status, body) == (401, b"unauthorized\n")
        assert headers["WWW-Authenticate"] == "Bearer"
        assert post_log(server, "no token")[0] == 401
        assert post_log(server, "wrong", bearer("wrong"))[0] == 401
        assert request(server, "GET", "/health")[0] == 200
        assert request(server, "GET", "/api/records", headers=bearer())[0] == 200
        assert metric(server, "netlog_http_auth_failures_total", headers=bearer()) == 3
        assert only_marker_written(server, "marker", bearer()) == ["marker"]

    def test_metrics_needs_the_token(self, netlog_factory):
        server = netlog_factory(env={"NETLOG_AUTH_TOKEN": TOKEN})
        assert request(server, "GET", "/metrics")[0] == 401
        assert request(server, "GET", "/metrics", headers=bearer())[0] == 200

    def test_httphandler_with_credentials(self, netlog_factory):
        """The stdlib's own way: Basic credentials, the token as the password."""
        server = netlog_factory("--auth-token", TOKEN)
        address = f"{HOST}:{server.ports['http']}"
        with_token = TimedHTTPHandler(address, "/log", method="POST", credentials=("netlog", TOKEN))
        log_through_handler("sec.basic", with_token, "basic auth")
        wrong = TimedHTTPHandler(address, "/log", method="POST", credentials=("netlog", "nope"))
        log_through_handler("sec.wrong", wrong, "wrong password")
        assert only_marker_written(server, "marker", bearer()) == ["basic auth", "marker"]

    def test_token_file(self, netlog_factory, tmp_path):
        path = tmp_path / "token"
        path.write_text(f"  {TOKEN}\n\n")
        server = netlog_factory("--auth-token-file", str(path))
        assert request(server, "GET", "/api/records", headers=bearer())[0] == 200
        assert request(server, "GET", "/api/records", headers=bearer(TOKEN[:-1]))[0] == 401

    def test_repeated_failures_are_slowed_per_source(self, netlog_factory):
        server = netlog_factory("--auth-token", TOKEN)
        statuses = [
            request(server, "GET", "/metrics", headers=bearer("guess"))[0] for _ in range(8)
        ]
        assert statuses == [401] * 5 + [429] * 3
        status, headers, _ = request(server, "GET", "/metrics", headers=bearer())
        assert status == 429
        assert 1 <= int(headers["Retry-After"]) <= 60
        assert request(server, "GET", "/health")[0] == 200

    def test_login_cookie(self, netlog_factory):
        server = netlog_factory("--auth-token", TOKEN)
        status, _, page = request(server, "GET", "/")
        assert status == 200
        assert b'src="login.js"' in page
        assert request(server, "GET", "/login.js")[0] == 200
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert request(server, "POST", "/login", b"token=wrong", form)[0] == 401
        status, headers, _ = request(server, "POST", "/login", f"token={TOKEN}".encode(), form)
        assert status == 204
        cookie = headers["Set-Cookie"]
        assert TOKEN not in cookie
        assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {p.strip() for p in cookie.split(";")}
        name = cookie.split("=", 1)[0]
        assert name == f"netlog_session_{server.ports['http']}"
        jar = {"Cookie": cookie.split(";")[0]}
        status, _, page = request(server, "GET", "/", headers=jar)
        assert (status, b'src="viewer.js"' in page) == (200, True)
        assert request(server, "GET", "/api/records", headers=jar)[0] == 200
        # The cookie is not the header: a cross-site request carrying it is refused.
        assert post_log(server, "csrf", {**jar, "Sec-Fetch-Site": "same-site"})[0] == 403
        assert post_log(server, "cookie", jar)[0] == 202
        assert only_marker_written(server, "marker", bearer()) == ["cookie", "marker"]


class TestHeaders:
    """The viewer's pages: strict CSP, no sniffing, no referrer, no framing."""

    def test_page_headers(self, netlog):
        _, headers, _ = request(netlog, "GET", "/")
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Content-Type-Options"] == "nosniff"
        for path in ("/health", "/metrics", "/api/records", "/nothing"):
            assert request(netlog, "GET", path)[1]["X-Content-Type-Options"] == "nosniff"
        assert post_log(netlog, "x")[1]["X-Content-Type-Options"] == "nosniff"


def run_serve(tmp_path, *args, env=None):
    """``netlog serve`` on ephemeral ports that must fail at start: the finished process."""
    argv = ["--log-dir", str(tmp_path / "data"), "--console", "off"]
    for option in ("--echo-port", "--responder-port", "--log-tcp-port", "--log-udp-port"):
        argv += [option, "0"]
    return subprocess.run(
        command(*argv, "--http-port", "0", *args),
        cwd=ROOT,
        env=server_environment(env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class TestStart:
    """A bad token file stops the start in one line; exposure without a token is announced."""

    @pytest.mark.parametrize("content", [None, "", "  \n"])
    def test_bad_token_file(self, tmp_path, content):
        path = tmp_path / "token"
        if content is not None:
            path.write_text(content)
        done = run_serve(tmp_path, "--host", HOST, "--auth-token-file", str(path))
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert str(path) in lines[0]
        assert "Traceback" not in done.stderr

    def test_empty_token_variable(self, tmp_path):
        done = run_serve(tmp_path, "--host", HOST, env={"NETLOG_AUTH_TOKEN": " "})
        assert done.returncode == 2, done
        assert "NETLOG_AUTH_TOKEN" in done.stderr
        assert "Traceback" not in done.stderr

    def test_warning_on_all_interfaces_without_token(self, netlog_factory):
        server = netlog_factory("--host", "0.0.0.0")
        line = wait_for(
            lambda: next((x for x in server.stderr().splitlines() if "WARNING" in x), None),
            what="the warning line",
        )
        assert f"HTTP {server.ports['http']}: reads every record" in line
        assert f"log_tcp {server.ports['log_tcp']}: writes records" in line
        assert "--auth-token" in line

    @pytest.mark.parametrize(
        "args",
        [("--host", "0.0.0.0", "--auth-token", TOKEN), ("--host", HOST)],
    )
    def test_no_warning_with_token_or_on_loopback(self, netlog_factory, args):
        server = netlog_factory(*args)
        wait_for(lambda: "serving on" in server.stderr(), what="the serving line")
        server.finish()
        assert "WARNING" not in server.stderr()


class TestOtlp:
    """The OTLP port shares the gate: the SDK's exporter sends the token through ``headers``."""

    @pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
    def test_exporter_with_and_without_the_token(self, netlog_factory):
        server = netlog_factory("--auth-token", TOKEN, "--otlp-port", "0")
        endpoint = f"http://{HOST}:{server.ports['otlp']}/v1/logs"
        for name, headers in (("otlp.with", bearer()), ("otlp.without", None)):
            provider = LoggerProvider()
            exporter = OTLPLogExporter(endpoint=endpoint, timeout=10, headers=headers)
            provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
            handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
            log_through_handler(name, handler, f"from {name}")
            provider.shutdown()
        assert only_marker_written(server, "marker", bearer()) == ["from otlp.with", "marker"]
        assert metric(server, "netlog_http_auth_failures_total", headers=bearer()) == 1
        status, _, _ = request(server, "GET", "/", headers={})
        assert status == 200  # the HTTP port's login page; the OTLP port serves none
        conn = http.client.HTTPConnection(HOST, server.ports["otlp"], timeout=TIMEOUT)
        try:
            conn.request("GET", "/")
            assert conn.getresponse().status == 401
        finally:
            conn.close()
