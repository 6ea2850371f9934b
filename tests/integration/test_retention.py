"""--max-age against a real server: old backups go, the file being written never does."""

import json
import time

from reliability_kit import metric

from netlogproc import wait_for

DAY = 86400.0


def stored_line(received: float, message: str) -> bytes:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(received))
    record = {
        "ts": stamp,
        "received": stamp,
        "level": "info",
        "logger": "old",
        "message": message,
        "fields": {},
        "peer": "127.0.0.1:1",
        "format": "json",
    }
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"  # as netlog writes


class TestMaxAge:
    """Rotated files whose newest record is older than --max-age are deleted and counted."""

    def test_old_backup_deleted_young_one_and_current_kept(self, tmp_path, netlog_factory):
        data = tmp_path / "netlog0" / "data"
        data.mkdir(parents=True)
        now = time.time()
        old = data / "records.jsonl.0000000001"
        young = data / "records.jsonl.0000000002"
        current = data / "records.jsonl"
        old.write_bytes(stored_line(now - 10 * DAY, "ten days ago"))
        young.write_bytes(stored_line(now - 2 * DAY, "two days ago"))
        current.write_bytes(stored_line(now - 30 * DAY, "old but being written"))
        server = netlog_factory("--max-age", "7d", "--flush-interval", "0.05")
        assert server.log_dir == data
        wait_for(lambda: not old.exists(), 10, what="the ten-day-old backup deleted")
        assert young.exists()
        assert current.exists()
        assert metric(server, "netlog_store_expired_total") == 1
        assert server.stop() == 0

    def test_off_by_default(self, tmp_path, netlog_factory):
        data = tmp_path / "netlog0" / "data"
        data.mkdir(parents=True)
        old = data / "records.jsonl.0000000001"
        old.write_bytes(stored_line(time.time() - 400 * DAY, "a year ago"))
        server = netlog_factory("--flush-interval", "0.05")
        time.sleep(0.5)
        assert old.exists()
        assert metric(server, "netlog_store_expired_total") == 0
        assert server.stop() == 0
