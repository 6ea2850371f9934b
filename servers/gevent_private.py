"""Every gevent internal the servers rely on, named once, so an upgrade is checked in one place.

gevent's servers are built around one greenlet per connection or datagram.
netlog's hot paths step around parts of that (the echo server drives
connections with io watchers, the responder answers in its own read loop,
the log listeners bound and drain their accept loop), and to do so they use
names that gevent does not document or marks private.  Each one is here,
with what netlog assumes of it; ``tests/integration/test_gevent_private.py``
checks every assumption against the installed gevent, so a release that
removes or changes one fails the tests instead of the running server.

Outside this module, ``servers/`` uses only gevent's public API (ruff's
SLF001 would flag a private name anywhere else).  The helpers are plain
attribute accesses, used at set-up or per accepted connection, never per
record: the hot loops keep what they were handed (``raw_accept`` is an
unbound method, so calling it costs what ``sock._accept()`` did).
"""

from __future__ import annotations

import _socket
from collections.abc import Callable
from typing import Any

#: Accept one connection on a listening socket without any wrapping:
#: ``(fd, address)``, or ``BlockingIOError`` when none is queued.  CPython's
#: private ``_socket.socket._accept`` (``socket.accept`` wraps it), valid on
#: gevent's StreamServer listener because ``init_socket`` unwraps it to the
#: plain ``_socket.socket`` (gevent's own ``do_read`` calls it the same way).
raw_accept: Callable[[Any], tuple[int, Any]] = _socket.socket._accept  # type: ignore[attr-defined]  # noqa: SLF001


def raw_datagram_socket(server: Any) -> Any:
    """The plain socket a started ``DatagramServer`` reads from.

    gevent keeps it in ``_socket`` (set by ``init_socket``); reading it
    directly skips a gevent socket method per datagram, as gevent's own
    ``DatagramServer.do_read`` does.
    """
    return server._socket  # noqa: SLF001


def replace_read_callback(server: Any, callback: Callable[[], None]) -> None:
    """Make ``callback`` what the listener's io watcher calls when it is readable.

    ``BaseServer.start_accepting`` starts the watcher with ``self._do_read``,
    looked up when accepting starts, so an instance attribute set before
    ``start()`` replaces gevent's generic loop (a pool check, ``do_read`` and a
    handle-then-close wrapper per item) for every later start.
    """
    server._do_read = callback  # noqa: SLF001


def replace_full(server: Any, full: Callable[[], bool]) -> None:
    """Make ``full`` what the accept loop asks before each accept.

    ``BaseServer._do_read`` calls ``self.full()`` and stops accepting while it
    is true (resuming when the pool's semaphore is released); ``set_spawn``
    sets the instance attribute to the pool's ``full`` and ``close`` removes
    it.  Undocumented, so replaced only through here.
    """
    server.full = full


def accept_queued(server: Any) -> Any:
    """Accept one connection the kernel queued, without waiting: ``args`` or falsy.

    ``StreamServer.do_read`` is the hook the accept loop calls; calling it
    directly (at shutdown, after the listener stopped accepting) takes the
    backlog's connections one at a time.  Raises ``OSError`` on a closed socket.
    """
    return server.do_read()


def handle_accepted(server: Any, args: Any) -> None:
    """Hand ``args`` from :func:`accept_queued` to the server as the accept loop would.

    ``BaseServer.do_handle`` spawns ``handle`` in the server's pool and closes
    the connection when it returns.
    """
    server.do_handle(*args)


def forget_body(stream: Any) -> None:
    """Tell pywsgi not to read the rest of a request body after the response.

    pywsgi would, to keep a keep-alive connection in step: it discards what
    its ``Input`` has not read, up to ``content_length`` or to the last
    chunk.  Marking the body as read to where it stands (``position``) and not
    chunked makes that a no-op; the response then closes the connection.
    ``Input``'s attributes are undocumented; a stream without them is left
    as it is.
    """
    try:
        stream.content_length = getattr(stream, "position", 0)
        stream.chunked_input = False
    except AttributeError:
        return


__all__ = [
    "accept_queued",
    "forget_body",
    "handle_accepted",
    "raw_accept",
    "raw_datagram_socket",
    "replace_full",
    "replace_read_callback",
]
