"""An application using netlog.client exits within the documented bound when the sink is down.

README, "One call": what the handler holds is delivered at exit, "bounded,
5 s by default".  The bound is for the whole exit, however the app ends:
``logging.shutdown()`` calls ``flush()`` then ``close()``, and the exit hook
runs it again, so each fresh wait used to add 5 s (10 s, 15 s).  Each app
here is a real process pointed at a port nobody listens on; the wall time is
that of the whole process, start to exit.
"""

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from netlogproc import HOST, ROOT

#: SinkHandler's documented default close_timeout (README, "One call").
DOCUMENTED_BOUND = 5.0
#: Interpreter start, imports and the thread's last 0.1 s, on a loaded machine.
MARGIN = 2.5

APP = """
    import logging, sys
    import structlog
    from netlog.client import configure
    configure(sys.argv[1], service="exit-test")
    structlog.get_logger("app").warning("sink is down", thread=3)
    logging.getLogger("app").error("still down")
    how = sys.argv[2]
    if how == "sys.exit":
        sys.exit(3)
    if how == "uncaught":
        raise RuntimeError("boom")
    if how == "logging.shutdown":
        logging.shutdown()
"""

#: How the app ends -> its exit status.
EXITS = {"normal": 0, "sys.exit": 3, "uncaught": 1, "logging.shutdown": 0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def run_app(how: str, port: int, results: dict) -> None:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(APP), f"{HOST}:{port}", how],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    results[how] = (time.monotonic() - started, proc.returncode, err)


@pytest.fixture(scope="module")
def exits() -> dict:
    """Every way of exiting, run at once (each waits for its sink, not the CPU)."""
    port = free_port()  # closed again: nobody listens on it
    results: dict = {}
    threads = [threading.Thread(target=run_app, args=(how, port, results)) for how in EXITS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert set(results) == set(EXITS)
    return results


class TestExitWithTheSinkDown:
    """However the app exits, it waits once, within the bound, and says what was lost once."""

    @pytest.mark.parametrize("how", list(EXITS))
    def test_exit_is_bounded_and_reported_once(self, exits, how):
        elapsed, status, err = exits[how]
        assert status == EXITS[how], err
        assert err.count("records not delivered") == 1, err
        assert "netlog.client: 2 records not delivered to 127.0.0.1:" in err
        assert elapsed < DOCUMENTED_BOUND + MARGIN, (how, elapsed, err)

    def test_uncaught_exception_still_shows_its_traceback(self, exits):
        _, _, err = exits["uncaught"]
        assert "RuntimeError: boom" in err
