"""TLS for the log port and the HTTP port: the contexts, their reload, the bounded handshake.

One :class:`TlsContexts` per process, built from ``--tls-cert``,
``--tls-key`` and ``--tls-client-ca``: TLS 1.2 and later only, the client
certificate required and verified against ``--tls-client-ca`` on the log
port when it is given (HTTPS never asks for one: browsers and ``curl``
would have to be configured for it).  :meth:`TlsContexts.reload` (SIGHUP)
loads the files into *new* contexts: connections already open keep the
context they were made with, new ones get the new certificate, and a
reload that fails keeps the old contexts and says why.

The handshake is done in the connection's own greenlet, never in the
accept loop, so a slow client delays nobody else; :func:`handshake` bounds
it as a whole (a client sending a byte a second resets no timer), and the
connection holds its ``--max-connections`` slot meanwhile, so the log
listener's shedding of silent connections applies to it as to any other.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, Final

import gevent
from gevent import ssl

from netlog.record import format_peer
from servers.logsink import LogStreamServer, StartDrain

if TYPE_CHECKING:
    from pathlib import Path

    from netlog.report import Reporter
    from netlog.stats import Stats

__all__ = [
    "HandshakeTimeout",
    "TlsContexts",
    "TlsError",
    "TlsLogStreamServer",
    "close",
    "handshake",
    "wrap",
]

#: The oldest protocol accepted: TLS 1.0 and 1.1 are deprecated (RFC 8996).
MINIMUM_VERSION: Final = ssl.TLSVersion.TLSv1_2


class TlsError(Exception):
    """A certificate, key or CA file that cannot be loaded: one line, for the user."""


class HandshakeTimeout(Exception):  # noqa: N818 - raised by gevent.Timeout into a handshake
    """The client did not finish its TLS handshake in time."""


def _context(cert: Path, key: Path | None, client_ca: Path | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        what = f"{cert} and {key}" if key is not None else str(cert)
        raise TlsError(f"cannot load the TLS certificate {what}: {_reason(exc)}") from exc
    # No TLS 1.3 session tickets: a log sender never reads, so tickets sent
    # after the handshake sat unread in its socket, and closing a socket with
    # unread data sends a reset, which makes the kernel here discard what the
    # sender had written and netlog had not read yet (records lost).  Long-lived
    # log connections gain nothing from resumption.
    context.num_tickets = 0
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(f"cannot load the client CA {client_ca}: {_reason(exc)}") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


class TlsContexts:
    """The server's TLS contexts: the log port's (mTLS when a client CA is given) and HTTPS's."""

    def __init__(self, cert: Path, key: Path | None, client_ca: Path | None) -> None:
        self.cert = cert
        self.key = key
        self.client_ca = client_ca
        self.log, self.http = self._load()
        self.loaded = 1
        """How many times the files were loaded (1 at start, +1 per successful reload)."""

    def _load(self) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        return (
            _context(self.cert, self.key, self.client_ca),
            _context(self.cert, self.key, None),
        )

    def reload(self) -> None:
        """Load the files again into new contexts, for new connections; raise ``TlsError``.

        Open connections are untouched: each SSL socket keeps the context it
        was made with.  On failure the current contexts stay.
        """
        self.log, self.http = self._load()
        self.loaded += 1


def wrap(sock: Any, context: ssl.SSLContext, stats: Stats, report: Reporter, name: str) -> Any:
    """``sock`` as the server side of a TLS connection, its handshake not begun.

    ``None`` when the peer reset the connection before: CPython's
    ``wrap_socket`` finds the socket unconnected and probes it with
    ``recv(1)``, which raises.  That is a refused handshake like any other
    (:func:`handshake`), not an internal error; ``sock`` stays its caller's.
    """
    try:
        return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    except OSError as exc:
        _refused(exc, sock, stats, report, name)
        return None


def handshake(tls: Any, seconds: float, stats: Stats, report: Reporter, name: str) -> bool:
    """Complete the server's handshake on ``tls`` (from :func:`wrap`) within ``seconds``.

    ``False`` when it failed, and then ``tls`` is closed.  A refused
    handshake (a plain-text client, TLS 1.1, a client certificate missing
    or not signed by the client CA) is counted in ``notes["tls_refused"]``,
    a timeout in ``notes["tls_handshake_timeout"]``, and both are reported
    at most once per ten seconds.  Exceptions thrown into the greenlet
    (shutdown, shedding) pass through, and the handshake may be resumed.
    """
    try:
        with gevent.Timeout(seconds, HandshakeTimeout):
            tls.do_handshake()
    except HandshakeTimeout:
        stats.notes["tls_handshake_timeout"] += 1
        report(
            f"{name}: TLS handshake from {_peer(tls)} not finished within {seconds:g}s: closed",
            key=f"{name}:tls_timeout",
        )
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        _refused(exc, tls, stats, report, name)
    else:
        return True
    close(tls)
    return False


def _refused(exc: BaseException, sock: Any, stats: Stats, report: Reporter, name: str) -> None:
    """Count a refused handshake and report it (at most once per ten seconds)."""
    stats.notes["tls_refused"] += 1
    report(
        f"{name}: TLS handshake from {_peer(sock)} refused: {_reason(exc)}",
        key=f"{name}:tls_refused",
    )


def _peer(sock: Any) -> str:
    try:
        return format_peer(sock.getpeername())
    except OSError:
        return "?"


def close(sock: Any) -> None:
    """Close a socket whatever state it is in."""
    with contextlib.suppress(OSError):
        sock.close()


class TlsLogStreamServer(LogStreamServer):
    """The log listener over TLS (RFC 5425): the same decoders, drain and limits as log_tcp.

    Every connection is a :class:`LogStreamServer` connection once its
    handshake is done; the handshake itself has ``--idle-timeout`` in all.
    At shutdown a connection still in its handshake may finish it within
    the grace (a TLS 1.3 client may have sent records right behind its
    last handshake message).  The shutdown's half-close is skipped on TLS:
    shutting down the write side of a TLS socket ends the TLS session, and
    the records still in flight would be lost with it.
    """

    def __init__(self, *args: Any, contexts: TlsContexts, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.contexts = contexts

    def _open(self, sock: Any) -> Any:
        """Complete the handshake, within ``--idle-timeout`` (or the grace at shutdown)."""
        deadline = time.monotonic() + self.idle_timeout
        # The context in force when the connection came: a reload meanwhile
        # is for the connections after it.
        tls = wrap(sock, self.contexts.log, self.stats, self.report, self.name)
        if tls is None:
            return None
        while True:
            limit = min(deadline, self.drain_deadline) if self.draining else deadline
            try:
                done = handshake(
                    tls, max(0.0, limit - time.monotonic()), self.stats, self.report, self.name
                )
            except StartDrain:
                continue  # resumed: gevent's handshake is non-blocking underneath
            except BaseException:
                close(tls)
                raise
            return tls if done else None

    def _close(self, sock: Any) -> None:
        """The SSL socket owns the descriptor (gevent detached the plain one): close it."""
        close(sock)

    def _announce(self, sock: Any) -> None:
        """No half-close on TLS (see the class docstring)."""
