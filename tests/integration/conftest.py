"""Fixtures that start real netlog processes and always stop them."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from netlogproc import NetlogProcess, start


@pytest.fixture
def netlog_factory(tmp_path):
    """Start servers with extra options; every one is stopped at teardown."""
    started: list[NetlogProcess] = []

    def factory(*args: str, env=None, name: str = "netlog") -> NetlogProcess:
        server = start(tmp_path / f"{name}{len(started)}", *args, env=env)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.kill()


@pytest.fixture
def netlog(netlog_factory) -> NetlogProcess:
    """One server with every listener on an ephemeral port."""
    return netlog_factory()
