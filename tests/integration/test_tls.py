"""TLS for logs in transit, against the real process with real certificates and clients.

Certificates are made per test (``tlscerts.make_pki``, the ``cryptography``
package); the clients are the ones users run: ``netlog.client``, ``netlog
send``, ``openssl s_client``, ``curl``-like HTTPS through urllib, and a real
rsyslogd forwarding over RFC 5425 (``tests/test_rsyslog_forward.py``).
"""

import json
import logging
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tlscerts import issue, make_ca, make_pki, tls_args, write_pair

from netlog.client import SinkHandler, configure
from netlogproc import HOST, ROOT, wait_for

IDLE = 2.0


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path / "pki")


def client_context(pki, *, cert=None, key=None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.ca)
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def tls_connect(server, pki, **kwargs) -> ssl.SSLSocket:
    raw = socket.create_connection(server.address("log_tls"), timeout=10)
    return client_context(pki, **kwargs).wrap_socket(raw, server_hostname="localhost")


def metrics(server, pki) -> str:
    url = f"https://localhost:{server.ports['http']}/metrics"
    with urllib.request.urlopen(url, timeout=10, context=client_context(pki)) as response:
        return response.read().decode()


def note(server, pki, reason: str) -> int:
    match = re.search(rf'netlog_notes_total\{{reason="{reason}"\}} (\d+)', metrics(server, pki))
    return int(match.group(1)) if match else 0


def by_message(records):
    return {r["message"]: r for r in records}


