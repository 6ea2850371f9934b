"""A run without chromium says, in its summary, that and why the browser tests were skipped.

pytest itself runs here, as a user runs it, on the viewer's browser tests
with a PATH where no chromium can be found (tests/conftest.py prints the line).
"""

import re
import subprocess
import sys

from netlogproc import ROOT, server_environment

BROWSER_TESTS = "tests/integration/test_viewer_browser.py"
SUMMARY = re.compile(
    r"^(\d+) browser (tests?) skipped: no chromium on PATH \(apt-get install chromium\)$",
    re.MULTILINE,
)


def pytest_without_chromium(tmp_path, *args):
    empty = tmp_path / "bin"
    empty.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-cov", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**server_environment(measured=False), "PATH": str(empty)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


class TestBrowserSkips:
    """The reason is in the summary, counted, next to pytest's own "N skipped"."""

    def test_summary_names_the_reason_and_the_fix(self, tmp_path):
        out = pytest_without_chromium(tmp_path, BROWSER_TESTS)
        [(count, tests)] = SUMMARY.findall(out)
        assert int(count) >= 2
        assert tests == "tests"
        assert re.search(rf"^{count} skipped in ", out, re.MULTILINE), out

    def test_one_test_in_the_singular(self, tmp_path):
        listed = pytest_without_chromium(tmp_path, "--collect-only", BROWSER_TESTS)
        first = next(line for line in listed.splitlines() if "::" in line)
        out = pytest_without_chromium(tmp_path / "again", first)
        assert SUMMARY.findall(out) == [("1", "test")], out
