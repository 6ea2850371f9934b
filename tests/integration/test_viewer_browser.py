"""The live viewer in a real browser: Debian's chromium, driven by Playwright.

`playwright install` is never run (it downloads a browser); the tests launch
the system's chromium and are skipped, saying why, when it or Playwright is
missing.  NETLOG_UPDATE_SCREENSHOT=1 writes the README's screenshot to
netlog/viewer/screenshot.png; otherwise it goes to the test's tmp_path.
"""

import http.client
import json
import logging
import logging.handlers
import os
import shutil
import socket
from pathlib import Path

import pytest

from netlogproc import HOST, ROOT

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = ROOT / "netlog" / "viewer" / "screenshot.png"
TIMEOUT = 5.0

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        sync_playwright is None,
        reason="Playwright is not installed (pip install -e '.[test]')",
    ),
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        try:
            context = playwright.chromium.launch_persistent_context(
                str(profile),
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                ],
                viewport={"width": 1280, "height": 760},
                color_scheme="dark",
            )
        except PlaywrightError as exc:  # pragma: no cover - depends on the machine
            pytest.skip(f"chromium would not start: {str(exc).splitlines()[0]}")
        yield context
        context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    page.set_default_timeout(5000)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert errors == [], errors


def stdlib_logger(name, handler):
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


def post_json(server, *objects):
    conn = http.client.HTTPConnection(HOST, server.ports["http"], timeout=TIMEOUT)
    try:
        body = b"".join(json.dumps(obj).encode() + b"\n" for obj in objects)
        conn.request("POST", "/log", body, {"Content-Type": "application/x-ndjson"})
        assert conn.getresponse().status == 202
    finally:
        conn.close()


def open_viewer(page, server):
    page.goto(f"http://{HOST}:{server.ports['http']}/")
    expect(page.locator("#status")).to_have_text("live")


class TestViewer:
    """Records stream into the page, filter, expand, pause."""

    def test_records_appear_filter_and_expand(self, netlog_factory, page):
        server = netlog_factory("--echo-port", "-1")
        post_json(server, {"event": "already there", "logger": "boot"})
        open_viewer(page, server)
        rows = page.locator("#records .rec")
        expect(rows).to_have_count(1)  # the recent records come first

        handler = logging.handlers.SocketHandler(*server.address("log_tcp"))
        logger = stdlib_logger("shop.checkout", handler)
        logger.debug("cart loaded", extra={"items": 3})
        logger.info("payment accepted", extra={"user": "ada", "amount": 42})
        logger.warning("slow payment provider", extra={"ms": 1870})
        try:
            {}["missing"]
        except KeyError:
            logger.exception("order failed for %s", "ada")
        logger.critical("<img src=x onerror=alert(1)> \x1b[31m\u202eevil")
        handler.close()
        # Within a second of being sent, all five are on the page.
        expect(rows).to_have_count(6, timeout=1000)
        expect(rows.first).to_contain_text("evil")
        assert page.locator("#records img").count() == 0  # shown as text, never as HTML
        assert "\\x1b[31m\\u202eevil" in rows.first.inner_text()
        expect(page.locator(".chip.lvl-error b")).to_have_text("1")
        expect(page.locator(".chip.lvl-info b")).to_have_text("2")

        page.select_option("#level", "40")  # error and above
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_have_class("rec lvl-critical")
        expect(rows.nth(1)).to_have_class("rec lvl-error")

        failed = rows.filter(has_text="order failed for ada")
        failed.click()
        traceback = failed.locator(".detail pre.exc")
        expect(traceback).to_be_visible()
        expect(traceback).to_contain_text("Traceback (most recent call last)")
        expect(traceback).to_contain_text("KeyError: 'missing'")
        failed.locator(".line").click()
        expect(traceback).to_be_hidden()

        page.select_option("#level", "0")
        page.fill("#logger", "shop")
        expect(rows).to_have_count(5)
        page.fill("#logger", "sho")  # a dotted prefix, not a substring
        expect(rows).to_have_count(0)
        expect(page.locator("#empty")).to_contain_text("No records match")
        page.fill("#logger", "")
        page.fill("#text", "ADA")  # messages and fields, any case
        expect(rows).to_have_count(2)
        page.fill("#text", "")
        expect(rows).to_have_count(6)

    def test_pause_and_resume(self, netlog_factory, page):
        server = netlog_factory("--echo-port", "-1")
        open_viewer(page, server)
        rows = page.locator("#records .rec")
        post_json(server, {"event": "one"})
        expect(rows).to_have_count(1)
        page.click("#pause")
        expect(page.locator("#pause")).to_have_text("Resume")
        post_json(server, {"event": "two"}, {"event": "three", "level": "error"})
        expect(page.locator("#pause")).to_have_text("Resume (2)")
        expect(rows).to_have_count(1)
        page.click("#pause")
        expect(rows).to_have_count(3)
        expect(rows.first).to_contain_text("three")

    def test_server_shutdown_is_shown(self, netlog_factory, page):
        server = netlog_factory("--echo-port", "-1")
        open_viewer(page, server)
        assert server.stop(timeout=15) == 0
        expect(page.locator("#status")).not_to_have_text("live")

    def test_screenshot(self, netlog_factory, page, tmp_path):
        server = netlog_factory("--echo-port", "-1")
        open_viewer(page, server)
        send_demo_records(server)
        rows = page.locator("#records .rec")
        expect(rows).to_have_count(16)
        rows.filter(has_text="payment declined").click()
        expect(page.locator(".rec.open pre.exc")).to_be_visible()
        path = (
            SCREENSHOT
            if os.environ.get("NETLOG_UPDATE_SCREENSHOT") == "1"
            else tmp_path / "viewer.png"
        )
        page.screenshot(path=str(path))
        assert Path(path).read_bytes()[:4] == b"\x89PNG"


