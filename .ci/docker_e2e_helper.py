"""Helpers for .ci/docker-e2e: the parts that are easier in Python than in bash.

    python3 docker_e2e_helper.py ports
        four free ports on 127.0.0.1, each free for TCP and UDP
    python -m ... send HOST TCP_PORT UDP_PORT RUN_ID EXPECTED_JSON
        send records the way applications do (needs structlog), write what
        was sent to EXPECTED_JSON
    python3 docker_e2e_helper.py check-file RECORDS_JSONL EXPECTED_JSON
        every expected record is in the file exactly once, with the right
        format, logger, level and fields; nothing else is
    python3 docker_e2e_helper.py check-log LOG EXPECTED_JSON
        the container log shows every record and a shutdown summary whose
        "N records written" is the number sent
    python3 docker_e2e_helper.py check-demo RECORDS_JSONL
        the demo app's records arrived through all three of its senders

Only the standard library, except `send` (structlog).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any


def fail(message: str) -> None:
    print(f"docker e2e helper: {message}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- ports


def free_ports(count: int = 6) -> list[int]:
    """Ports free on 127.0.0.1 for both TCP and UDP right now (held until all are chosen)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.bind(("127.0.0.1", 0))
            held.append(tcp)
            port = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                udp.close()
                continue
            held.append(udp)
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


# ---------------------------------------------------------------- send


def send(host: str, tcp_port: int, udp_port: int, run_id: str, expected_path: str) -> None:
    """Send records through SocketHandler, structlog (both ways), text lines and UDP."""
    import structlog  # noqa: PLC0415 - only this subcommand needs it

    expected: list[dict[str, Any]] = []

    # 1. stdlib logging -> SocketHandler (pickle frames), with extra= fields
    handler = logging.handlers.SocketHandler(host, tcp_port)
    stdlib = logging.getLogger("e2e.socket")
    stdlib.propagate = False
    stdlib.setLevel(logging.DEBUG)
    stdlib.addHandler(handler)
    for i in range(20):
        message = f"{run_id} socket {i}"
        level = logging.WARNING if i % 5 == 4 else logging.INFO
        stdlib.log(level, message, extra={"i": i, "kind": "socket"})
        expected.append(
            {
                "message": message,
                "format": "pickle",
                "logger": "e2e.socket",
                "level": logging.getLevelName(level).lower(),
                "fields": {"i": i, "kind": "socket"},
            }
        )
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        message = f"{run_id} socket exception"
        stdlib.exception(message)
        expected.append(
            {
                "message": message,
                "format": "pickle",
                "logger": "e2e.socket",
                "level": "error",
                "exc": "ZeroDivisionError",
            }
        )

    # 2. structlog through stdlib into the same SocketHandler
    via_stdlib = logging.getLogger("e2e.structlog")
    via_stdlib.propagate = False
    via_stdlib.setLevel(logging.DEBUG)
    via_stdlib.addHandler(handler)
    slog = structlog.wrap_logger(
        via_stdlib,
        wrapper_class=structlog.stdlib.BoundLogger,
        processors=[structlog.stdlib.render_to_log_kwargs],
    )
    for i in range(10):
        message = f"{run_id} structlog-stdlib {i}"
        slog.info(message, n=i, user="ada")
        expected.append(
            {
                "message": message,
                "format": "pickle",
                "logger": "e2e.structlog",
                "level": "info",
                "fields": {"n": i, "user": "ada"},
            }
        )
    handler.close()  # flushes nothing (SocketHandler sends synchronously) and closes

    # 3. structlog JSONRenderer, one JSON object a line, on a TCP stream
    with socket.create_connection((host, tcp_port), timeout=10) as sock:
        stream = sock.makefile("w", encoding="utf-8", newline="\n")
        jlog = structlog.wrap_logger(
            structlog.WriteLogger(stream),
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(),
            ],
        ).bind(logger="e2e.json")
        for i in range(10):
            message = f"{run_id} structlog-json {i}"
            if i % 3 == 2:
                jlog.error(message, request_id=f"r{i}", size=i * 10)
                level = "error"
            else:
                jlog.info(message, request_id=f"r{i}", size=i * 10)
                level = "info"
            expected.append(
                {
                    "message": message,
                    "format": "json",
                    "logger": "e2e.json",
                    "level": level,
                    "fields": {"request_id": f"r{i}", "size": i * 10},
                }
            )
        stream.flush()
        sock.shutdown(socket.SHUT_WR)

    # 4. plain text lines (what nc or Go's log package send)
    with socket.create_connection((host, tcp_port), timeout=10) as sock:
        lines = [f"{run_id} text {i}" for i in range(5)]
        sock.sendall("".join(line + "\n" for line in lines).encode())
        sock.shutdown(socket.SHUT_WR)
        expected.extend({"message": line, "format": "text"} for line in lines)

    # 5. DatagramHandler over UDP (published UDP port), paced a little
    datagrams = logging.handlers.DatagramHandler(host, udp_port)
    udp_logger = logging.getLogger("e2e.udp")
    udp_logger.propagate = False
    udp_logger.addHandler(datagrams)
    udp_logger.setLevel(logging.INFO)
    for i in range(5):
        message = f"{run_id} datagram {i}"
        udp_logger.info(message, extra={"d": i})
        expected.append(
            {
                "message": message,
                "format": "pickle",
                "logger": "e2e.udp",
                "level": "info",
                "fields": {"d": i},
            }
        )
        time.sleep(0.01)
    datagrams.close()

    Path(expected_path).write_text(json.dumps(expected, indent=1))
    print(len(expected))


