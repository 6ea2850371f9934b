# ruff: noqa: INP001 - a script beside docker/base-image.sh, not a package
"""Print the Debian mirror this machine's apt uses, for ``docker/base-image.sh``.

A machine that cannot reach a container registry can often still reach its
own Debian mirror (or a local one, ``file:/``), so the base image is built
from the same place apt installs from.  The first non-security Debian mirror
serving bookworm wins, then any Debian one, then ``http://deb.debian.org/debian``.
Reads ``/etc/apt/sources.list``, ``sources.list.d/*.list`` and the deb822
``sources.list.d/*.sources``.  Standard library only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DEFAULT = "http://deb.debian.org/debian"
SUITE = "bookworm"


def one_line_mirrors(text: str) -> list[tuple[str, list[str]]]:
    """``(uri, [suite])`` of each ``deb`` line of a one-line-style sources file."""
    found: list[tuple[str, list[str]]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        if rest.startswith("["):
            rest = rest.split("]", 1)[1].strip()
        parts = rest.split()
        if len(parts) >= 2:  # a URI and a suite
            found.append((parts[0], [parts[1]]))
    return found


def deb822_mirrors(text: str) -> list[tuple[str, list[str]]]:
    """``(uri, suites)`` of each enabled ``deb`` stanza of a deb822 ``.sources`` file."""
    found: list[tuple[str, list[str]]] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for raw in stanza.splitlines():
            if raw.startswith("#") or ":" not in raw:
                continue
            key, _, value = raw.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = fields.get("suites", "").split()
        found.extend((uri, suites) for uri in fields.get("uris", "").split())
    return found


def mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The mirror to debootstrap from (see the module's docstring)."""
    candidates: list[tuple[str, list[str]]] = []
    main_list = etc_apt / "sources.list"
    if main_list.is_file():
        candidates += one_line_mirrors(main_list.read_text(errors="replace"))
    for path in sorted((etc_apt / "sources.list.d").glob("*.list")):
        candidates += one_line_mirrors(path.read_text(errors="replace"))
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        candidates += deb822_mirrors(path.read_text(errors="replace"))
    debian = [
        (uri, suites)
        for uri, suites in candidates
        if "security" not in uri
        and "debian" in uri
        and not any("security" in suite for suite in suites)
        and uri.startswith(("http://", "https://", "file:/"))
    ]
    for uri, suites in debian:
        if SUITE in suites:
            return uri
    return debian[0][0] if debian else DEFAULT


if __name__ == "__main__":
    sys.stdout.write(mirror() + "\n")
