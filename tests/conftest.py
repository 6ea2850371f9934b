"""Shared test set-up: keep the root logger as each test found it; coverage's settings.

Also says at the end of a run why browser tests were skipped, so a machine
without chromium does not pass the suite silently short of its viewer tests.
"""

import logging
import os
from collections import Counter

import pytest
from coverage.config import CoverageConfig

#: Where coverage passes its configuration to the processes it measures
#: (pyproject.toml: ``patch = ["subprocess"]``).
COVERAGE_CONFIG = "COVERAGE_PROCESS_CONFIG"


def pytest_configure(config):
    _floor_for_the_whole_suite_only(config)
    _measure_subprocesses_with_gevent()


def _floor_for_the_whole_suite_only(config):
    """Hold the coverage floor (pyproject.toml) only when the whole suite runs.

    ``pytest -q`` runs every test under ``testpaths`` and must reach the
    floor; a run of some files, ``-k`` or ``-m`` covers less by design, so it
    prints its coverage without failing on it.
    """
    whole_suite = (
        config.args_source is pytest.Config.ArgsSource.TESTPATHS
        and not config.option.keyword
        and not config.option.markexpr
    )
    cov = config.pluginmanager.get_plugin("_cov")  # pytest-cov's plugin, when --cov is on
    if cov is not None and not whole_suite:
        cov.options.cov_fail_under = None


def _measure_subprocesses_with_gevent():
    """Measure the processes the tests start with ``concurrency = ["gevent", "thread"]``.

    The servers switch greenlets: traced as threads only, their lines would
    be credited to whichever frame another greenlet left on the tracer's
    stack.  This process keeps pyproject.toml's ``["thread"]``: it switches
    no greenlet it measures, and gevent's hook on every call doubled the
    unit tests' time.
    """
    serialized = os.environ.get(COVERAGE_CONFIG)
    if serialized is None:
        return
    measured = CoverageConfig.deserialize(serialized)
    measured.concurrency = ["gevent", "thread"]
    os.environ[COVERAGE_CONFIG] = measured.serialize()


@pytest.hookimpl(trylast=True)  # after the coverage report, next to the "skipped" count
def pytest_terminal_summary(terminalreporter):
    """One line per reason browser tests were skipped ("4 browser tests skipped: ...")."""
    reasons = Counter(
        _skip_reason(report)
        for report in terminalreporter.stats.get("skipped", [])
        if "browser" in report.keywords
    )
    for reason, count in sorted(reasons.items()):
        tests = "test" if count == 1 else "tests"
        terminalreporter.write_line(f"{count} browser {tests} skipped: {reason}", yellow=True)


def _skip_reason(report):
    """The reason pytest.skip or skipif gave, without pytest's "Skipped: " prefix."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
