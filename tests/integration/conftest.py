"""Fixtures that start real netlog processes and always stop them."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from netlogproc import NetlogProcess, start

#: Tests that time a server under load get the ``unmeasured`` marker here,
#: until they carry it themselves (``@pytest.mark.unmeasured``).  Traced by
#: coverage, the server drained 8 senders in 10-14 s where the test allows 8,
#: and took 21 s instead of 9 over 160,000 records (10 s allowed to exit).
UNMEASURED = (
    "tests/integration/test_reliability_faults.py::TestSignalDuringIngest::",
    "tests/integration/test_logsink.py::TestShutdownDrain::test_160k_records_",
)


#: Tests of the promises that run twice: as one process, and as
#: ``--workers 2`` (two worker processes sharing the ports, the parent
#: writing); the test ids end in ``[w1]`` and ``[w2]``.
WITH_WORKERS = (
    "tests/integration/test_logsink.py::TestSocketHandler::",
    "tests/integration/test_logsink.py::TestDatagrams::",
    "tests/integration/test_logsink.py::TestLineStreams::",
    "tests/integration/test_logsink.py::TestShutdownDrain::",
    "tests/integration/test_reliability_faults.py::TestSignalDuringIngest::",
    "tests/integration/test_reliability_faults.py::TestCutConnections::",
    "tests/integration/test_echo.py::TestEcho::test_five_clients_each_echo_one_mib_with_half_close",
    "tests/integration/test_echo.py::TestEchoWithNc::",
    "tests/integration/test_responder.py::TestResponder::",
    "tests/integration/test_responder.py::TestHealthChecks::test_summary_counts_health_checks",
    "tests/integration/test_fluent.py::TestAck::",
    "tests/integration/test_fluent.py::TestAckOnAFullDisk::",
    "tests/integration/test_fluent.py::TestShutdown::",
    "tests/integration/test_http.py::TestHealth::test_503_while_draining_then_exit_zero",
    "tests/integration/test_http.py::TestMetrics::test_counters_match_traffic",
    "tests/integration/test_http.py::TestEvents::",
)


def pytest_generate_tests(metafunc):
    if "netlog_workers" in metafunc.fixturenames and metafunc.definition.nodeid.startswith(
        WITH_WORKERS
    ):
        metafunc.parametrize("netlog_workers", [1, 2], indirect=True, ids=["w1", "w2"])


@pytest.fixture
def netlog_workers(request) -> int:
    """The ``--workers`` servers of this test run with: 1 unless listed in WITH_WORKERS."""
    return getattr(request, "param", 1)


def pytest_collection_modifyitems(items):
    for item in items:
        if item.nodeid.startswith(UNMEASURED):
            item.add_marker(pytest.mark.unmeasured)


@pytest.fixture
def netlog_factory(tmp_path, request, netlog_workers):
    """Start servers with extra options; each is stopped at teardown (SIGTERM, then SIGKILL).

    Measured by coverage, unless the test is marked ``unmeasured``.
    """
    started: list[NetlogProcess] = []
    measured = request.node.get_closest_marker("unmeasured") is None

    def factory(*args: str, env=None, name: str = "netlog") -> NetlogProcess:
        server = start(
            tmp_path / f"{name}{len(started)}",
            *args,
            env=env,
            measured=measured,
            workers=netlog_workers,
        )
        started.append(server)
        return server

    yield factory
    for server in started:
        server.finish()


@pytest.fixture
def netlog(netlog_factory) -> NetlogProcess:
    """One server with every listener on an ephemeral port."""
    return netlog_factory()
