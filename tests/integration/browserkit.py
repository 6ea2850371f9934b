"""Debian's chromium under Playwright, launched and skipped in one place.

`playwright install` is never run (it downloads a browser): the browser tests
launch the system's chromium and are skipped, saying why, when it or
Playwright is missing.  Each test module keeps its own fixtures (viewport,
cookies) and builds them from these two context managers.
"""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

__all__ = ["CHROMIUM", "MARKS", "chromium", "expect", "watched_page"]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        sync_playwright is None,
        reason="Playwright is not installed (pip install -e '.[test]')",
    ),
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)"),
]


@contextmanager
def chromium(profile: Path, viewport: dict[str, int]) -> Iterator["BrowserContext"]:
    """A headless persistent context in ``profile``; skips the test if chromium will not start."""
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
                viewport=viewport,
                color_scheme="dark",
            )
        except PlaywrightError as exc:  # pragma: no cover - depends on the machine
            pytest.skip(f"chromium would not start: {str(exc).splitlines()[0]}")
        yield context
        context.close()


@contextmanager
def watched_page(context: "BrowserContext") -> Iterator["Page"]:
    """A new page whose uncaught script errors fail the test once it is closed."""
    page = context.new_page()
    page.set_default_timeout(5000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert errors == [], errors
