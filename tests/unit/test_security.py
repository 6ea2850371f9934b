"""The HTTP port's gate as pure code: Host names, cross-site requests, the token, the throttle."""

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netlog.security import (
    LOGIN,
    AllowedHosts,
    FailureThrottle,
    HttpGuard,
    TokenError,
    allowed_hosts,
    exposure_warning,
    load_token,
)
from netlog.security.hosts import host_name
from netlog.viewer import load_assets

TOKEN = "s3cret-token"


def environ(path="/", method="GET", host="127.0.0.1:9022", **headers):
    env = {"PATH_INFO": path, "REQUEST_METHOD": method, "REMOTE_ADDR": "10.0.0.9"}
    if host is not None:
        env["HTTP_HOST"] = host
    env.update({"HTTP_" + name.upper(): value for name, value in headers.items()})
    return env


def guard(token=None, extra=(), throttle=None):
    hosts = allowed_hosts(extra, bound="127.0.0.1", hostname="devbox")
    return HttpGuard(hosts, token, cookie_name="netlog_session_9022", throttle=throttle)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class TestHosts:
    """Names the port answers: loopback names, IP literals, the machine, additions, or any."""

    @pytest.mark.parametrize(
        "host",
        [
            "localhost",
            "LOCALHOST:9022",
            "app.localhost:9022",
            "127.0.0.1:9022",
            "[::1]:9022",
            "10.1.2.3",
            "[fe80::1]",
            "devbox",
            "devbox.:80",
            None,
        ],
    )
    def test_allowed(self, host):
        assert allowed_hosts((), bound="0.0.0.0", hostname="devbox").allows(host)

    @pytest.mark.parametrize(
        "host", ["evil.example", "evil.example:9022", "x", "localhost.evil.example", "", ":9022"]
    )
    def test_refused(self, host):
        assert not allowed_hosts((), bound="0.0.0.0", hostname="devbox").allows(host)

    def test_additions_and_bound_name(self):
        hosts = allowed_hosts(("logs.example",), bound="sink.lan", hostname="devbox")
        assert hosts.allows("logs.example:9022")
        assert hosts.allows("sink.lan")
        assert not hosts.allows("other.example")

    def test_star_allows_any(self):
        assert AllowedHosts(["*"]).allows("evil.example")

    @given(st.text(max_size=40))
    def test_host_name_never_raises(self, text):
        assert isinstance(host_name(text), str)


class TestHostCheck:
    """A Host not allowed: 403 on every route but /health, counted."""

    def test_rebinding_refused_everywhere_but_health(self):
        gate = guard()
        for path in ("/", "/log", "/api/records", "/metrics", "/events"):
            verdict = gate.check(environ(path, host="evil.example:9022"), 0.0)
            assert verdict is not None
            assert verdict.status == 403
        assert gate.check(environ("/health", host="evil.example"), 0.0) is None
        assert gate.refused["host"] == 5


