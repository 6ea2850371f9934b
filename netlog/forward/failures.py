"""A destination's refusals: one error type, counted by kind, each kind said once an outage.

An engine that refuses (unreachable, wrong credentials, no permission, a
full stream) refuses again at every retry; the operator needs one line
per kind of trouble and one when shipping resumes, not a line a second.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

__all__ = ["DestinationError", "FailureLog"]


class DestinationError(Exception):
    """A destination did not take a batch (or could not connect); ``kind`` says why."""

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind
        """``unreachable``, ``credentials``, ``permissions``, ``stream full``, ``refused``..."""
        self.text = text
        super().__init__(f"{kind}: {text}")


class FailureLog:
    """Counts failures by kind and reports each kind once until the next success."""

    def __init__(self, destination: str, say: Callable[[str], None]) -> None:
        self.destination = destination
        self._say = say
        self.counts: Counter[str] = Counter()
        """Failures by kind since start (``netlog_forward_failures_total``)."""
        self._said: set[str] = set()
        self._since_success = 0

    def failed(self, kind: str, text: str, retry_in: float) -> None:
        """Count a failure; say it when its kind was not said since the last success."""
        self.counts[kind] += 1
        self._since_success += 1
        if kind not in self._said:
            self._said.add(kind)
            self._say(
                f"forward to {self.destination}: {kind}: {text}; "
                f"retrying with backoff (first retry in {retry_in:.1f}s; said once until it works)"
            )

    def succeeded(self) -> None:
        """A batch was taken: say so if failures came before."""
        if self._since_success:
            failures, self._since_success = self._since_success, 0
            self._said.clear()
            noun = "failure" if failures == 1 else "failures"
            self._say(f"forward to {self.destination}: shipping again after {failures} {noun}")
