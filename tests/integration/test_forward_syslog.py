"""The syslog destination against a real rsyslogd: what rsyslog itself parsed is checked.

Lines are made by the store's own encoder (``encode_line``), so what is sent
is exactly what the forwarder reads from ``records.jsonl``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import logging.handlers
import os
import re
import ssl
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rsyslogd import Rsyslogd, rsyslogd_available

from netlog.forward.failures import DestinationError
from netlog.forward.forwarder import Backoff
from netlog.forward.rfc5424 import SD_ID
from netlog.forward.syslog import SyslogDestination
from netlog.record import Record, new_id
from netlog.sinks.encode import encode_line
from netlogproc import wait_for

pytestmark = pytest.mark.skipif(not rsyslogd_available(), reason="rsyslogd is not installed")

BOM = "\ufeff"
#: Bounds every retry loop of these tests (the suite's timeout is the backstop).
RETRY_LIMIT = 60.0


class Line(NamedTuple):
    """A stored line as the forwarder hands it over."""

    id: str
    line: bytes


def stored_line(i: int, *, level: str = "info", exc: str | None = None, **fields) -> Line:
    received = time.time()
    record = Record(
        ts=received - 0.25,
        received=received,
        level=level,
        logger="billing.invoices",
        message=f"record {i} café ✓",
        fields={"n": i, "user": 'ann "the" [admin]', **fields},
        exc=exc,
        peer="127.0.0.1:40000",
        format="json",
        id=new_id(received),
    )
    line = encode_line(record).rstrip(b"\n")
    return Line(record.id, line)


def sd_id_of(message: dict[str, str]) -> str:
    """The ``id`` param of netlog's element, from rsyslog's structured-data text."""
    sd = message["sd"]
    assert sd.startswith(f'[{SD_ID} id="'), sd
    return sd.split('"', 2)[1]


@pytest.fixture
def rsyslog(tmp_path):
    server = Rsyslogd(tmp_path / "rsyslog").start()
    yield server
    server.stop()
    server.kill()


def run(coro):
    return asyncio.run(coro)


async def send_all(destination: SyslogDestination, batches: list[list[Line]]) -> None:
    try:
        for batch in batches:
            await destination.send(batch)
    finally:
        await destination.close()


class TestParsedByRsyslog:
    """rsyslog reads every field of netlog's message as RFC 5424."""

    @pytest.mark.parametrize("scheme", ["tcp", "udp"])
    def test_every_record_arrives_parsed(self, rsyslog, scheme):
        lines = [
            stored_line(i, level=("info", "error", "warning", "debug")[i % 4]) for i in range(200)
        ]
        lines[7] = stored_line(
            7, level="critical", exc="Traceback (most recent call last):\n  boom"
        )
        destination = SyslogDestination(f"{scheme}://127.0.0.1:{rsyslog.port}", hostname="web-1")
        run(send_all(destination, [lines[i : i + 50] for i in range(0, len(lines), 50)]))
        messages = rsyslog.wait_messages(len(lines))
        assert destination.sent == len(lines)
        assert [m["input"] for m in messages] == [scheme] * len(lines)
        by_id = {sd_id_of(m): m for m in messages}
        assert set(by_id) == {line.id for line in lines}
        for line in lines:
            stored = orjson.loads(line.line)
            got = by_id[line.id]
            assert got["protocol"] == "1"
            assert got["app"] == "billing.invoices"
            assert got["facility"] == "user"
            assert (
                got["severity"]
                == {
                    "info": "info",
                    "error": "err",
                    "warning": "warning",
                    "debug": "debug",
                    "critical": "crit",
                }[stored["level"]]
            )
            assert got["hostname"] == "web-1"
            assert got["msgid"] == "json"
            assert got["ts"] == stored["ts"]
            # rsyslog keeps the BOM in front of msg (rsyslog/rsyslog#284) and
            # escapes a newline as #012; the UTF-8 text itself is intact.
            text = stored["message"] + ("\n" + stored["exc"] if "exc" in stored else "")
            assert got["msg"] == BOM + text.replace("\n", "#012")
            n = stored["fields"]["n"]
            assert got["sd"] == (f'[{SD_ID} id="{line.id}" n="{n}" user="ann \\"the\\" [admin\\]"]')

    def test_long_udp_message_is_cut_and_marked(self, rsyslog):
        lines = [stored_line(0, blob="x" * 5000), stored_line(1)]
        destination = SyslogDestination(f"udp://127.0.0.1:{rsyslog.port}")
        run(send_all(destination, [lines]))
        messages = rsyslog.wait_messages(2)
        assert destination.truncated == 1
        assert len(messages) == 2
        cut, whole = sorted(messages, key=lambda m: sd_id_of(m) != lines[0].id)
        assert cut["sd"] == f'[{SD_ID} id="{lines[0].id}" truncated="1"]'
        assert cut["msg"] == BOM + "record 0 café ✓"
        assert 'truncated="1"' not in whole["sd"]

    def test_a_line_that_is_not_a_record_is_skipped(self, rsyslog):
        lines = [stored_line(0), Line("x", b'{"cut in ha'), Line("y", b"[1,2]"), stored_line(1)]
        destination = SyslogDestination(f"tcp://127.0.0.1:{rsyslog.port}")
        run(send_all(destination, [lines]))
        messages = rsyslog.wait_messages(2)
        assert destination.skipped == 2
        assert sorted(sd_id_of(m) for m in messages) == sorted([lines[0].id, lines[3].id])