class TestCrossSite:
    """Browsers' requests from elsewhere may not write or read records."""

    @pytest.mark.parametrize(
        "headers",
        [
            {"origin": "http://evil.example"},
            {"origin": "null"},
            {"origin": "http://127.0.0.1:3000"},
            {"sec_fetch_site": "cross-site"},
            {"sec_fetch_site": "same-site"},
            {"sec_fetch_site": "same-site", "origin": "http://127.0.0.1:9022"},
        ],
    )
    def test_refused(self, headers):
        gate = guard()
        for path, method in (
            ("/log", "POST"),
            ("/log", "GET"),
            ("/api/records", "GET"),
            ("/events", "GET"),
            ("/anything", "POST"),
        ):
            verdict = gate.check(environ(path, method, **headers), 0.0)
            assert verdict is not None, (path, method)
            assert (verdict.status, verdict.reason) == (403, "cross_site")

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"origin": "http://127.0.0.1:9022"},
            {"sec_fetch_site": "same-origin", "origin": "http://127.0.0.1:9022"},
            {"sec_fetch_site": "none"},
        ],
    )
    def test_same_origin_and_non_browsers_pass(self, headers):
        assert guard().check(environ("/log", "POST", **headers), 0.0) is None

    def test_pages_and_metrics_may_be_opened_from_a_link(self):
        gate = guard()
        assert gate.check(environ("/", sec_fetch_site="cross-site"), 0.0) is None
        assert gate.check(environ("/metrics", sec_fetch_site="cross-site"), 0.0) is None

    def test_the_token_header_lifts_it_the_cookie_does_not(self):
        gate = guard(TOKEN)
        cookie = gate.login(TOKEN, "10.0.0.9", 0.0)
        assert cookie is not None
        cookie_pair = cookie.split(";")[0]
        cross = {"origin": "http://evil.example", "sec_fetch_site": "cross-site"}
        assert (
            gate.check(environ("/log", "POST", authorization=f"Bearer {TOKEN}", **cross), 0) is None
        )
        verdict = gate.check(environ("/log", "POST", cookie=cookie_pair, **cross), 0.0)
        assert verdict is not None
        assert verdict.reason == "cross_site"


class TestToken:
    """With a token every route but /health and the login page's files needs it."""

    def test_bearer_basic_cookie(self):
        gate = guard(TOKEN)
        assert gate.check(environ("/api/records", authorization=f"Bearer {TOKEN}"), 0.0) is None
        assert gate.check(environ("/log", "POST", authorization=basic("netlog", TOKEN)), 0) is None
        cookie = gate.login(TOKEN, "10.0.0.9", 0.0)
        assert cookie is not None
        assert gate.check(environ("/api/records", cookie="a=b; " + cookie.split(";")[0]), 0) is None
        assert gate.auth_failures == 0

    def test_missing_or_wrong_is_401_counted(self):
        gate = guard(TOKEN, throttle=FailureThrottle(limit=100))
        for env in (
            environ("/api/records"),
            environ("/metrics", authorization="Bearer wrong"),
            environ("/log", "POST", authorization=basic("netlog", "wrong")),
            environ("/log", "POST", authorization="Basic !!notbase64"),
            environ("/api/records", cookie="netlog_session_9022=" + "0" * 64),
            environ("/api/records", authorization=f"Bearer {TOKEN}x"),
            environ("/", authorization="Bearer wrong"),
        ):
            verdict = gate.check(env, 0.0)
            assert verdict is not None
            assert verdict.status == 401
            assert ("WWW-Authenticate", "Bearer") in verdict.headers
        assert gate.auth_failures == 7

    def test_login_page_and_open_paths(self):
        gate = guard(TOKEN)
        assert gate.check(environ("/"), 0.0) is LOGIN
        for path in ("/health", "/login.js", "/login.css", "/favicon.svg", "/login"):
            method = "POST" if path == "/login" else "GET"
            assert gate.check(environ(path, method), 0.0) is None
        assert gate.auth_failures == 0

    def test_cookie_is_derived_not_the_token(self):
        gate = guard(TOKEN)
        cookie = gate.login(TOKEN, "10.0.0.9", 0.0)
        assert cookie is not None
        expected = hmac.new(TOKEN.encode(), b"netlog viewer session", hashlib.sha256).hexdigest()
        assert cookie == f"netlog_session_9022={expected}; HttpOnly; SameSite=Strict; Path=/"
        assert TOKEN not in cookie
        assert gate.login("wrong", "10.0.0.9", 0.0) is None
        assert gate.auth_failures == 1

    def test_without_a_token_nothing_is_asked(self):
        gate = guard()
        assert gate.check(environ("/api/records"), 0.0) is None
        assert gate.login(TOKEN, "10.0.0.9", 0.0) is None


