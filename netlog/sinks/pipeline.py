"""Where decoded records go: counted, encoded once, then to the file, the console and extras.

One object so that servers hand records to a single place and shutdown has a
single thing to flush.  Each batch is encoded to JSON lines here, once,
whatever the number of sinks: the file, ``--console json`` and the viewer's
feed all want the same line, and encoding is most of a sink's cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from netlog.record import Record, new_id
from netlog.sinks.encode import encode_line
from netlog.stats import Stats


class LineSink(Protocol):
    """What the file sink offers the pipeline: it needs only the encoded lines."""

    def write_lines(self, lines: Sequence[bytes]) -> None: ...  # noqa: D102
    def flush(self) -> None: ...  # noqa: D102


class Sink(Protocol):
    """What the console and extra sinks offer: a batch as records and as lines.

    ``lines[i]`` is ``encode_line(records[i])``; a sink that writes JSON uses
    the lines, one that renders (pretty console) uses the records.
    """

    def write_batch(self, records: Sequence[Record], lines: Sequence[bytes]) -> None: ...  # noqa: D102
    def flush(self) -> None: ...  # noqa: D102


class Pipeline:
    """Counts records, encodes them once and fans them out to the file, the console and extras.

    ``extra`` sinks (the live viewer's feed) get every batch too; they must
    be as cheap as the console's ``write_batch`` because they run on the hot
    path.
    """

    def __init__(
        self, files: LineSink, console: Sink, stats: Stats, extra: Sequence[Sink] = ()
    ) -> None:
        self.files = files
        self.console = console
        self.stats = stats
        self.extra = tuple(extra)

    def submit(self, records: Sequence[Record]) -> None:
        """Take records from a decoder; cheap, never blocks on the network.

        Every record gets its id here, as it is encoded (a forwarded record
        keeps its own): the file, the console and the viewer see one line.
        """
        if not records:
            return
        received = self.stats.received
        first = records[0].format
        if all(r.format == first for r in records):
            received[first] += len(records)
        else:
            received.update(r.format for r in records)
        # Each record's id is made here, once, and is in every sink's line.
        lines = [encode_line(record, new_id(record.received)) for record in records]
        self.files.write_lines(lines)
        self.console.write_batch(records, lines)
        for sink in self.extra:
            sink.write_batch(records, lines)

    def flush(self) -> None:
        """Push buffered records to the file, the console and the extras."""
        self.files.flush()
        self.console.flush()
        for sink in self.extra:
            sink.flush()
