"""The central viewer in a real browser: every host's records, ``host`` as a facet.

The browser fixtures are the viewer tests' own (Debian's chromium through
Playwright; skipped, saying why, when either is missing).
"""

from __future__ import annotations

import socket

import pytest
from collectproc import make_records, publish, start_collect
from natscluster import NatsCluster, nats_server_binary
from test_viewer_browser import browser, open_viewer, page
from test_viewer_browser import pytestmark as browser_marks

__all__ = ["browser", "page"]  # fixtures, used by name

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - skipped by browser_marks
    expect = None

pytestmark = [
    *browser_marks,
    pytest.mark.skipif(nats_server_binary() is None, reason="nats-server not installed"),
]


def test_host_facet_lists_every_host_and_filters(tmp_path, page, netlog_factory):
    with NatsCluster(tmp_path / "nats", 1) as cluster:
        publish(cluster.urls, make_records("web1", 12) + make_records("db", 5))
        collector = start_collect(tmp_path / "collect", cluster.urls)
        try:
            collector.wait_records(17)
            open_viewer(page, collector)
            rows = page.locator("#records .rec")
            expect(rows).to_have_count(17)
            hosts = page.locator('.facet[data-field="host"] .fv')
            expect(hosts).to_have_count(2)
            hosts.filter(has_text="db").click()
            expect(page.locator("#q")).to_have_value("host=db")
            expect(rows).to_have_count(5)
            # A plain netlog's records name no host: the facet stays hidden there.
            plain = netlog_factory("--echo-port", "-1")
            with socket.create_connection(plain.address("log_tcp"), timeout=10) as sock:
                sock.sendall(b'{"event": "no host here"}\n')
            plain.wait_records(1)
            open_viewer(page, plain)
            # The facets have been drawn (level's one value) and host's had none.
            expect(page.locator('.facet[data-field="level"] .fv')).to_have_count(1)
            expect(page.locator('.facet[data-field="host"]')).to_be_hidden()
        finally:
            collector.finish()
