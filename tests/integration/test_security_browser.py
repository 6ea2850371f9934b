"""The HTTP port's defences in a real browser: Debian's chromium, driven by Playwright.

A page served from another origin (a small ``http.server`` on another
port of 127.0.0.1: the same *site*, so a SameSite=Strict cookie still goes
along) tries what a hostile page would: read ``/api/records`` with
``fetch``, in CORS mode and in ``no-cors`` mode, and write records with a
form posted to ``/log``.  Then the login form, and the viewer behind it.
Launched and skipped as in test_viewer_browser.py; screenshots go to the
test's tmp_path.
"""

import http.client
import http.server
import json
import re
import threading

import pytest
from browserkit import MARKS, chromium, expect, watched_page

from netlogproc import HOST, wait_for

TIMEOUT = 5.0
TOKEN = "browser-token-51c0"

pytestmark = MARKS

ATTACKER_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>another origin</title></head>
<body><h1>a page from another origin</h1></body></html>
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    with chromium(profile, viewport={"width": 1100, "height": 640}) as context:
        yield context


@pytest.fixture
def page(browser):
    browser.clear_cookies()
    with watched_page(browser) as page:
        yield page


class _AttackerPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(ATTACKER_PAGE)))
        self.end_headers()
        self.wfile.write(ATTACKER_PAGE)

    def log_message(self, *_args):
        pass


@pytest.fixture
def other_origin():
    """``http://127.0.0.1:<another port>/``, served until the test ends."""
    server = http.server.ThreadingHTTPServer((HOST, 0), _AttackerPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{HOST}:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=TIMEOUT)


def request(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(HOST, server.ports["http"], timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post_marker(server, message, headers=None):
    body = json.dumps({"event": message}).encode()
    status, _ = request(
        server, "POST", "/log", body, {"Content-Type": "application/json", **(headers or {})}
    )
    assert status == 202
    wait_for(lambda: any(r["message"] == message for r in server.records()), what=message)
    return [r["message"] for r in server.records()]


def refused_cross_site(server, headers=None):
    status, body = request(server, "GET", "/metrics", headers=headers)
    assert status == 200
    match = re.search(
        rb'^netlog_http_refused_total\{reason="cross_site"\} (\S+)$', body, re.MULTILINE
    )
    assert match is not None
    return float(match.group(1))


READ = """async (url) => {
  const out = {};
  try {
    const response = await fetch(url, {credentials: "include"});
    out.cors = "read " + response.status + " " + (await response.text()).length;
  } catch (error) {
    out.cors = "blocked " + error.name;
  }
  try {
    const response = await fetch(url, {mode: "no-cors", credentials: "include"});
    const body = await response.text();
    out.noCors = response.type + " " + response.status + " " + body.length;
  } catch (error) {
    out.noCors = "blocked " + error.name;
  }
  return out;
}"""

FORM_POST = """(url) => {
  const form = document.createElement("form");
  form.method = "POST";
  form.action = url;
  form.enctype = "application/x-www-form-urlencoded";
  for (const [name, value] of [["msg", "injected by a form"], ["level", "critical"]]) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.appendChild(input);
  }
  document.body.appendChild(form);
  form.submit();
}"""


def attack(page, server, other_origin, tmp_path, name):
    """Read and write from ``other_origin``: what the page got, after the form's navigation."""
    base = f"http://{HOST}:{server.ports['http']}"
    page.goto(other_origin)
    got = page.evaluate(READ, f"{base}/api/records")
    with page.expect_navigation():
        page.evaluate(FORM_POST, f"{base}/log")
    page.screenshot(path=str(tmp_path / f"{name}.png"))
    return got, page.locator("body").inner_text()


class TestAnotherOrigin:
    """A page from another origin can neither read the records nor write one."""

    def test_no_token(self, netlog_factory, page, other_origin, tmp_path):
        server = netlog_factory("--echo-port", "-1")
        post_marker(server, "secret record")
        got, shown = attack(page, server, other_origin, tmp_path, "cross-origin-no-token")
        assert got["cors"] == "blocked TypeError"  # no Access-Control-Allow-Origin
        assert got["noCors"] == "opaque 0 0"  # the page gets nothing it can read
        assert "forbidden" in shown  # the form's POST was refused by the server
        assert refused_cross_site(server) == 3  # both fetches and the form
        assert post_marker(server, "marker") == ["secret record", "marker"]

    def test_logged_in_browser_still_refused(self, netlog_factory, page, other_origin, tmp_path):
        """Logged in, the same-site page's requests carry the cookie: still refused."""
        server = netlog_factory("--echo-port", "-1", "--auth-token", TOKEN)
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        post_marker(server, "secret record", bearer)
        log_in(page, server)
        cookies = [c for c in page.context.cookies() if c["name"].startswith("netlog_session_")]
        assert len(cookies) == 1
        assert cookies[0]["httpOnly"]
        assert cookies[0]["sameSite"] == "Strict"
        got, shown = attack(page, server, other_origin, tmp_path, "cross-origin-logged-in")
        assert got["cors"] == "blocked TypeError"
        assert got["noCors"] == "opaque 0 0"
        assert "forbidden" in shown
        assert refused_cross_site(server, bearer) == 3
        assert post_marker(server, "marker", bearer) == ["secret record", "marker"]


def log_in(page, server):
    page.goto(f"http://{HOST}:{server.ports['http']}/")
    page.fill("#token", TOKEN)
    page.click("#submit")
    expect(page.locator("#status")).to_have_text(re.compile("live|paused"))


class TestLogin:
    """With a token the viewer asks for it once, then works as before."""

    def test_login_form_then_viewer(self, netlog_factory, page, tmp_path):
        server = netlog_factory("--echo-port", "-1", "--auth-token", TOKEN)
        post_marker(server, "behind the token", {"Authorization": f"Bearer {TOKEN}"})
        page.goto(f"http://{HOST}:{server.ports['http']}/")
        expect(page.locator("#token")).to_be_visible()
        page.screenshot(path=str(tmp_path / "login.png"))
        assert page.locator("#records").count() == 0  # the viewer is not served

        page.fill("#token", "wrong")
        page.click("#submit")
        expect(page.locator("#status")).to_have_text("wrong token")
        assert page.context.cookies() == []

        page.fill("#token", TOKEN)
        page.click("#submit")
        expect(page.locator("#status")).to_have_text(re.compile("live|paused"))
        rows = page.locator("#records .rec")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("behind the token")
        # Live: a record sent now arrives over /events, which the cookie opened.
        post_marker(server, "arrives live", {"Authorization": f"Bearer {TOKEN}"})
        expect(rows).to_have_count(2)
        page.screenshot(path=str(tmp_path / "viewer-logged-in.png"))

        # A reload keeps the session: the form is not asked again.
        page.reload()
        expect(page.locator("#status")).to_have_text(re.compile("live|paused"))
        assert page.locator("#token").count() == 0

        # The session gone, the next search brings the login form back
        # (paused first: while live the page refreshes by itself, which would too).
        page.click("#live")
        expect(page.locator("#live")).to_have_attribute("aria-pressed", "false")
        page.context.clear_cookies()
        page.fill("#q", "token")
        page.press("#q", "Enter")
        expect(page.locator("#token")).to_be_visible()
