"""Other languages' JSON lines over real TCP, UDP and HTTP to a real server.

The lines are those the loggers' own docs show (see
tests/unit/test_json_conventions.py for each source); the server stores
them, and the records on disk and the query API's ``level>=`` must read
them the way a user of each logger expects.
"""

import http.client
import json
import socket
import urllib.parse

from netlogproc import HOST

TIMEOUT = 10.0

PINO = (
    '{"level":50,"time":1697123458456,"pid":12345,"hostname":"server-01","msg":'
    '"Failed posting webhook","event":"messageNew","err":{"type":"Error","message":'
    '"connect ECONNREFUSED","stack":"Error: connect ECONNREFUSED\\n    at post (hook.js:9:3)"}}'
)
ZAP = (
    '{"level":"dpanic","ts":1525294364.332895,"logger":"simple1","caller":"simple1/main.go:48",'
    '"msg":"This is a DPANIC message","stacktrace":"main.main\\n\\t/src/simple1/main.go:48"}'
)
TRACING = (
    '{"timestamp":"2022-02-15T18:47:10.821315Z","level":"INFO","fields":{"message":'
    '"preparing to shave yaks","number_of_yaks":3},"target":"fmt_json"}'
)
CLEF = '{"@t":"2016-06-07T03:44:57.8532799Z","@mt":"Hello, {User}","User":"nblumhardt"}'
MEL = (
    '{"EventId":0,"LogLevel":"Warning","Category":"Microsoft.Hosting.Lifetime","Message":'
    '"Now listening on: http://localhost:7000/","State":{"address":"http://localhost:7000/"}}'
)
ECS = (
    '{"@timestamp":"2024-11-27T09:05:11.123Z","log.level":"ERROR","message":"fatal exception '
    'while booting","log.logger":"org.elasticsearch.bootstrap.Elasticsearch","error.type":'
    '"java.lang.IllegalArgumentException","error.stack_trace":"java.lang.IllegalArgumentException:'
    ' high disk watermark\\n\\tat org.elasticsearch.Disk.validate(Disk.java:294)"}'
)
BUNYAN = (
    '{"name":"myapp","hostname":"banana.local","pid":40161,"level":30,"msg":"hi",'
    '"time":"2013-01-04T18:46:23.851Z","v":0}'
)
SLOG = '{"time":"2022-11-08T15:28:26.000000000-05:00","level":"INFO+2","msg":"hello","count":3}'


def send_tcp(server, lines):
    with socket.create_connection(server.address("log_tcp"), timeout=TIMEOUT) as sock:
        sock.sendall("".join(line + "\n" for line in lines).encode())


def send_udp(server, lines):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        for line in lines:
            sock.sendto(line.encode(), server.address("log_udp"))


def post_lines(server, lines):
    conn = http.client.HTTPConnection(HOST, server.ports["http"], timeout=TIMEOUT)
    try:
        body = "".join(line + "\n" for line in lines).encode()
        conn.request("POST", "/log", body, {"Content-Type": "application/x-ndjson"})
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())) == (202, {"accepted": len(lines)})
    finally:
        conn.close()


def query(server, q):
    path = "/api/records?" + urllib.parse.urlencode({"q": q, "since": "1h"})
    conn = http.client.HTTPConnection(HOST, server.ports["http"], timeout=TIMEOUT)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        return json.loads(response.read())["records"]
    finally:
        conn.close()


class TestOtherLanguagesOverEveryTransport:
    """pino, zap, tracing, CLEF, MEL, ECS, bunyan and slog lines, stored as their users expect."""

    def test_tcp_udp_http(self, netlog):
        send_tcp(netlog, [PINO, ZAP, TRACING])
        send_udp(netlog, [CLEF, MEL])
        post_lines(netlog, [ECS, BUNYAN, SLOG])
        records = {r["message"]: r for r in netlog.wait_records(8)}

        pino = records["Failed posting webhook"]
        assert (pino["format"], pino["level"], pino["ts"]) == (
            "json",
            "error",
            "2023-10-12T15:10:58.456000Z",
        )
        assert pino["exc"] == "Error: connect ECONNREFUSED\n    at post (hook.js:9:3)"
        assert pino["fields"] == {
            "pid": 12345,
            "hostname": "server-01",
            "event": "messageNew",
            "err": {"type": "Error", "message": "connect ECONNREFUSED"},
        }

        zap = records["This is a DPANIC message"]
        assert (zap["level"], zap["logger"], zap["exc"]) == (
            "critical",
            "simple1",
            "main.main\n\t/src/simple1/main.go:48",
        )
        assert zap["ts"] == "2018-05-02T20:52:44.332895Z"

        tracing = records["preparing to shave yaks"]
        assert (tracing["level"], tracing["logger"], tracing["fields"]) == (
            "info",
            "fmt_json",
            {"number_of_yaks": 3},
        )
        assert tracing["ts"] == "2022-02-15T18:47:10.821315Z"

        clef = records["Hello, nblumhardt"]
        assert (clef["format"], clef["level"], clef["ts"]) == (
            "json",
            "info",
            "2016-06-07T03:44:57.853279Z",
        )
        assert clef["fields"] == {"@mt": "Hello, {User}", "User": "nblumhardt"}

        mel = records["Now listening on: http://localhost:7000/"]
        assert (mel["level"], mel["logger"]) == ("warning", "Microsoft.Hosting.Lifetime")
        assert mel["fields"]["State"] == {"address": "http://localhost:7000/"}

        ecs = records["fatal exception while booting"]
        assert (ecs["format"], ecs["level"], ecs["logger"]) == (
            "http",
            "error",
            "org.elasticsearch.bootstrap.Elasticsearch",
        )
        assert ecs["exc"].startswith("java.lang.IllegalArgumentException: high disk watermark\n")
        assert ecs["fields"] == {"error.type": "java.lang.IllegalArgumentException"}

        bunyan = records["hi"]
        assert (bunyan["level"], bunyan["logger"], bunyan["ts"]) == (
            "info",
            "myapp",
            "2013-01-04T18:46:23.851000Z",
        )

        slog = records["hello"]
        assert (slog["level"], slog["ts"]) == ("info", "2022-11-08T20:28:26.000000Z")
        assert slog["fields"] == {"level": "INFO+2", "count": 3}

        # The query API ranks every mapped name: warning and worse are
        # pino's 50, zap's dpanic, MEL's Warning and ECS's ERROR.
        worse = {r["message"] for r in query(netlog, "level>=warning")}
        assert worse == {
            "Failed posting webhook",
            "This is a DPANIC message",
            "Now listening on: http://localhost:7000/",
            "fatal exception while booting",
        }
        errors = {r["message"] for r in query(netlog, "level>=error err.type=Error")}
        assert errors == {"Failed posting webhook"}
