"""Which ``Host`` header values the HTTP port answers: the defence against DNS rebinding.

A page on ``evil.example`` whose name is made to resolve to 127.0.0.1 talks
to netlog as "same origin" as far as the browser knows, but every request
it sends carries ``Host: evil.example``.  Answering only names netlog knows
as its own closes that door, as Jupyter, Vite and webpack-dev-server do.

Allowed: ``localhost`` and ``*.localhost`` (RFC 6761: browsers resolve them
to loopback themselves, so they cannot be rebound), any IP literal (a
rebinding needs a *name*; a page reached by IP is its own origin, the same
choice as webpack-dev-server's ``allowedHosts: "auto"``), the machine's
host name, the bound address when it is a name, and ``--allowed-hosts``;
``*`` allows any.  A request with no ``Host`` at all (HTTP/1.0 from a
script) is allowed: every browser sends one.  The port is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

__all__ = ["ANY_HOST", "AllowedHosts", "allowed_hosts", "host_name"]

#: The ``--allowed-hosts`` entry that allows every name.
ANY_HOST: Final = "*"


def host_name(header: str) -> str:
    """``Host`` without its port, lower case, without a final dot: ``[::1]:9022`` -> ``::1``."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.partition("%")[0])
    except ValueError:
        return False
    return True


class AllowedHosts:
    """The names the HTTP port answers to (see the module docstring)."""

    def __init__(self, names: Iterable[str]) -> None:
        cleaned = {host_name(name) for name in names if name.strip()}
        self.any = ANY_HOST in cleaned
        self.names = frozenset(cleaned - {ANY_HOST})

    def allows(self, header: str | None) -> bool:
        """Whether a request with this ``Host`` value (``None``: none sent) is answered."""
        if header is None or self.any:
            return True
        name = host_name(header)
        if not name:
            return False
        return (
            name in self.names or name == "localhost" or name.endswith(".localhost") or _is_ip(name)
        )


def allowed_hosts(extra: Iterable[str], *, bound: str, hostname: str) -> AllowedHosts:
    """The allowed names for a server bound to ``bound`` on a machine called ``hostname``.

    ``hostname`` is ``socket.gethostname()``, which reads the kernel's name
    and never asks DNS; the fully qualified name is not looked up, since a
    container may have no DNS server to answer (add it with ``--allowed-hosts``).
    """
    return AllowedHosts([*extra, bound, hostname])