# ---------------------------------------------------------------- checks


def _load_expected(path: str) -> list[dict[str, Any]]:
    return json.loads(Path(path).read_text())


def _records(path: str) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            fail(f"{path}:{number} is not a JSON line: {line[:200]!r}")
    return records


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|\+00:00)$")


def check_file(records_path: str, expected_path: str) -> None:
    """Every expected record once, fields right; nothing unexpected."""
    expected = _load_expected(expected_path)
    records = _records(records_path)
    by_message: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_message.setdefault(str(record.get("message")), []).append(record)
    problems = []
    for want in expected:
        got = by_message.get(want["message"], [])
        if len(got) != 1:
            problems.append(f"{want['message']!r}: found {len(got)} times")
            continue
        record = got[0]
        for key in ("format", "logger", "level"):
            if key in want and record.get(key) != want[key]:
                problems.append(
                    f"{want['message']!r}: {key} is {record.get(key)!r}, want {want[key]!r}"
                )
        for key, value in want.get("fields", {}).items():
            if (record.get("fields") or {}).get(key) != value:
                problems.append(
                    f"{want['message']!r}: fields[{key!r}] is "
                    f"{(record.get('fields') or {}).get(key)!r}, want {value!r}"
                )
        if "exc" in want and want["exc"] not in str(record.get("exc")):
            problems.append(f"{want['message']!r}: no {want['exc']} traceback in exc")
        for key in ("ts", "received"):
            if not RFC3339.match(str(record.get(key))):
                problems.append(f"{want['message']!r}: {key} {record.get(key)!r} is not RFC 3339")
        if not re.match(r"^[0-9a-fA-F.:\[\]]+:\d+$", str(record.get("peer"))):
            problems.append(f"{want['message']!r}: peer {record.get('peer')!r}")
    wanted = {want["message"] for want in expected}
    extra = [r.get("message") for r in records if r.get("message") not in wanted]
    if extra:
        problems.append(f"{len(extra)} unexpected records, e.g. {extra[:3]!r}")
    if problems:
        fail(f"{len(problems)} problems in {records_path}:\n  " + "\n  ".join(problems[:30]))
    print(len(records))


def check_log(log_path: str, expected_path: str) -> None:
    """The console shows every record; the summary line counts them all."""
    expected = _load_expected(expected_path)
    text = Path(log_path).read_text(encoding="utf-8", errors="replace")
    missing = [want["message"] for want in expected if want["message"] not in text]
    if missing:
        fail(f"{len(missing)} records not on the console, e.g. {missing[:3]!r}")
    summary = [line for line in text.splitlines() if "netlog: stopped in" in line]
    if len(summary) != 1:
        fail(f"expected one 'netlog: stopped in' line in the log, found {len(summary)}")
    match = re.search(r"(\d+) records? written", summary[0])
    if not match:
        fail(f"no 'N records written' in the summary line: {summary[0]!r}")
    if int(match.group(1)) != len(expected):
        fail(f"the summary says {match.group(1)} records written, {len(expected)} were sent")
    print(summary[0].split("|", 1)[-1].strip())


def check_demo(records_path: str) -> None:
    """Records from the demo app, through each of its three senders."""
    demo = [r for r in _records(records_path) if str(r.get("message", "")).startswith("demo tick")]
    vias = {(r.get("fields") or {}).get("via"): r.get("format") for r in demo}
    want = {"stdlib": "pickle", "structlog.stdlib": "pickle", "structlog.json": "json"}
    for via, fmt in want.items():
        if vias.get(via) != fmt:
            fail(f"no demo record via {via} in {fmt} format (saw {vias!r})")
    print(len(demo))


def check_drivers(records_path: str, lines: int) -> None:
    """Every line the stdout-only containers printed, through Docker's gelf and fluentd drivers.

    Each printed ``lines`` lines on stdout and as many on stderr; all must
    be on disk once, with the container's name as the logger, the stream's
    level (stdout info, stderr error) and the driver's format.
    """
    problems = []
    counts = {}
    for driver, fmt in (("gelf", "gelf"), ("fluentd", "fluent")):
        for stream, level in (("stdout", "info"), ("stderr", "error")):
            want = {f"{driver} {stream} line {i}" for i in range(1, lines + 1)}
            got = [r for r in _records(records_path) if r.get("message") in want]
            seen = [r["message"] for r in got]
            if sorted(seen) != sorted(want):
                missing = len(want - set(seen))
                problems.append(
                    f"{driver} {stream}: {missing} missing, {len(seen) - len(set(seen))} doubled"
                )
            for record in got:
                if record.get("format") != fmt or record.get("level") != level:
                    problems.append(
                        f"{record['message']}: format {record.get('format')}, level {record.get('level')}"
                    )
                    break
                if f"stdout-{driver}" not in str(record.get("logger")):
                    problems.append(
                        f"{record['message']}: logger {record.get('logger')!r}, not the container"
                    )
                    break
            counts[f"{driver} {stream}"] = len(got)
    if problems:
        fail("; ".join(problems))
    print(", ".join(f"{key} {value}" for key, value in counts.items()))


def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "ports":
        print(" ".join(map(str, free_ports())))
    elif command == "send":
        send(args[0], int(args[1]), int(args[2]), args[3], args[4])
    elif command == "check-file":
        check_file(args[0], args[1])
    elif command == "check-log":
        check_log(args[0], args[1])
    elif command == "check-demo":
        check_demo(args[0])
    elif command == "check-drivers":
        check_drivers(args[0], int(args[1]))
    else:
        fail(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
