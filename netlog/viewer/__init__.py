"""The live viewer: a static page (HTML, CSS, JS shipped as package data) and its feed.

No build step and nothing from a CDN: the files here are served as they
are by netlog's own HTTP listener.  The page draws every record with
``textContent``, never ``innerHTML``, because every string in a record
came from the network.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from netlog.viewer.feed import RecordFeed

__all__ = ["ASSETS", "RecordFeed", "load_assets"]

#: URL path -> (file in this package, Content-Type).
ASSETS: Final = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/viewer.css": ("viewer.css", "text/css; charset=utf-8"),
    "/viewer.js": ("viewer.js", "text/javascript; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
    # The login page, served at / while an access token is set and missing.
    "/login.html": ("login.html", "text/html; charset=utf-8"),
    "/login.js": ("login.js", "text/javascript; charset=utf-8"),
    "/login.css": ("login.css", "text/css; charset=utf-8"),
}


def load_assets() -> dict[str, tuple[bytes, str]]:
    """Read every asset once: URL path -> (body, Content-Type)."""
    files = resources.files(__name__)
    return {
        path: ((files / name).read_bytes(), content_type)
        for path, (name, content_type) in ASSETS.items()
    }