def charge_card(order):
    raise ConnectionError(f"card processor unreachable for order {order}")


def send_demo_records(server):
    """A plausible quarter of an hour of a small shop, for the screenshot."""
    handler = logging.handlers.SocketHandler(*server.address("log_tcp"))
    web = stdlib_logger("shop.web", handler)
    db = stdlib_logger("shop.db", handler)
    pay = stdlib_logger("shop.payments", handler)
    web.info("GET /products 200", extra={"ms": 12, "user": "ada"})
    db.debug("pool ready", extra={"size": 10})
    web.info("GET /cart 200", extra={"ms": 8, "user": "ada"})
    pay.info("charge created", extra={"order": 1042, "amount": "42.00", "currency": "EUR"})
    web.warning("slow request", extra={"path": "/search", "ms": 1870})
    db.warning("query took 1.2s", extra={"table": "orders", "rows": 18204})
    try:
        charge_card(1043)
    except ConnectionError:
        pay.exception("payment declined for order %d", 1043, extra={"order": 1043, "retry": True})
    web.info("POST /checkout 502", extra={"ms": 3004, "user": "bob"})
    handler.close()
    post_json(
        server,
        {"event": "job started", "logger": "worker.mail", "level": "info", "queue": "emails"},
        {"event": "sent 48 emails", "logger": "worker.mail", "level": "info", "took_s": 2.4},
        {"event": "disk 91% full", "logger": "ops.monitor", "level": "critical", "mount": "/var"},
        {
            "event": "cache miss ratio high",
            "logger": "shop.cache",
            "level": "warning",
            "ratio": 0.42,
        },
        {"event": "user signed in", "logger": "shop.auth", "level": "info", "user": "cy"},
    )
    with socket.create_connection(server.address("log_tcp"), timeout=TIMEOUT) as sock:
        sock.sendall(b"2024/05/01 12:00:00 legacy service: heartbeat ok\n")
        sock.sendall(
            b'{"event": "retrying webhook", "level": "warning", "logger": "shop.hooks", '
            b'"attempt": 2}\n'
        )
    post_json(
        server, {"event": "deploy finished", "level": "info", "logger": "ci", "version": "1.8.2"}
    )
