"""Where decoded records go: counted, then to the file and the console.

One object so that servers hand records to a single place and shutdown has a
single thing to flush.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from netlog.record import Record
from netlog.stats import Stats


class Sink(Protocol):
    """What a sink offers the pipeline."""

    def write(self, records: Sequence[Record]) -> None: ...  # noqa: D102
    def flush(self) -> None: ...  # noqa: D102


class Pipeline:
    """Counts records and fans them out to the file sink, the console and any extras.

    ``extra`` sinks (the live viewer's feed) get every record too; they must
    be as cheap as the console's ``write`` because they run on the hot path.
    """

    def __init__(
        self, files: Sink, console: Sink, stats: Stats, extra: Sequence[Sink] = ()
    ) -> None:
        self.files = files
        self.console = console
        self.stats = stats
        self.extra = tuple(extra)

    def submit(self, records: Sequence[Record]) -> None:
        """Take records from a decoder; cheap, never blocks on the network."""
        if not records:
            return
        received = self.stats.received
        first = records[0].format
        if all(r.format == first for r in records):
            received[first] += len(records)
        else:
            received.update(r.format for r in records)
        self.files.write(records)
        self.console.write(records)
        for sink in self.extra:
            sink.write(records)

    def flush(self) -> None:
        """Push buffered records to the file, the console and the extras."""
        self.files.flush()
        self.console.flush()
        for sink in self.extra:
            sink.flush()