class TestCollectorRestart:
    """rsyslog stopped and started again mid-stream: the forwarder's retries lose nothing more
    than the batch in flight when the connection went (netlog/forward/syslog.py's docstring)."""

    def test_tcp_reconnects_and_resends(self, rsyslog):
        batches = [[stored_line(b * 20 + i) for i in range(20)] for b in range(20)]
        stop_after = 8  # batches sent before rsyslog is stopped
        restart_after_failures = 3
        destination = SyslogDestination(f"tcp://127.0.0.1:{rsyslog.port}")
        backoff = Backoff(first=0.05, limit=0.4)
        failures: list[str] = []
        attempts_per_batch: dict[int, int] = {}

        async def forward() -> None:
            # What the forwarder does: a batch is retried until send returns.
            deadline = time.monotonic() + RETRY_LIMIT
            try:
                for number, batch in enumerate(batches):
                    if number == stop_after:
                        await asyncio.to_thread(rsyslog.stop)
                    while True:
                        attempts_per_batch[number] = attempts_per_batch.get(number, 0) + 1
                        try:
                            await destination.send(batch)
                            break
                        except DestinationError as error:
                            failures.append(error.kind)
                            await asyncio.sleep(backoff.delay())
                            assert time.monotonic() < deadline, "no reconnect in time"
                            if len(failures) == restart_after_failures:
                                await asyncio.to_thread(rsyslog.start)
            finally:
                await destination.close()

        run(forward())
        total = sum(len(b) for b in batches)
        messages = rsyslog.wait_messages(total)
        received = [sd_id_of(m) for m in messages]
        sent_ids = [line.id for batch in batches for line in batch]
        missing = set(sent_ids) - set(received)
        doubled = {i for i in received if received.count(i) > 1}
        # The stop was noticed: sending failed, then worked again after the restart.
        assert len(failures) >= restart_after_failures
        # The closed connection was seen before a batch was written into it.
        assert failures[0] == "closed"
        assert set(failures[1:]) <= {"unreachable"}
        assert destination.connects >= 2
        # Only the batch written just before the stop, or the first one after it,
        # may be lost; only a batch whose write failed half-way may arrive twice.
        at_risk = {line.id for batch in batches[stop_after - 1 : stop_after + 1] for line in batch}
        assert missing <= at_risk, f"lost outside the documented window: {missing - at_risk}"
        retried = {
            line.id
            for n, batch in enumerate(batches)
            if attempts_per_batch[n] > 1
            for line in batch
        }
        assert doubled <= retried
        # Everything else arrived, in order within each connection.
        assert set(received) == set(sent_ids) - missing
        print(f"rsyslog restart: {len(missing)} lost, {len(doubled)} doubled of {total}")

    def test_collector_down_is_an_unreachable_error(self, tmp_path):
        server = Rsyslogd(tmp_path / "down")  # its port is reserved, nothing listens
        destination = SyslogDestination(f"tcp://127.0.0.1:{server.port}")
        with pytest.raises(DestinationError) as caught:
            run(send_all(destination, [[stored_line(0)]]))
        assert caught.value.kind == "unreachable"
        assert destination.connects == 0
        assert not destination.connected


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key) PEM files."""
    now = dt.datetime.now(dt.UTC)

    def build(subject: str, issuer: str, public_key, signer, *, ca: bool, san=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("netlog test CA", "netlog test CA", ca_key.public_key(), ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build(
        "127.0.0.1",
        "netlog test CA",
        key.public_key(),
        ca_key,
        ca=False,
        san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return paths


class TestTls:
    """tls:// (RFC 5425) to rsyslog's gtls input: verified by --syslog-ca, refused otherwise."""

    @pytest.fixture
    def tls_rsyslog(self, tmp_path):
        ca, cert, key = make_certificates(tmp_path / "pki")
        server = Rsyslogd(tmp_path / "rsyslog-tls", tls=(cert, key)).start()
        yield server, ca
        server.stop()
        server.kill()

    def test_records_arrive_over_verified_tls(self, tls_rsyslog):
        server, ca = tls_rsyslog
        lines = [stored_line(i) for i in range(30)]
        destination = SyslogDestination(f"tls://127.0.0.1:{server.tls_port}", ca_file=ca)
        run(send_all(destination, [lines[:10], lines[10:]]))
        messages = server.wait_messages(len(lines))
        assert [m["input"] for m in messages] == ["tls"] * len(lines)
        assert sorted(sd_id_of(m) for m in messages) == sorted(line.id for line in lines)
        assert all(
            m["msg"] == BOM + f"record {sd} café ✓"
            for m, sd in zip(
                messages, [orjson.loads(line.line)["fields"]["n"] for line in lines], strict=True
            )
        )

    def test_an_unknown_certificate_is_refused(self, tls_rsyslog):
        server, _ = tls_rsyslog
        destination = SyslogDestination(f"tls://127.0.0.1:{server.tls_port}")  # system CAs only
        with pytest.raises(DestinationError) as caught:
            run(send_all(destination, [[stored_line(0)]]))
        assert caught.value.kind == "tls"
        assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
        time.sleep(0.5)
        assert server.messages() == []