class TestThrottle:
    """Five failures in a minute from one source: 429 until the minute ends; memory bounded."""

    def test_fifth_failure_blocks_the_source_only(self):
        gate = guard(TOKEN)
        for _ in range(5):
            assert gate.check(environ("/metrics", authorization="Bearer guess"), 10.0).status == 401
        verdict = gate.check(environ("/metrics", authorization=f"Bearer {TOKEN}"), 20.0)
        assert verdict is not None
        assert (verdict.status, verdict.headers) == (429, (("Retry-After", "50"),))
        other = environ("/metrics", authorization=f"Bearer {TOKEN}")
        other["REMOTE_ADDR"] = "10.0.0.10"
        assert gate.check(other, 20.0) is None
        assert gate.check(environ("/health"), 20.0) is None
        assert gate.check(environ("/metrics", authorization=f"Bearer {TOKEN}"), 70.0) is None
        assert gate.refused["throttled"] == 1

    def test_requests_without_credentials_guess_nothing(self):
        """A viewer page whose session ended fires several API calls: no lock-out."""
        gate = guard(TOKEN)
        stale = "netlog_session_9022=" + "0" * 64
        for _ in range(20):
            assert gate.check(environ("/api/records"), 0.0).status == 401
            assert gate.check(environ("/api/facets", cookie=stale), 0.0).status == 401
        assert gate.check(environ("/"), 0.0) is LOGIN
        assert gate.auth_failures == 40
        assert gate.login(TOKEN, "10.0.0.9", 0.0) is not None

    def test_wrong_logins_block(self):
        gate = guard(TOKEN)
        for _ in range(5):
            assert gate.login("guess", "10.0.0.9", 0.0) is None
        verdict = gate.check(environ("/login", "POST"), 1.0)
        assert verdict is not None
        assert verdict.status == 429

    def test_failures_spread_out_never_block(self):
        throttle = FailureThrottle(limit=5, window=60.0)
        for minute in range(20):
            for second in range(4):
                throttle.failed("a", minute * 61.0 + second)
            assert throttle.retry_after("a", minute * 61.0 + 5) == 0

    def test_bounded(self):
        throttle = FailureThrottle(max_sources=100)
        for i in range(10_000):
            throttle.failed(f"10.0.{i // 256}.{i % 256}", 0.0)
        assert len(throttle) == 100


class TestLoginPage:
    """The login page's script writes text only, like the viewer's."""

    def test_script_never_writes_html(self):
        script = load_assets()["/login.js"][0].decode()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in script
        assert b"<script>" not in load_assets()["/login.html"][0]  # no inline script


class TestTokenFile:
    """The token file: read once, stripped, never empty."""

    def test_read_and_stripped(self, tmp_path):
        path = tmp_path / "token"
        path.write_text(f"  {TOKEN}\n")
        assert load_token(None, path) == TOKEN
        assert load_token(TOKEN, None) == TOKEN
        assert load_token(None, None) is None

    @pytest.mark.parametrize("content", ["", "\n  \n"])
    def test_empty_is_an_error(self, tmp_path, content):
        path = tmp_path / "token"
        path.write_text(content)
        with pytest.raises(TokenError, match="is empty"):
            load_token(None, path)

    def test_missing_and_both(self, tmp_path):
        with pytest.raises(TokenError, match="cannot read"):
            load_token(None, tmp_path / "nope")
        with pytest.raises(TokenError, match="not both"):
            load_token(TOKEN, tmp_path / "nope")


class TestExposureWarning:
    """One line when bound beyond loopback without a token, naming the ports."""

    def test_exposed(self):
        line = exposure_warning("0.0.0.0", {"http": 9022, "log_tcp": 9020}, token_set=False)
        assert line is not None
        assert "\n" not in line
        assert "WARNING" in line
        assert "HTTP 9022: reads every record" in line
        assert "log_tcp 9020: writes records" in line
        assert "--auth-token" in line

    @pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
    def test_loopback_is_quiet(self, host):
        assert exposure_warning(host, {"http": 9022}, token_set=False) is None

    def test_token_is_quiet(self):
        assert exposure_warning("0.0.0.0", {"http": 9022}, token_set=True) is None
