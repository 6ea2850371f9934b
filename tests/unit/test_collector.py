"""The collector's pure parts: a message back into a record, the id memory, a batch's acks."""

import asyncio
import json

import pytest

from netlog.forward.collector import (
    CollectOptions,
    Collector,
    NotARecordError,
    Outcome,
    RecentIds,
    host_of,
    record_from_message,
    stored_ids,
)
from netlog.record import Record, new_id
from netlog.sinks.encode import encode_line
from netlog.store.writer import JsonlFileSink

RECORD = Record(
    ts=1764496800.123456,
    received=1764496800.5,
    level="warning",
    logger="billing",
    message="card declined",
    fields={"user": 42, "nested": {"a": [1, 2]}},
    exc="Traceback (most recent call last):\n  boom\n",
    peer="10.1.2.3:40112",
    format="pickle",
    id="01KB9SVR4M5J8YQZ0000000001",
)


def line_of(record: Record) -> bytes:
    """A record's stored line without its newline, as the forwarder publishes it."""
    return encode_line(record)[:-1]


class TestRecordFromMessage:
    """The stored line comes back whole, with the subject's host."""

    def test_the_line_is_the_hosts_line_with_host_added(self):
        record = record_from_message("netlog.records.web1", line_of(RECORD))
        assert record == RECORD._replace(host="web1")
        assert encode_line(record) == encode_line(RECORD).replace(
            b',"id":', b',"host":"web1","id":'
        )

    def test_a_record_that_has_a_host_keeps_it(self):
        collected = line_of(RECORD._replace(host="db-2"))
        assert record_from_message("netlog.records.relay", collected).host == "db-2"

    def test_host_is_the_last_token(self):
        assert host_of("netlog.records.web1") == "web1"
        assert host_of("other.prefix.h") == "h"
        assert host_of("plain") == "plain"
        assert host_of("netlog.records.") == ""

    def test_a_subject_without_a_host_is_not_taken(self):
        with pytest.raises(NotARecordError):
            record_from_message("netlog.records.", line_of(RECORD))

    @pytest.mark.parametrize(
        "data",
        [
            b"",
            b"not json",
            b"\xff\xfe",
            b"[1, 2]",
            b'"text"',
            b"{}",
            b'{"message": "no id"}',
            json.dumps({**json.loads(line_of(RECORD)), "id": "short"}).encode(),
            json.dumps({**json.loads(line_of(RECORD)), "id": 12345}).encode(),
            json.dumps({**json.loads(line_of(RECORD)), "ts": "yesterday"}).encode(),
            json.dumps(
                {k: v for k, v in json.loads(line_of(RECORD)).items() if k != "received"}
            ).encode(),
        ],
    )
    def test_junk_raises_only_not_a_record(self, data):
        with pytest.raises(NotARecordError):
            record_from_message("netlog.records.web1", data)


class TestRecentIds:
    """The memory of written ids: bounded, oldest forgotten first."""

    def test_bound_forgets_the_oldest(self):
        memory = RecentIds(3, ["a", "b"])
        memory.extend(["c", "d", "e"])
        assert len(memory) == 3
        assert "a" not in memory
        assert "b" not in memory
        assert all(i in memory for i in "cde")

    def test_an_id_seen_again_is_not_counted_twice(self):
        memory = RecentIds(2, ["a", "a", "b"])
        assert len(memory) == 2
        assert "a" in memory

    def test_loaded_from_the_stores_tail_across_rotated_files(self, tmp_path):
        sink = JsonlFileSink(tmp_path, max_bytes=2000, backups=50)
        sink.open()
        ids = [new_id(1764496800.0 + i) for i in range(60)]
        for record_id in ids:
            sink.write_lines([encode_line(RECORD._replace(id=record_id))])
            sink.flush()
        sink.close()
        assert len(list(tmp_path.glob("records.jsonl.*"))) > 3  # rotated several times
        assert stored_ids(tmp_path, 25) == ids[-25:]
        assert stored_ids(tmp_path, 1000) == ids
        assert stored_ids(tmp_path / "empty", 10) == []


class Message:
    """What the collector uses of a nats-py message: subject, data, ack, term."""

    def __init__(self, subject: str, data: bytes, log: list) -> None:
        self.subject, self.data, self.log = subject, data, log

    async def ack(self) -> None:
        self.log.append(("ack", self.data))

    async def term(self) -> None:
        self.log.append(("term", self.data))


class Store:
    """A store that answers as told and logs every call, in order with the acks."""

    def __init__(self, log: list, answers: list[Outcome]) -> None:
        self.log, self.answers = log, answers
        self.written: list[Record] = []

    async def write(self, records, junk, duplicates):
        self.written += records
        self.log.append(("write", len(records), junk, duplicates))
        return self.answers.pop(0)

    async def sync(self):
        self.log.append(("sync",))
        return self.answers.pop(0)


def take(store: Store, memory: RecentIds, messages: list[Message]) -> Collector:
    collector = Collector(CollectOptions(("nats://127.0.0.1:1",)), store, memory, lambda *_: None)

    async def run():
        collector._stop = asyncio.Event()
        await collector._take(messages)

    asyncio.run(run())
    return collector


class TestBatch:
    """Acks come only after the store says written; duplicates and junk are not written."""

    def test_written_then_acked_duplicates_skipped_junk_terminated(self):
        log: list = []
        first = RECORD._replace(id=new_id(1.0))
        old = RECORD._replace(id=new_id(1.0))
        messages = [
            Message("netlog.records.a", line_of(first), log),
            Message("netlog.records.a", b"junk", log),
            Message("netlog.records.a", line_of(first), log),  # twice in one batch
            Message("netlog.records.a", line_of(old), log),  # written by an earlier run
        ]
        store = Store(log, [Outcome.WRITTEN])
        collector = take(store, RecentIds(10, [old.id]), messages)
        assert store.written == [first._replace(host="a")]
        assert log[0] == ("write", 1, 1, 2)
        assert [entry[0] for entry in log[1:]] == ["term", "ack", "ack", "ack"]
        assert first.id in collector.memory
        counts = collector.counts
        assert (counts.records, counts.duplicates, counts.junk) == (1, 2, 1)

    def test_no_ack_until_the_store_has_synced(self):
        log: list = []
        store = Store(log, [Outcome.WAITING, Outcome.WAITING, Outcome.WRITTEN])
        message = Message("netlog.records.a", line_of(RECORD), log)
        take(store, RecentIds(10), [message])
        assert [entry[0] for entry in log] == ["write", "sync", "sync", "ack"]

    def test_lost_lines_are_neither_acked_nor_remembered(self):
        log: list = []
        store = Store(log, [Outcome.LOST])
        collector = take(store, RecentIds(10), [Message("netlog.records.a", line_of(RECORD), log)])
        assert [entry[0] for entry in log] == ["write"]
        assert RECORD.id not in collector.memory
