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


def pytest_collection_modifyitems(items):
    for item in items:
        if item.nodeid.startswith(UNMEASURED):
            item.add_marker(pytest.mark.unmeasured)


@pytest.fixture
def netlog_factory(tmp_path, request):
    """Start servers with extra options; each is stopped at teardown (SIGTERM, then SIGKILL).

    Measured by coverage, unless the test is marked ``unmeasured``.
    """
    started: list[NetlogProcess] = []
    measured = request.node.get_closest_marker("unmeasured") is None

    def factory(*args: str, env=None, name: str = "netlog") -> NetlogProcess:
        server = start(tmp_path / f"{name}{len(started)}", *args, env=env, measured=measured)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.finish()


@pytest.fixture
def netlog(netlog_factory) -> NetlogProcess:
    """One server with every listener on an ephemeral port."""
    return netlog_factory()
