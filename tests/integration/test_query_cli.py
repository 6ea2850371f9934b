"""`netlog query` against a real server's store: ids, the language, rotation, retention."""

import json
import logging
import logging.handlers
import os
import socket
import subprocess
import sys

import pytest
import structlog

from netlog.store.writer import rotated_paths
from netlogproc import ROOT, wait_for


def run(*args, env=None, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "netlog.cli", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def send_stdlib(server, count, logger_name="app.db"):
    """``count`` records through the stdlib SocketHandler, half with a traceback word."""
    handler = logging.handlers.SocketHandler(*server.address("log_tcp"))
    logger = logging.getLogger(f"{logger_name}.{id(server)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        for i in range(count):
            if i % 10 == 0:
                try:
                    raise TimeoutError("upstream kaputt")  # noqa: TRY301 - a real traceback
                except TimeoutError:
                    logger.exception(
                        "request %d failed", i, extra={"status": 500, "user": f"u{i % 3}"}
                    )
            else:
                logger.info("request %d ok", i, extra={"status": 200, "user": f"u{i % 3}", "ms": i})
    finally:
        handler.close()
        logger.removeHandler(handler)


def send_structlog(server, events):
    """structlog JSON lines over a plain TCP connection (how a structlog app ships them)."""
    render = structlog.processors.JSONRenderer()
    with socket.create_connection(server.address("log_tcp"), timeout=5) as conn:
        for event in events:
            conn.sendall(render(None, "info", dict(event)).encode() + b"\n")


@pytest.fixture
def filled(netlog):
    send_stdlib(netlog, 50)
    send_structlog(
        netlog,
        [
            {
                "event": "payment declined",
                "level": "warning",
                "logger": "billing",
                "order": {"id": 7},
            },
            {"event": "payment ok", "level": "info", "logger": "billing", "order": {"id": 8}},
        ],
    )
    netlog.wait_records(52)
    return netlog


class TestIds:
    """Each record's id is on disk and the same in query --json, tail --json and the engine."""

    def test_ids_in_file_query_and_tail_agree(self, filled):
        on_disk = filled.records()
        ids = [r["id"] for r in on_disk]
        assert len(set(ids)) == len(ids) == 52
        assert all(len(i) == 26 for i in ids)
        assert ids == sorted(ids)  # time-ordered, written in receive order
        queried = run("query", "", "-n", "all", "--json", "--log-dir", filled.log_dir)
        assert queried.returncode == 0, queried.stderr
        assert [json.loads(line)["id"] for line in queried.stdout.splitlines()] == ids
        tailed = run("tail", "-n", "all", "--json", filled.log_dir)
        assert [json.loads(line)["id"] for line in tailed.stdout.splitlines()] == ids

    def test_ids_stay_distinct_across_a_restart(self, netlog_factory):
        first = netlog_factory()
        send_stdlib(first, 5)
        first.wait_records(5)
        first.stop()
        second = netlog_factory("--log-dir", str(first.log_dir))
        send_stdlib(second, 5)
        wait_for(lambda: len(first.records()) >= 10, what="10 records in the shared dir")
        assert len({r["id"] for r in first.records()}) == 10


class TestQuery:
    """The language from the command line, printed as tail prints."""

    def test_words_search_message_traceback_and_fields(self, filled):
        result = run("query", "kaputt", "--json", "--log-dir", filled.log_dir)
        found = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(found) == 5  # the word is only in the tracebacks
        assert all("TimeoutError" in r["exc"] for r in found)
        assert [r["received"] for r in found] == sorted(
            r["received"] for r in found
        )  # oldest first

    def test_comparisons_levels_loggers_and_nesting(self, filled):
        def count(query):
            result = run("query", query, "--count", "--log-dir", filled.log_dir)
            assert result.returncode == 0, result.stderr
            return int(result.stdout)

        assert count("") == 52
        assert count("level>=warning") == 6
        assert count("status=500") == 5
        assert count("ms>=40") == 9
        assert count("logger=app") == 50
        assert count("logger=billing order.id=7") == 1
        assert count("level>=debug -logger=app") == 2
        assert count('"payment declined"') == 1
        assert count("has:exc") == 5

    def test_n_prints_the_newest_oldest_first_like_tail(self, filled):
        result = run(
            "query", "logger=app", "-n", "3", "--color", "never", "--log-dir", filled.log_dir
        )
        lines = result.stdout.splitlines()
        assert len(lines) == 3
        assert "request 47 ok" in lines[0]
        assert "request 49 ok" in lines[2]
        assert "[info" in lines[0]

    def test_histogram_and_facet(self, filled):
        histogram = run("query", "", "--histogram", "--since", "1h", "--log-dir", filled.log_dir)
        assert histogram.returncode == 0, histogram.stderr
        totals = [
            next(int(word) for word in line.split()[1:] if word.isdigit())
            for line in histogram.stdout.splitlines()
        ]
        assert sum(totals) == 52
        assert "warning=1" in histogram.stdout
        facet = run("query", "", "--facet", "user", "--since", "1h", "--log-dir", filled.log_dir)
        assert [line.split() for line in facet.stdout.splitlines()] == [
            ["17", "u0"],
            ["17", "u1"],
            ["16", "u2"],
        ]

    def test_a_query_starting_with_a_dash_after_double_dash(self, filled):
        result = run("query", "--count", "--log-dir", filled.log_dir, "--", "-logger=app")
        assert result.stdout.strip() == "2"

    def test_log_dir_from_the_environment(self, filled):
        result = run("query", "status=500", "--count", env={"NETLOG_LOG_DIR": str(filled.log_dir)})
        assert result.stdout.strip() == "5"

    @pytest.mark.parametrize(
        ("args", "says"),
        [
            (["level>=loud"], "is not a level"),
            (['"open'], "never closed"),
            (["", "--since", "yesterday"], "neither an RFC 3339 time"),
            (["", "--facet", "../x"], "is not a field name"),
            (["", "--since", "1h", "--until", "2h"], "before until"),
        ],
    )
    def test_bad_input_is_one_line_and_exit_2(self, filled, args, says):
        result = run("query", *args, "--log-dir", filled.log_dir)
        assert result.returncode == 2
        assert says in result.stderr
        assert "Traceback" not in result.stderr

    def test_a_missing_log_dir(self, tmp_path):
        result = run("query", "x", "--log-dir", tmp_path / "nope")
        assert result.returncode == 2
        assert "is not a log dir" in result.stderr


class TestRotatedFiles:
    """Rotated files are searched as they are, newest first, a corrupt line skipped."""

    def test_query_across_rotation_with_a_corrupt_line(self, netlog_factory):
        server = netlog_factory("--max-bytes", "4096", "--backups", "100")
        send_stdlib(server, 200)
        wait_for(
            lambda: (
                sum(len(p.read_bytes().splitlines()) for p in rotated_paths(server.log_dir)) >= 200
            ),
            what="200 records in the rotated files",
        )
        server.stop()
        paths = rotated_paths(server.log_dir)
        assert len(paths) > 5
        with paths[0].open("ab") as out:
            out.write(b"{not json at all\n")
        every = run("query", "", "-n", "all", "--json", "--log-dir", server.log_dir)
        records = [json.loads(line) for line in every.stdout.splitlines()]
        assert len(records) == 200
        assert [r["message"] for r in records] == [
            f"request {i} failed" if i % 10 == 0 else f"request {i} ok" for i in range(200)
        ]
        assert run("query", "kaputt", "--count", "--log-dir", server.log_dir).stdout.strip() == "20"
        histogram = run("query", "", "--histogram", "--since", "1h", "--log-dir", server.log_dir)
        assert histogram.returncode == 0
