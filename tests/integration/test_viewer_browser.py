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
import re
import socket
import time
from pathlib import Path

import pytest
from browserkit import MARKS, chromium, expect, watched_page

from netlog.sinks.encode import format_time
from netlog.store.writer import rotated_paths
from netlogproc import HOST, ROOT, wait_for

SCREENSHOT = ROOT / "netlog" / "viewer" / "screenshot.png"
TIMEOUT = 5.0

pytestmark = MARKS


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    with chromium(profile, viewport={"width": 1280, "height": 760}) as context:
        yield context


@pytest.fixture
def page(browser):
    with watched_page(browser) as page:
        yield page


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


def open_viewer(page, server, query=""):
    page.goto(f"http://{HOST}:{server.ports['http']}/{query}")
    expect(page.locator("#status")).to_have_text(re.compile("live|paused"))


def send_numbered(server, count, word="request"):
    """``count`` JSON lines over one TCP connection, ``n`` 0 (oldest) to ``count - 1``."""
    with socket.create_connection(server.address("log_tcp"), timeout=TIMEOUT) as sock:
        lines = (
            json.dumps({"event": f"{word} {i}", "logger": f"app.w{i % 3}", "n": i}).encode()
            for i in range(count)
        )
        sock.sendall(b"\n".join(lines) + b"\n")

    def stored():
        found = [
            json.loads(line)
            for path in rotated_paths(server.log_dir)
            for line in path.read_bytes().splitlines()
        ]
        return found if len(found) >= count else None

    return wait_for(stored, 15, what=f"{count} records on disk")


def write_history(log_dir, minutes=14, per_minute=40):
    """Records spread over the last quarter of an hour, in the store before the server starts.

    The screenshot's histogram then has a shape: a steady trickle of info
    with warnings, and a burst of errors a few minutes ago.
    """
    log_dir.mkdir(parents=True)
    now = time.time()
    lines = []
    for i in range(minutes * per_minute):
        when = format_time(now - minutes * 60 + i * 60 / per_minute)
        minute = i // per_minute
        level = "info"
        if i % 9 == 0:
            level = "warning"
        if minute in (8, 9) and i % 3 == 0:
            level = "error"
        record = {
            "ts": when,
            "received": when,
            "level": level,
            "logger": ("shop.web", "shop.db", "shop.payments", "worker.mail")[i % 4],
            "message": "upstream timeout" if level == "error" else f"GET /products/{i % 50} 200",
            "fields": {"ms": (i * 37) % 400, "user": ("ada", "bob", "cy", "dee")[i % 4]},
            "peer": "10.0.0.7:51234",
            "format": "json",
        }
        lines.append(json.dumps(record) + "\n")
    (log_dir / "records.jsonl").write_text("".join(lines))


class TestLiveTail:
    """Records stream into the page as they arrive, drawn safely."""

    def test_records_appear_and_expand(self, netlog_factory, page):
        server = netlog_factory("--echo-port", "-1")
        post_json(server, {"event": "already there", "logger": "boot"})
        open_viewer(page, server)
        rows = page.locator("#records .rec")
        expect(rows).to_have_count(1)  # what is stored comes first

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
        expect(rows).to_have_count(6)
        expect(rows.first).to_contain_text("evil")
        assert page.locator("#records img").count() == 0  # shown as text, never as HTML
        assert "\\x1b[31m\\u202eevil" in rows.first.inner_text()
        # The chips count the range's matches (the histogram), refreshed while live.
        expect(page.locator(".chip.lvl-error b")).to_have_text("1", timeout=10_000)
        expect(page.locator(".chip.lvl-info b")).to_have_text("2")

        failed = rows.filter(has_text="order failed for ada")
        failed.click()
        traceback = failed.locator(".detail pre.exc")
        expect(traceback).to_be_visible()
        expect(traceback).to_contain_text("KeyError: 'missing'")
        failed.locator(".line").click()
        expect(traceback).to_be_hidden()

    def test_live_shows_only_what_the_query_matches(self, netlog_factory, page):
        server = netlog_factory("--echo-port", "-1")
        open_viewer(page, server, "?q=level%3E%3Derror")
        rows = page.locator("#records .rec")
        post_json(server, {"event": "fine"}, {"event": "broken", "level": "error"})
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("broken")
        post_json(server, {"event": "worse", "level": "critical"}, {"event": "ok again"})
        expect(rows).to_have_count(2)
        expect(rows.first).to_contain_text("worse")

    def test_live_off_keeps_the_page_still(self, netlog_factory, page):
        server = netlog_factory("--echo-port", "-1")
        open_viewer(page, server)
        rows = page.locator("#records .rec")
        post_json(server, {"event": "one"})
        expect(rows).to_have_count(1)
        page.click("#live")
        expect(page.locator("#status")).to_have_text("paused")
        assert "live=0" in page.url
        post_json(server, {"event": "two"}, {"event": "three", "level": "error"})
        expect(page.locator("#live")).to_have_text("Live (2 new)")
        expect(rows).to_have_count(1)
        page.click("#live")
        expect(rows).to_have_count(3)
        expect(rows.first).to_contain_text("three")

    def test_server_shutdown_is_shown(self, netlog_factory, page):
        server = netlog_factory("--echo-port", "-1")
        open_viewer(page, server)
        assert server.stop(timeout=15) == 0
        expect(page.locator("#status")).not_to_have_text("live")


