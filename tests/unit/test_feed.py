import json

from netlog.record import Record
from netlog.sinks.encode import encode_line, line_id
from netlog.sinks.pipeline import Pipeline
from netlog.stats import Stats
from netlog.viewer import load_assets
from netlog.viewer.feed import (
    DISPLAY_BYTES,
    MAX_PER_MESSAGE,
    MESSAGE_BYTES,
    RecordFeed,
    shown_line,
    sse_dropped,
    sse_messages,
    sse_records,
)


def rec(i, message=None):
    return Record(
        1700000000.0 + i,
        1700000000.5 + i,
        "info",
        "app",
        f"m{i}" if message is None else message,
        {"i": i},
        None,
        "127.0.0.1:1",
        "json",
    )


def messages(lines):
    return [json.loads(line)["message"] for line in lines]


def write(feed, records):
    """Hand the feed a batch the way the pipeline does: records and their lines."""
    feed.write_batch(records, [encode_line(record) for record in records])


class Wakes:
    def __init__(self):
        self.count = 0

    def __call__(self):
        self.count += 1


class NullSink:
    def __init__(self):
        self.records = []
        self.lines = []

    def write_lines(self, lines):
        self.lines.extend(lines)

    def write_batch(self, records, lines):
        self.records.extend(records)
        self.lines.extend(lines)

    def flush(self):
        pass


class TestRecordFeed:
    """The in-memory ring and its fan-out to open pages."""

    def test_keeps_only_the_newest(self):
        feed = RecordFeed(recent=3)
        write(feed, [rec(i) for i in range(5)])
        _, first = feed.subscribe(Wakes())
        assert messages(first) == ["m2", "m3", "m4"]
        assert feed.total == 5

    def test_live_records_reach_every_subscriber_once(self):
        feed = RecordFeed()
        wake_a, wake_b = Wakes(), Wakes()
        a, _ = feed.subscribe(wake_a)
        b, _ = feed.subscribe(wake_b)
        write(feed, [rec(1), rec(2)])
        write(feed, [rec(3)])
        lines, last, dropped = a.take()
        assert messages(lines) == ["m1", "m2", "m3"]
        assert (last, dropped) == (3, 0)
        assert a.take() == ([], 3, 0)
        assert messages(b.take()[0]) == ["m1", "m2", "m3"]
        assert (wake_a.count, wake_b.count) == (2, 2)
        assert feed.subscribers == 2

    def test_slow_subscriber_loses_oldest_and_is_told(self):
        feed = RecordFeed(backlog=4)
        sub, _ = feed.subscribe(Wakes())
        write(feed, [rec(i) for i in range(7)])
        write(feed, [rec(i) for i in range(7, 10)])
        lines, last, dropped = sub.take()
        assert messages(lines) == ["m6", "m7", "m8", "m9"]
        assert (last, dropped) == (10, 6)
        assert feed.dropped == 6
        assert sub.take()[2] == 0  # told once

    def test_last_event_id_resumes(self):
        feed = RecordFeed(recent=10)
        write(feed, [rec(i) for i in range(1, 8)])  # seq 1..7
        _, first = feed.subscribe(Wakes(), last_seen=5)
        assert messages(first) == ["m6", "m7"]
        _, first = feed.subscribe(Wakes(), last_seen=7)
        assert first == []
        _, first = feed.subscribe(Wakes(), last_seen=99)  # from before a restart
        assert len(first) == 7
        write(feed, [rec(i) for i in range(8, 30)])  # ring now holds seq 20..29
        _, first = feed.subscribe(Wakes(), last_seen=3)  # too old: what is left
        assert messages(first) == [f"m{i}" for i in range(20, 30)]

    def test_unsubscribe_and_close(self):
        feed = RecordFeed()
        wake = Wakes()
        sub, _ = feed.subscribe(wake)
        other, _ = feed.subscribe(Wakes())
        feed.unsubscribe(other)
        feed.unsubscribe(other)
        assert feed.subscribers == 1
        feed.close()
        assert sub.closed
        assert wake.count == 1
        late, _ = feed.subscribe(Wakes())
        assert late.closed
        assert feed.subscribers == 1  # closed streams are not kept

    def test_pipeline_feeds_extra_sinks(self):
        feed = RecordFeed()
        files, console = NullSink(), NullSink()
        pipeline = Pipeline(files, console, Stats(), [feed])
        pipeline.submit([rec(1), rec(2)])
        pipeline.flush()
        assert feed.total == 2
        ids = [line_id(line) for line in files.lines]
        assert len(set(ids)) == 2
        assert files.lines == [encode_line(rec(1), ids[0]), encode_line(rec(2), ids[1])]
        assert console.records == [rec(1), rec(2)]
        assert console.lines == files.lines

    def test_pages_get_the_pipelines_lines(self):
        """The feed keeps the very line the file gets (the same object, not a copy)."""
        feed = RecordFeed()
        sub, _ = feed.subscribe(Wakes())
        files = NullSink()
        pipeline = Pipeline(files, NullSink(), Stats(), [feed])
        pipeline.submit([rec(1)])
        lines, _, _ = sub.take()
        assert lines == [encode_line(rec(1), line_id(files.lines[0]))]
        assert lines[0] is files.lines[0]
        _, first = feed.subscribe(Wakes())
        assert first == lines
        assert first[0] is lines[0]
        assert sse_records(first, 1).endswith(b"}]\n\n")  # the newline is not in the event