def log_through_socket_handler(address: tuple[str, int], first: int, count: int) -> None:
    """``count`` records from the stdlib's own SocketHandler, as an application sends them."""
    handler = logging.handlers.SocketHandler(*address)
    logger = logging.getLogger("shop.orders")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        for n in range(first, first + count):
            level = (logging.INFO, logging.WARNING, logging.ERROR)[n % 3]
            logger.log(level, "order %d paid", n, extra={"order": n, "tags": ["a", "b"]})
    finally:
        logger.removeHandler(handler)
        handler.close()


def forward_metric(netlog, kind: str) -> int:
    """A ``netlog_forward_failures_total`` value for the syslog destination from ``/metrics``."""
    host, port = netlog.address("http")
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    pattern = rf'netlog_forward_failures_total\{{destination="syslog",kind="{kind}"\}} (\S+)'
    match = re.search(pattern, text)
    return int(float(match.group(1))) if match else 0


class TestThroughNetlog:
    """``netlog serve --syslog-forward``: records sent to netlog reach rsyslog from the store."""

    def test_every_record_arrives_in_rsyslog(self, rsyslog, netlog_factory):
        netlog = netlog_factory(
            "--syslog-forward", f"tcp://127.0.0.1:{rsyslog.port}", "--forward-host", "host-a"
        )
        log_through_socket_handler(netlog.address("log_tcp"), 0, 300)
        stored = netlog.wait_records(300)
        messages = rsyslog.wait_messages(300)
        assert len(messages) == 300
        by_id = {sd_id_of(m): m for m in messages}
        assert set(by_id) == {r["id"] for r in stored}
        for record in stored:
            got = by_id[record["id"]]
            assert got["app"] == "shop.orders"
            assert got["hostname"] == "host-a"
            assert got["msgid"] == "pickle"
            assert got["procid"] == str(os.getpid())
            assert (
                got["severity"]
                == {"info": "info", "warning": "warning", "error": "err"}[record["level"]]
            )
            assert got["ts"] == record["ts"]
            assert got["msg"] == BOM + record["message"]
            assert f'order="{record["fields"]["order"]}" tags="[\\"a\\",\\"b\\"\\]"' in got["sd"]

    def test_rsyslog_restart_loses_and_doubles_nothing(self, rsyslog, netlog_factory):
        netlog = netlog_factory("--syslog-forward", f"tcp://127.0.0.1:{rsyslog.port}")
        log_through_socket_handler(netlog.address("log_tcp"), 0, 200)
        assert len(rsyslog.wait_messages(200)) == 200
        rsyslog.stop()
        log_through_socket_handler(netlog.address("log_tcp"), 200, 200)
        stored = netlog.wait_records(400)
        # The forwarder finds the connection closed, then the collector gone.
        wait_for(lambda: forward_metric(netlog, "unreachable") >= 1, 20, what="a retry")
        rsyslog.start()
        messages = rsyslog.wait_messages(400, timeout=60)
        received = [sd_id_of(m) for m in messages]
        assert sorted(received) == sorted(r["id"] for r in stored)
        assert forward_metric(netlog, "closed") >= 1

    def test_collector_down_is_retried_with_backoff(self, tmp_path, netlog_factory):
        down = Rsyslogd(tmp_path / "down")  # its port is reserved, nothing listens
        netlog = netlog_factory("--syslog-forward", f"tcp://127.0.0.1:{down.port}")
        log_through_socket_handler(netlog.address("log_tcp"), 0, 10)
        netlog.wait_records(10)
        wait_for(lambda: forward_metric(netlog, "unreachable") >= 1, 20, what="a first failure")
        first = forward_metric(netlog, "unreachable")
        time.sleep(4.0)
        later = forward_metric(netlog, "unreachable")
        # Delays of 0.5 s doubling (jittered to 50-100%): a few attempts in 4 s,
        # where a busy loop would make thousands.
        assert 1 <= later - first <= 8
        assert "unreachable" in netlog.stderr()