class TestSearch:
    """Everything stored is findable: search, facets, scroll, links."""

    def test_search_finds_a_record_long_scrolled_away(self, netlog_factory, page):
        server = netlog_factory("--echo-port", "-1")
        post_json(server, {"event": "disk quota exceeded", "level": "error", "logger": "ops"})
        send_numbered(server, 400)  # the error is far below the first page now
        open_viewer(page, server)
        rows = page.locator("#records .rec")
        expect(rows.first).to_contain_text("request 399")
        assert rows.filter(has_text="disk quota").count() == 0
        page.keyboard.press("/")
        expect(page.locator("#q")).to_be_focused()
        page.keyboard.type("quota")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("disk quota exceeded")
        expect(page.locator(".chip.lvl-error b")).to_have_text("1")
        expect(page.locator(".chip.lvl-info b")).to_have_text("0")
        assert "q=quota" in page.url
        page.fill("#q", 'level>="loud')
        expect(page.locator("#qerror")).to_contain_text("quote")
        page.fill("#q", "")
        expect(page.locator("#qerror")).to_be_hidden()

    def test_a_facet_click_adds_a_term(self, netlog_factory, page):
        server = netlog_factory("--echo-port", "-1")
        send_numbered(server, 30)
        open_viewer(page, server)
        rows = page.locator("#records .rec")
        expect(rows).to_have_count(30)
        logger_facet = page.locator('.facet[data-field="logger"] .fv')
        expect(logger_facet).to_have_count(3)
        logger_facet.filter(has_text="app.w1").click()
        expect(page.locator("#q")).to_have_value("logger=app.w1")
        expect(rows).to_have_count(10)
        page.fill("#field", "n")
        picked = page.locator("#picked .fv")
        expect(picked).to_have_count(8)
        picked.first.click()
        expect(rows).to_have_count(1)
        assert page.locator("#q").input_value().startswith("logger=app.w1 n=")

    def test_infinite_scroll_reaches_the_oldest_record(self, netlog_factory, page):
        server = netlog_factory("--echo-port", "-1", "--max-bytes", "16KiB", "--backups", "100")
        send_numbered(server, 450)
        assert len(list(server.log_dir.glob("records.jsonl.*"))) > 3
        open_viewer(page, server)
        rows = page.locator("#records .rec")
        expect(rows.first).to_contain_text("request 449")
        for _ in range(10):  # bounded: 450 records are three pages
            if page.locator("#more.end").count():
                break
            page.keyboard.press("End")
            page.mouse.wheel(0, 100_000)
            page.wait_for_timeout(200)
        expect(page.locator("#more")).to_have_class("more end")
        expect(rows).to_have_count(450)
        expect(rows.last).to_contain_text("request 0")
        texts = rows.locator(".m").all_inner_texts()
        assert [int(re.match(r"request (\d+)", t)[1]) for t in texts] == list(range(449, -1, -1))

    def test_the_url_reproduces_the_view(self, netlog_factory, page, browser):
        server = netlog_factory("--echo-port", "-1")
        send_numbered(server, 20)
        open_viewer(page, server)
        page.fill("#q", "logger=app.w2")
        page.fill("#field", "n")
        page.click('#ranges button[data-since="15m"]')
        rows = page.locator("#records .rec")
        expect(rows).to_have_count(6)
        expect(page.locator("#picked .fv")).to_have_count(6)
        link = page.url
        other = browser.new_page()
        try:
            other.goto(link)
            expect(other.locator("#q")).to_have_value("logger=app.w2")
            expect(other.locator("#field")).to_have_value("n")
            expect(other.locator('#ranges button[data-since="15m"]')).to_have_attribute(
                "aria-pressed", "true"
            )
            expect(other.locator("#records .rec")).to_have_count(6)
            expect(other.locator("#picked .fv")).to_have_count(6)
        finally:
            other.close()

    def test_permalink_and_copy_as_json(self, netlog_factory, page, browser):
        server = netlog_factory("--echo-port", "-1")
        stored = send_numbered(server, 5)
        open_viewer(page, server)
        browser.grant_permissions(["clipboard-read", "clipboard-write"])
        row = page.locator("#records .rec").filter(has_text="request 2")
        row.click()
        row.locator(".copy").click()
        expect(row.locator(".copy")).to_have_text("copied")
        copied = json.loads(page.evaluate("navigator.clipboard.readText()"))
        assert copied == stored[2]
        href = row.locator("a.permalink").get_attribute("href")
        assert href.endswith("?id=" + stored[2]["id"])
        send_numbered(server, 300, word="later")  # the record is long gone from the top
        page.goto(href)
        single = page.locator("#single .rec")
        expect(single).to_contain_text("request 2")
        expect(single.locator(".detail")).to_contain_text(stored[2]["id"])
        page.keyboard.press("Escape")
        expect(page.locator("#single")).to_be_hidden()
        assert "id=" not in page.url

    def test_keyboard(self, netlog_factory, page):
        server = netlog_factory("--echo-port", "-1")
        send_numbered(server, 5)
        open_viewer(page, server)
        rows = page.locator("#records .rec")
        expect(rows).to_have_count(5)
        page.locator("h1").click()
        page.keyboard.press("j")
        page.keyboard.press("j")
        expect(rows.nth(1)).to_have_class(re.compile(r"\bsel\b"))
        page.keyboard.press("k")
        expect(rows.nth(0)).to_have_class(re.compile(r"\bsel\b"))
        page.keyboard.press("Enter")
        expect(rows.nth(0).locator(".detail")).to_be_visible()
        page.keyboard.press("Escape")
        expect(rows.nth(0).locator(".detail")).to_be_hidden()
        page.keyboard.press("/")
        expect(page.locator("#q")).to_be_focused()
        page.keyboard.press("Escape")
        expect(page.locator("#q")).not_to_be_focused()

    def test_histogram_drag_zooms_and_dates_show_across_days(self, netlog_factory, page, tmp_path):
        write_history(tmp_path / "history")
        server = netlog_factory("--echo-port", "-1", "--log-dir", str(tmp_path / "history"))
        open_viewer(page, server, "?since=15m")
        cols = page.locator("#bars .col")
        expect(cols).to_have_count(60)
        expect(page.locator(".chip.lvl-error b")).not_to_have_text("0")
        box_a = cols.nth(20).bounding_box()
        box_b = cols.nth(30).bounding_box()
        page.mouse.move(box_a["x"] + 2, box_a["y"] + 30)
        page.mouse.down()
        page.mouse.move(box_b["x"] + 2, box_b["y"] + 30, steps=5)
        page.mouse.up()
        expect(page.locator("#live")).to_be_disabled()
        assert "until=" in page.url
        expect(page.locator("#to")).not_to_have_value("")
        # Within one day, times only.
        expect(page.locator("#records .rec .t").first).to_have_text(
            re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$")
        )
        page.click('#ranges button[data-since="7d"]')
        expect(page.locator("#records .rec .t").first).to_have_text(
            re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")
        )

    def test_screenshot(self, netlog_factory, page, tmp_path):
        history = tmp_path / "history"
        write_history(history)
        server = netlog_factory("--echo-port", "-1", "--log-dir", str(history))
        send_demo_records(server)
        open_viewer(page, server, "?since=15m&field=user")
        rows = page.locator("#records .rec")
        expect(rows.filter(has_text="deploy finished")).to_have_count(1)
        rows.filter(has_text="payment declined").click()
        expect(page.locator(".rec.open pre.exc")).to_be_visible()
        expect(page.locator("#picked .fv")).not_to_have_count(0)
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