class TestBytes:
    """Issue 15, item 4: the feed and each page are bounded in bytes, and big records are cut."""

    def test_recent_records_are_bounded_in_bytes(self):
        feed = RecordFeed(recent=200, recent_bytes=10_000, backlog_bytes=10_000)
        for i in range(30):
            write(feed, [rec(i, "x" * 1000)])
        _, first = feed.subscribe(Wakes())
        assert sum(map(len, first)) <= 10_000
        assert messages(first)[-1] == "x" * 1000
        assert feed.recent_bytes <= 10_000
        assert len(first) == 10_000 // len(first[0])

    def test_one_batch_over_the_bound_keeps_its_newest(self):
        feed = RecordFeed(recent=200, recent_bytes=5_000, backlog_bytes=5_000)
        write(feed, [rec(i, "y" * 1000) for i in range(20)])
        _, first = feed.subscribe(Wakes())
        assert [json.loads(line)["fields"]["i"] for line in first] == [16, 17, 18, 19]

    def test_slow_page_is_bounded_in_bytes_and_told(self):
        feed = RecordFeed(backlog=5000, backlog_bytes=20_000)
        sub, _ = feed.subscribe(Wakes())
        for i in range(100):
            write(feed, [rec(i, "z" * 1000)])
        lines, last, dropped = sub.take()
        assert sum(map(len, lines)) <= 20_000
        assert len(lines) + dropped == 100
        assert last == 100
        assert json.loads(lines[-1])["fields"]["i"] == 99
        assert feed.dropped == dropped > 0

    def test_big_records_are_cut_for_display_and_marked(self):
        feed = RecordFeed()
        sub, _ = feed.subscribe(Wakes())
        big = rec(1, "m" * (10 << 20))
        line = encode_line(big, "01KB00000000000000000000ID")
        feed.write_batch([big, rec(2)], [line, encode_line(rec(2))])
        shown = [json.loads(x) for x in sub.take()[0]]
        assert len(json.dumps(shown[0])) <= DISPLAY_BYTES + 100
        assert shown[0]["truncated"] == len(line)
        assert shown[0]["id"] == "01KB00000000000000000000ID"  # the permalink finds the whole
        assert shown[0]["message"].startswith("mmmm")
        assert shown[0]["fields"] == {"i": 1}
        assert "truncated" not in shown[1]

    def test_cut_survives_escapes_and_huge_names_and_fields(self):
        hostile = rec(1, "\x1b" * 100_000)._replace(
            logger="L" * 100_000, fields={"f": "v" * 100_000}, exc="\x00" * 100_000
        )
        line = encode_line(hostile)
        shown = shown_line(hostile, line)
        assert len(shown) <= DISPLAY_BYTES + 100
        value = json.loads(shown)
        assert value["truncated"] == len(line)
        assert value["fields"] == {}
        assert shown_line(rec(2), encode_line(rec(2))) == encode_line(rec(2))

    def test_pages_are_capped(self):
        feed = RecordFeed(max_subscribers=2)
        feed.subscribe(Wakes())
        assert not feed.full
        feed.subscribe(Wakes())
        assert feed.full
        feed.refuse()
        assert feed.refused == 1

    def test_messages_are_bounded_in_bytes(self):
        lines = [b'{"m":"%b"}\n' % (b"a" * 30_000) for _ in range(5)]
        events = list(sse_messages(lines, 5))
        assert len(events) == 3  # two lines of 30 KB fit in 64 KiB
        assert all(len(e) <= MESSAGE_BYTES + 100 for e in events)
        assert [e.split(b"\n", 1)[0] for e in events] == [b"id: 2", b"id: 4", b"id: 5"]
        assert b"".join(events) == sse_records(lines, 5)
        (alone,) = sse_messages([b"x" * 100_000], 1)  # one line larger than a message
        assert alone.count(b"\n") == 4


class TestServerSentEvents:
    """The wire format of the event stream."""

    def test_records_event(self):
        lines = [b'{"a":1}', b'{"a":2}']
        assert sse_records(lines, 9) == b'id: 9\nevent: records\ndata: [{"a":1},{"a":2}]\n\n'
        assert sse_records([], 9) == b""

    def test_big_batches_are_split_with_ids(self):
        lines = [b"%d" % i for i in range(MAX_PER_MESSAGE + 3)]
        events = sse_records(lines, 1000).split(b"\n\n")[:-1]
        assert len(events) == 2
        last_id = 1000 - 3
        assert events[0].startswith(b"id: %d\n" % last_id)
        assert events[1].startswith(b"id: 1000\n")
        assert json.loads(events[1].split(b"data: ")[1]) == [
            MAX_PER_MESSAGE,
            MAX_PER_MESSAGE + 1,
            MAX_PER_MESSAGE + 2,
        ]

    def test_hostile_text_stays_on_one_data_line(self):
        feed = RecordFeed()
        write(feed, [rec(1, "a\nb\r\ndata: forged\u2028\u2029</script>")])
        _, first = feed.subscribe(Wakes())
        event = sse_records(first, 1)
        assert event.count(b"\n") == 4  # id, event, data lines and the blank line
        assert json.loads(event.split(b"data: ", 1)[1])[0]["message"].startswith("a\nb")

    def test_dropped_event(self):
        assert sse_dropped(3) == b'event: dropped\ndata: {"count": 3}\n\n'


class TestAssets:
    """The page ships as package data and never uses innerHTML."""

    def test_assets_load(self):
        assets = load_assets()
        assert set(assets) == {
            "/",
            "/viewer.css",
            "/viewer.js",
            "/favicon.svg",
            "/login.html",
            "/login.js",
            "/login.css",
        }
        page, content_type = assets["/"]
        assert content_type.startswith("text/html")
        assert b'src="viewer.js"' in page
        assert b"http://" not in page.replace(b"http://host:9022/log", b"")  # no CDN

    def test_script_never_writes_html(self):
        script = load_assets()["/viewer.js"][0].decode()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in script
