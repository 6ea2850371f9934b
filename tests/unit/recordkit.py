"""Numbered records for the store, tail and filter tests.

Record ``i`` has ``fields["i"] == i`` and times ``T0 + i`` (ts) and
``T0 + i + 0.5`` (received), so a test can read back which records a filter,
a reader or ``netlog tail`` kept, and in what order.
"""

from netlog.record import Record

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def rec(i, *, level="info", logger="app", message=None, fields=None, exc=None, ts=None, fmt="json"):
    return Record(
        T0 + i if ts is None else ts,
        T0 + i + 0.5,
        level,
        logger,
        f"message {i}" if message is None else message,
        {"i": i, **(fields or {})},
        exc,
        "127.0.0.1:5000",
        fmt,
    )
