"""Syslog over TCP (RFC 6587) and TLS (RFC 5425) as collectors send it, a real rsyslogd first.

rsyslogd (Debian's, with rsyslog-gnutls) runs unprivileged through the
``rsyslogd.Rsyslogd`` harness: messages are sent to its UDP input and its
``omfwd`` action forwards them to netlog, framed and encrypted as rsyslog
does it for a real collector.  Every record must arrive as ``syslog`` with
rsyslog's app-name as its logger.
"""

import socket

import pytest
from rsyslogd import Rsyslogd, rsyslogd_available
from tlscerts import make_pki, tls_args

from netlogproc import wait_for

COUNT = 50


RFC5424_TEMPLATE = 'template="RSYSLOG_SyslogProtocol23Format"'


def omfwd(port: int, *options: str) -> str:
    """An omfwd action to netlog that retries until netlog takes the messages."""
    return (
        f'action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"'
        ' action.resumeRetryCount="-1" action.resumeInterval="1" ' + " ".join(options) + ")"
    )


def send_to_rsyslog(rsyslog: Rsyslogd, count: int) -> None:
    """RFC 5424 datagrams to rsyslog's UDP input, from two applications."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for i in range(count):
            app = "billing" if i % 2 else "auth"
            severity = 3 if i % 5 == 0 else 6
            message = f"<{8 + severity}>1 2026-11-30T22:00:00.{i:06d}Z web1 {app} 77 M{i} - "
            message += f"forwarded message {i} ünïcödé"
            udp.sendto(message.encode(), ("127.0.0.1", rsyslog.port))


def check(records: list[dict], *, rfc5424: bool = True) -> None:
    """Every message once, as syslog, rsyslog's app-name the logger (RFC 3164: its TAG)."""
    assert len(records) == COUNT
    by_n = {int(r["message"].split()[2]): r for r in records}
    assert sorted(by_n) == list(range(COUNT))
    for n, record in by_n.items():
        assert record["format"] == "syslog"
        assert record["logger"] == ("billing" if n % 2 else "auth")
        assert record["level"] == ("error" if n % 5 == 0 else "info")
        assert record["message"] == f"forwarded message {n} ünïcödé"
        assert record["fields"]["host"] == "web1"
        if rfc5424:
            assert record["fields"]["msgid"] == f"M{n}"
            assert record["ts"] == f"2026-11-30T22:00:00.{n:06d}Z"
        else:
            assert record["fields"]["procid"] == "77"


@pytest.mark.skipif(not rsyslogd_available(), reason="rsyslogd is not installed")
class TestRsyslogForwards:
    """rsyslog's omfwd, as a syslog collector is configured to forward to netlog."""

    def test_tcp_octet_counted(self, netlog_factory, tmp_path):
        """omfwd over plain TCP with TCP_Framing="octet-counted" to the log TCP port."""
        server = netlog_factory()
        rsyslog = Rsyslogd(
            tmp_path / "rsyslog",
            extra_config=omfwd(
                server.ports["log_tcp"], RFC5424_TEMPLATE, 'TCP_Framing="octet-counted"'
            ),
        ).start()
        try:
            send_to_rsyslog(rsyslog, COUNT)
            records = server.wait_records(COUNT, timeout=30)
        finally:
            rsyslog.stop()
        check(records)

    def test_tcp_lf_framed_traditional(self, netlog_factory, tmp_path):
        """omfwd's defaults: LF-terminated lines in the traditional (RFC 3164) format."""
        server = netlog_factory()
        rsyslog = Rsyslogd(
            tmp_path / "rsyslog", extra_config=omfwd(server.ports["log_tcp"])
        ).start()
        try:
            send_to_rsyslog(rsyslog, COUNT)
            records = server.wait_records(COUNT, timeout=30)
        finally:
            rsyslog.stop()
        check(records, rfc5424=False)

    def test_tls_rfc5425_with_client_certificate(self, netlog_factory, tmp_path):
        """omfwd with gtls, x509/name, and a client certificate netlog requires (mTLS)."""
        pki = make_pki(tmp_path / "pki")
        server = netlog_factory(*tls_args(pki, "--tls-client-ca", str(pki.ca)))
        action = omfwd(
            server.ports["log_tls"],
            RFC5424_TEMPLATE,
            'TCP_Framing="octet-counted"',
            'StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"',
            'StreamDriverPermittedPeers="localhost"',
            f'StreamDriver.CAFile="{pki.ca}"',
            f'StreamDriver.CertFile="{pki.client_cert}"',
            f'StreamDriver.KeyFile="{pki.client_key}"',
        )
        rsyslog = Rsyslogd(tmp_path / "rsyslog", extra_config=action).start()
        try:
            send_to_rsyslog(rsyslog, COUNT)
            records = server.wait_records(COUNT, timeout=30)
        finally:
            rsyslog.stop()
        check(records)


class TestSyslogOverTcp:
    """Both RFC 6587 framings from a plain socket, on the TCP port and (RFC 5425) the TLS port."""

    def test_octet_counted_and_lf_framed_on_the_tcp_port(self, netlog):
        """Two connections, one framing each, split at awkward places; a bad count is counted."""
        messages = [
            b"<165>1 2026-11-30T22:14:15.003Z web1 billing - ID1 - counted one",
            b"<34>Nov 30 22:14:15 web1 su[7]: counted two",
        ]
        counted = b"".join(b"%d %b" % (len(m), m) for m in messages)
        with socket.create_connection(netlog.address("log_tcp"), timeout=10) as sock:
            sock.sendall(counted[:1])  # "7": undecided until the next bytes
            sock.sendall(counted[1:30])
            sock.sendall(counted[30:])
        with socket.create_connection(netlog.address("log_tcp"), timeout=10) as sock:
            sock.sendall(b"<13>1 - - lines - - - line one\n<13>Nov 30 22:14:15 h lines: two\n")
        with socket.create_connection(netlog.address("log_tcp"), timeout=10) as sock:
            sock.sendall(b"12 <13>ok: herex <13>bad count\n")
        records = netlog.wait_records(5)
        assert sorted((r["logger"], r["message"], r["format"]) for r in records) == [
            ("billing", "counted one", "syslog"),
            ("lines", "line one", "syslog"),
            ("lines", "two", "syslog"),
            ("ok", "here", "syslog"),
            ("su", "counted two", "syslog"),
        ]

        # The bad count closes its connection and is counted as a bad frame.
        def counted_bad():
            with socket.create_connection(netlog.address("http"), timeout=10) as http:
                http.sendall(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                body = b""
                while chunk := http.recv(65536):
                    body += chunk
            return b'netlog_bad_frames_total{reason="bad_octet_count"} 1' in body

        wait_for(counted_bad, what="the bad count in /metrics")
