"""The gevent internals of servers/gevent_private.py, checked against the installed gevent.

Each test states one assumption the servers make of a private or
undocumented gevent name, on real sockets bound to ``127.0.0.1:0``.  A
gevent release that removes, renames or changes one fails here, named,
rather than in a running server.
"""

import _socket
import inspect
import io
import socket

import gevent
import gevent.event
import pytest
from gevent.baseserver import BaseServer
from gevent.pool import Pool
from gevent.pywsgi import Input, WSGIHandler
from gevent.server import DatagramServer, StreamServer

from servers import gevent_private
from servers.gevent_private import (
    accept_queued,
    forget_body,
    handle_accepted,
    raw_accept,
    raw_datagram_socket,
    replace_full,
    replace_read_callback,
)

HOST = "127.0.0.1"
WAIT = 5.0


def _ignore(*_args):
    pass


@pytest.fixture
def stream_server():
    servers = []

    def make(handle=_ignore, **kwargs):
        server = StreamServer((HOST, 0), handle, **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop(timeout=1)


@pytest.fixture
def datagram_server():
    servers = []

    def make(handle=_ignore):
        server = DatagramServer((HOST, 0), handle, spawn=None)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def connect(server) -> socket.socket:
    """A client whose handshake the kernel completes; nothing accepts it yet."""
    return socket.create_connection((HOST, server.address[1]), timeout=WAIT)


class TestSignatures:
    """The hooks the servers override or call keep the signatures they are used with."""

    @pytest.mark.parametrize(
        ("owner", "name", "signature"),
        [
            (BaseServer, "_do_read", "(self)"),
            (BaseServer, "do_read", "(self)"),
            (BaseServer, "do_handle", "(self, *args)"),
            (BaseServer, "full", "(self)"),
            (BaseServer, "start_accepting", "(self)"),
            (BaseServer, "stop_accepting", "(self)"),
            (BaseServer, "init_socket", "(self)"),
            (StreamServer, "do_read", "(self)"),
            (StreamServer, "init_socket", "(self)"),
            (DatagramServer, "do_read", "(self)"),
            (DatagramServer, "init_socket", "(self)"),
            (WSGIHandler, "read_requestline", "(self)"),
        ],
    )
    def test_hook(self, owner, name, signature):
        assert str(inspect.signature(getattr(owner, name))) == signature

    def test_the_accept_loop_asks_full_then_do_read_then_do_handle(self):
        # What replace_full and the do_read overrides of the echo server and
        # the UDP listeners rely on: BaseServer._do_read's order of calls.
        source = inspect.getsource(BaseServer._do_read)
        full = source.index("self.full()")
        read = source.index("self.do_read()")
        handle = source.index("self.do_handle(*args)")
        assert full < read < handle
        assert "if not args:" in source

    def test_start_accepting_watches_with_the_instance_do_read(self):
        assert "self._do_read" in inspect.getsource(BaseServer.start_accepting)

    def test_the_module_names_every_helper(self):
        assert sorted(gevent_private.__all__) == [
            "accept_queued",
            "forget_body",
            "handle_accepted",
            "raw_accept",
            "raw_datagram_socket",
            "replace_full",
            "replace_read_callback",
        ]


class TestRawAccept:
    """A StreamServer's listener is a plain, non-blocking _socket.socket; _accept works on it."""

    def test_listener_is_unwrapped_and_accepts_raw(self, stream_server):
        server = stream_server()
        server.init_socket()
        assert isinstance(server.socket, _socket.socket)
        with pytest.raises(BlockingIOError):
            raw_accept(server.socket)
        with connect(server) as client:
            fd, address = raw_accept(server.socket)
            try:
                assert isinstance(fd, int)
                assert address == client.getsockname()
            finally:
                socket.socket(fileno=fd).close()

    def test_loop_and_accepting_switches(self, stream_server):
        server = stream_server()
        server.start()
        assert callable(server.loop.io)
        assert callable(server.loop.now)
        server.stop_accepting()
        server.start_accepting()
        assert not server.closed


class TestRawDatagramSocket:
    """A started DatagramServer keeps its plain socket in _socket."""

    def test_plain_socket_after_init(self, datagram_server):
        server = datagram_server()
        server.init_socket()
        raw = raw_datagram_socket(server)
        assert isinstance(raw, _socket.socket)
        assert raw.getsockname() == server.address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"hello", server.address)
            gevent.sleep(0.05)
            data, address = raw.recvfrom(100)
            assert address[1] == client.getsockname()[1]
        assert data == b"hello"


class TestReplaceReadCallback:
    """An instance _do_read set before start() is what the listener's watcher calls."""

    def test_callback_replaces_the_generic_loop(self, datagram_server):
        handled = []
        server = datagram_server(lambda *args: handled.append(args))
        woke = gevent.event.Event()

        def callback():
            raw_datagram_socket(server).recvfrom(100)
            woke.set()

        replace_read_callback(server, callback)
        server.start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"ping", server.address)
            assert woke.wait(WAIT)
        assert handled == []


class TestReplaceFull:
    """The accept loop asks the replaced full() and accepts nothing while it is true."""

    def test_full_holds_connections_in_the_queue(self, stream_server):
        handled = []
        asked = []
        server = stream_server(lambda sock, _address: handled.append(sock), spawn=Pool(4))
        assert server.full == server.pool.full  # what set_spawn installed, and we replace

        def full():
            asked.append(True)
            return True

        replace_full(server, full)
        server.start()
        with connect(server):
            with gevent.Timeout(WAIT):
                while not asked:
                    gevent.sleep(0.01)
            gevent.sleep(0.1)
        assert handled == []


class TestAcceptQueuedAndHandle:
    """At drain: do_read takes a queued connection, do_handle runs handle in the pool and closes."""

    def test_backlog_is_taken_and_handled(self, stream_server):
        seen = []
        server = stream_server(lambda sock, _address: seen.append(sock.recv(10)), spawn=Pool(4))
        server.start()
        server.stop_accepting()
        with connect(server) as client:
            client.sendall(b"queued")
            args = accept_queued(server)
            assert args
            handle_accepted(server, args)
            server.pool.join(timeout=WAIT)
            assert seen == [b"queued"]
            assert client.recv(10) == b""  # closed when handle returned
        assert not accept_queued(server)

    def test_closed_listener_raises_oserror(self, stream_server):
        server = stream_server()
        server.init_socket()
        server.socket.close()
        with pytest.raises(OSError):
            accept_queued(server)


class TestForgetBody:
    """pywsgi's Input discards nothing after forget_body."""

    def test_sized_body(self):
        rfile = io.BytesIO(b"x" * 100)
        stream = Input(rfile, 100)
        assert stream.read(10) == b"x" * 10
        forget_body(stream)
        stream._discard()
        assert rfile.tell() == 10

    def test_chunked_body(self):
        rfile = io.BytesIO(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n")
        stream = Input(rfile, None, chunked_input=True)
        forget_body(stream)
        stream._discard()
        assert rfile.tell() == 0

    def test_input_keeps_the_attributes(self):
        assert {"content_length", "chunked_input", "position"} <= set(Input.__slots__)