class TestClients:
    """What users send with reaches the store over TLS, and the server is verified."""

    def test_sink_handler_pickle_and_json(self, netlog_factory, pki):
        """SinkHandler with tls=True and ca= delivers both wires as over plain TCP."""
        server = netlog_factory(*tls_args(pki))
        for wire in ("pickle", "json"):
            handler = SinkHandler(*server.address("log_tls"), wire=wire, tls=True, ca=pki.ca)
            logger = logging.getLogger(f"tls.{wire}")
            logger.handlers[:] = [handler]
            logger.propagate = False
            logger.setLevel(logging.INFO)
            logger.warning("over tls %s", wire, extra={"user": "ada"})
            assert handler.drain(10), handler.last_error
            handler.close()
        records = by_message(server.wait_records(2))
        assert records["over tls pickle"]["format"] == "pickle"
        assert records["over tls json"]["format"] == "json"
        assert records["over tls json"]["fields"]["user"] == "ada"
        assert records["over tls pickle"]["level"] == "warning"

    def test_configure_verifies_the_server_by_default(self, netlog_factory, pki):
        """configure(tls=True) trusts only the system CAs: a private CA's server is refused."""
        server = netlog_factory(*tls_args(pki))
        host, port = server.address("log_tls")
        root = logging.getLogger()
        handler = configure(f"{host}:{port}", tls=True, structlog=False, service="svc")
        try:
            logging.getLogger("app").warning("must not arrive")
            assert not handler.drain(2)
            assert isinstance(handler.last_error, ssl.SSLCertVerificationError)
        finally:
            root.removeHandler(handler)
            handler.close(timeout=0)
        trusted = configure(f"{host}:{port}", tls=True, ca=pki.ca, structlog=False, service="svc")
        try:
            logging.getLogger("app").warning("verified")
            assert trusted.drain(10), trusted.last_error
        finally:
            root.removeHandler(trusted)
            trusted.close()
        records = server.wait_records(1)
        assert [r["message"] for r in records] == ["verified"]
        assert records[0]["fields"]["service"] == "svc"

    def test_netlog_send(self, netlog_factory, pki):
        """`netlog send --tls --ca` exits 0 once delivered; without --ca it fails and says why."""
        server = netlog_factory(*tls_args(pki))
        host, port = server.address("log_tls")
        command = [sys.executable, "-m", "netlog.cli", "send", "--address", f"{host}:{port}"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [*command, "--tls", "--ca", str(pki.ca), "sent", "securely"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        refused = subprocess.run(
            [*command, "--tls", "--timeout", "1", "not verified"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
        )
        assert refused.returncode == 1
        assert "certificate verify failed" in refused.stderr
        records = server.wait_records(1)
        assert [r["message"] for r in records] == ["sent securely"]

    def test_openssl_s_client_json_lines(self, netlog_factory, pki):
        """`openssl s_client -quiet` with JSON lines on stdin: each line a JSON record."""
        server = netlog_factory(*tls_args(pki))
        host, port = server.address("log_tls")
        lines = b"".join(
            json.dumps({"event": f"line {i}", "level": "error", "n": i}).encode() + b"\n"
            for i in range(20)
        )
        done = subprocess.run(
            [
                *("openssl", "s_client", "-connect", f"{host}:{port}", "-quiet", "-no_ign_eof"),
                *("-CAfile", str(pki.ca), "-verify_return_error", "-verify_hostname", "localhost"),
            ],
            input=lines,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        records = server.wait_records(20)
        assert sorted(r["fields"]["n"] for r in records) == list(range(20))
        assert {(r["format"], r["level"]) for r in records} == {("json", "error")}

    def test_sender_that_never_reads_loses_nothing(self, netlog_factory, pki):
        """A client that writes a large batch and closes at once, never reading: all arrive.

        With TLS 1.3 session tickets the server would write after the
        handshake; unread, they make the client's close a reset, and the
        kernel drops what netlog had not read yet (found by the TLS ingest bench).
        """
        server = netlog_factory(*tls_args(pki))
        count = 40_000
        sock = tls_connect(server, pki)
        sock.sendall(
            b"".join(b'{"event": "batch %d", "pad": "%s"}\n' % (i, b"x" * 60) for i in range(count))
        )
        sock.close()
        assert len(server.wait_records(count, timeout=60)) == count

    def test_https_on_the_http_port(self, netlog_factory, pki):
        """The certificate turns the HTTP port into HTTPS; plain HTTP gets no answer."""
        server = netlog_factory(*tls_args(pki))
        url = f"https://localhost:{server.ports['http']}/health"
        with urllib.request.urlopen(url, timeout=10, context=client_context(pki)) as response:
            assert response.status == 200
        plain = f"http://127.0.0.1:{server.ports['http']}/health"
        with pytest.raises(OSError), urllib.request.urlopen(plain, timeout=10) as response:
            response.read()
        assert note(server, pki, "tls_refused") == 1


class TestRefused:
    """What does not belong on the TLS port is refused, counted, and costs nobody else."""

    def test_plain_client_refused_and_counted(self, netlog_factory, pki):
        """A plain-text JSON line on the TLS port is no record; the refusal is counted."""
        server = netlog_factory(*tls_args(pki))
        with socket.create_connection(server.address("log_tls"), timeout=10) as plain:
            plain.sendall(b'{"event": "in clear text"}\n')
            plain.shutdown(socket.SHUT_WR)
            assert closed_by_peer(plain, 10)
        wait_for(lambda: note(server, pki, "tls_refused") == 1, what="the refusal counted")
        with tls_connect(server, pki) as good:
            good.sendall(b"after the plain one\n")
        assert [r["message"] for r in server.wait_records(1)] == ["after the plain one"]

    def test_tls_1_1_refused(self, netlog_factory, pki):
        """A client offering TLS 1.1 at most gets a protocol-version alert."""
        server = netlog_factory(*tls_args(pki))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with pytest.warns(DeprecationWarning, match="TLSv1_1"):
            context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
        raw = socket.create_connection(server.address("log_tls"), timeout=10)
        with pytest.raises(ssl.SSLError) as refused:
            context.wrap_socket(raw)
        raw.close()
        assert "VERSION" in str(refused.value).upper()
        wait_for(lambda: note(server, pki, "tls_refused") == 1, what="the refusal counted")

    def test_mutual_tls(self, netlog_factory, pki):
        """With --tls-client-ca: a client certificate from another CA, or none, is refused."""
        server = netlog_factory(*tls_args(pki, "--tls-client-ca", str(pki.ca)))
        for attempt, kwargs in (
            ("wrong", {"cert": pki.wrong_client_cert, "key": pki.wrong_client_key}),
            ("none", {}),
        ):
            # TLS 1.3: the client's handshake ends before the server checks its
            # certificate, so the refusal arrives as an alert (or EOF) on a read.
            try:
                with tls_connect(server, pki, **kwargs) as sock:
                    sock.sendall(f"from {attempt}\n".encode())
                    answer = sock.recv(100)
            except (ssl.SSLError, ConnectionError):
                answer = b""
            assert answer == b"", attempt
        wait_for(lambda: note(server, pki, "tls_refused") == 2, what="two refusals counted")
        handler = SinkHandler(
            *server.address("log_tls"),
            wire="json",
            ca=pki.ca,
            cert=pki.client_cert,
            key=pki.client_key,
        )
        handler.handle(logging.makeLogRecord({"msg": "from the right client", "name": "m"}))
        assert handler.drain(10), handler.last_error
        handler.close()
        assert [r["message"] for r in server.wait_records(1)] == ["from the right client"]


def client_hello() -> bytes:
    """The bytes of a real TLS ClientHello, made with ssl.MemoryBIO (no socket)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = ssl.create_default_context()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (data read is discarded)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(4096):
                return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True
    return False


class TestHandshakeBounds:
    """A handshake never blocks others, and a slow or silent one is cut within --idle-timeout."""

    def test_silent_and_slow_handshakes_are_cut(self, netlog_factory, pki):
        """A silent client and one sending its ClientHello a byte at a time are both closed."""
        server = netlog_factory(*tls_args(pki, "--idle-timeout", str(IDLE)))
        silent = socket.create_connection(server.address("log_tls"), timeout=10)
        slow = socket.create_connection(server.address("log_tls"), timeout=10)
        hello = client_hello()
        started = time.monotonic()
        try:
            # Meanwhile a real client connects, handshakes and delivers.
            with tls_connect(server, pki) as good:
                good.sendall(b"".join(b"good %d\n" % i for i in range(100)))
            assert len(server.wait_records(100)) == 100
            sent = 0
            # A byte every 0.2 s: no read waits long, the handshake as a whole does.
            while sent < len(hello) and time.monotonic() - started < IDLE * 3:
                try:
                    slow.sendall(hello[sent : sent + 1])
                except OSError:
                    break  # cut
                sent += 1
                time.sleep(0.2)
            assert sent < len(hello), "the slow handshake was never cut"
            assert closed_by_peer(slow, IDLE * 3)
            assert closed_by_peer(silent, IDLE * 3)
        finally:
            silent.close()
            slow.close()
        assert note(server, pki, "tls_handshake_timeout") == 2

    def test_pending_handshakes_hold_no_more_than_their_share(self, netlog_factory, pki):
        """With every --max-connections slot held by a silent handshake, a real client gets in."""
        server = netlog_factory(*tls_args(pki, "--max-connections", "3"))
        silent = [socket.create_connection(server.address("log_tls"), timeout=10) for _ in range(3)]
        try:
            wait_for(
                lambda: 'netlog_connections_open{listener="log_tls"} 3.0' in metrics(server, pki),
                what="three silent connections open",
            )
            with tls_connect(server, pki) as good:
                good.sendall(b"got in\n")
            assert [r["message"] for r in server.wait_records(1)] == ["got in"]
        finally:
            for sock in silent:
                sock.close()
        assert note(server, pki, "shed_idle") >= 1


class TestReloadAndShutdown:
    """SIGHUP swaps the certificate for new connections; SIGTERM drains TLS connections."""

    def test_sighup_reloads_without_dropping(self, netlog_factory, pki, tmp_path):
        """After SIGHUP a new connection sees the new certificate; an open one keeps working."""
        cert, key = tmp_path / "live.crt", tmp_path / "live.key"
        cert.write_bytes(pki.server_cert.read_bytes())
        key.write_bytes(pki.server_key.read_bytes())
        server = netlog_factory(
            "--log-tls-port", "0", "--tls-cert", str(cert), "--tls-key", str(key)
        )
        before = tls_connect(server, pki)
        try:
            before.sendall(b"before the reload\n")
            server.wait_records(1)
            ca = make_ca("the new CA")
            new = tmp_path / "new"
            write_pair(issue(ca, "renewed server", server=True), new)
            cert.write_bytes(new.with_suffix(".crt").read_bytes())
            key.write_bytes(new.with_suffix(".key").read_bytes())
            server.send_signal(signal.SIGHUP)
            wait_for(lambda: "reloaded the TLS certificate" in server.stderr(), what="reload")
            raw = socket.create_connection(server.address("log_tls"), timeout=10)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            with context.wrap_socket(raw) as after:
                der = after.getpeercert(binary_form=True)
                after.sendall(b"after the reload\n")
            assert b"renewed server" in der
            before.sendall(b"old connection still open\n")
        finally:
            before.close()
        messages = {r["message"] for r in server.wait_records(3)}
        assert messages == {"before the reload", "after the reload", "old connection still open"}

    def test_bad_certificate_at_reload_keeps_the_old(self, netlog_factory, pki, tmp_path):
        """A reload that fails says why and keeps serving the certificate it had."""
        cert = tmp_path / "live.crt"
        cert.write_bytes(pki.server_cert.read_bytes())
        server = netlog_factory(
            "--log-tls-port", "0", "--tls-cert", str(cert), "--tls-key", str(pki.server_key)
        )
        cert.write_text("not a certificate")
        server.send_signal(signal.SIGHUP)
        wait_for(lambda: "still serving the previous one" in server.stderr(), what="the failure")
        with tls_connect(server, pki) as sock:
            sock.sendall(b"still verified\n")
        assert [r["message"] for r in server.wait_records(1)] == ["still verified"]

    def test_sigterm_drains_tls_connections(self, netlog_factory, pki):
        """Records sent on an open TLS connection before SIGTERM are on disk at exit."""
        server = netlog_factory(*tls_args(pki))
        sock = tls_connect(server, pki)
        try:
            sock.sendall(b"".join(b"drained %d\n" % i for i in range(500)))
            server.send_signal(signal.SIGTERM)
            assert server.proc.wait(timeout=30) == 0
        finally:
            sock.close()
        assert len(server.records()) == 500

    def test_bad_certificate_at_start_is_one_line(self, tmp_path):
        """A missing certificate stops `serve` with exit 2 and one line."""
        done = subprocess.run(
            [
                *(sys.executable, "-m", "servers", "--tls-cert", str(tmp_path / "missing.crt")),
                *("--log-dir", str(tmp_path / "d"), "--host", HOST, "--echo-port", "0"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=False,
        )
        assert done.returncode == 2
        missing = tmp_path / "missing.crt"
        expected = f"cannot load the TLS certificate {missing}: No such file or directory"
        assert done.stderr.strip().splitlines() == [f"netlog serve: error: {expected}"]


def test_pki_files_exist(pki):
    """The helper writes every file the tests use."""
    assert all(Path(path).stat().st_size > 0 for path in vars(pki).values())


class TestOtlpOverHttps:
    """The OTLP port is HTTPS with the certificate too, as the SDK's exporter speaks it."""

    @pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
    def test_the_sdk_exports_over_https(self, netlog_factory, pki, monkeypatch):
        from opentelemetry.exporter.otlp.proto.http._log_exporter import (  # noqa: PLC0415
            OTLPLogExporter,
        )
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler  # noqa: PLC0415
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor  # noqa: PLC0415

        # requests lets these variables override a session's own CA file
        # (psf/requests#3829): where they are set, the exporter's
        # certificate_file is ignored.
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        server = netlog_factory(*tls_args(pki))
        port = server.ports["otlp"]
        provider = LoggerProvider()
        exporter = OTLPLogExporter(
            endpoint=f"https://localhost:{port}/v1/logs", timeout=10, certificate_file=str(pki.ca)
        )
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        logger = logging.getLogger("tls.otlp")
        logger.handlers[:] = [LoggingHandler(logger_provider=provider)]
        logger.propagate = False
        try:
            for i in range(5):
                logger.warning("over https %d", i)
            assert provider.force_flush(timeout_millis=20_000)
        finally:
            logger.handlers[:] = []
            provider.shutdown()
        records = server.wait_records(5, timeout=30)
        assert sorted(r["message"] for r in records) == [f"over https {i}" for i in range(5)]
        assert {r["format"] for r in records} == {"otlp"}
        plain = f"http://127.0.0.1:{port}/health"
        with pytest.raises(OSError), urllib.request.urlopen(plain, timeout=10) as response:
            response.read()


class TestResetBeforeHandshake:
    """A client that connects and resets at once costs a refused handshake, not a bad frame."""

    def test_counted_as_refused_not_as_an_internal_error(self, netlog_factory, pki):
        server = netlog_factory(*tls_args(pki))
        for _ in range(20):
            client = socket.create_connection(server.address("log_tls"), timeout=10)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # a reset, most often before the server wraps the socket
        with tls_connect(server, pki) as client:
            client.sendall(b'{"event": "after the resets"}\n')
        server.wait_records(1)
        assert server.stop() == 0
        summary = server.stderr().strip().splitlines()[-1]
        assert "1 records written, 0 dropped, 0 bad frames" in summary, server.stderr()

    def test_https_port_counts_each_reset_as_refused(self, netlog_factory, pki):
        """The HTTPS port takes the same resets: each one refused and counted, then it serves."""
        server = netlog_factory(*tls_args(pki))
        for _ in range(20):
            client = socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=10)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
        wait_for(lambda: note(server, pki, "tls_refused") == 20, what="20 refusals counted")
        assert server.stop() == 0
        assert "Traceback" not in server.stderr(), server.stderr()
