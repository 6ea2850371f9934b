"""The query API on the HTTP port: ``/api/records``, ``/api/histogram``, ``/api/facets``.

the README's "Finding records" is the contract.  This module turns a request's query
string into the engine's arguments and the engine's answer into JSON; the
engine (:class:`netlog.query.engine.Engine`) does the searching.  Why it is
shaped this way:

* **Off the hub.**  A query runs on a small dedicated pool of native threads
  (:data:`QUERY_THREADS`); DuckDB releases the GIL, so the event loop keeps
  answering ``/health`` and taking records while a heavy query runs.  At most
  :data:`MAX_QUEUED` more wait for a thread; beyond that a query gets 503 at
  once rather than tying up a connection.
* **What was received is searchable.**  The file sink's queued lines are
  written (no fsync) before each query, so a record the server took before
  the request is in the answer, not a flush interval later.
* **Nothing until asked.**  DuckDB costs about 50 MB of memory once
  imported and connected, so the engine is made at the first query, not at
  start: a server nobody searches stays as small as before.
* **Rotated files compacted, off the hub, once searched.**  After the
  engine opens, and then at most every :data:`COMPACT_EVERY` seconds when
  queries come, one more native thread of its own (never a query's thread)
  writes the live file's missing Parquet segments (:mod:`netlog.store.segments`:
  a search then reads only the live file's uncovered tail as JSONL) and
  compacts the rotated files that have no Parquet copy yet
  (:mod:`netlog.store.compact`), newest first, one at a time, in a DuckDB
  database of its own (1 thread, 256 MB: a core stays free for the event
  loop).  It is tied to the first query because DuckDB is loaded only
  then; a server nobody searches never pays for it, and until a file is
  compacted its JSONL answers.
* **Bad input is the asker's problem, said plainly.**  Every parameter is
  checked here or by the engine (:class:`~netlog.query.language.QueryError`):
  a bad one is a 400 with ``{"error": ...}``, never a 500.  Unknown or
  repeated parameters are refused too, so a typo (``limt=``) is not silently
  ignored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, unquote

import orjson
from gevent.threadpool import ThreadPool

from netlog.query.language import QueryError
from netlog.query.times import parse_time

if TYPE_CHECKING:
    from netlog.query.engine import Engine

__all__ = ["COMPACT_EVERY", "MAX_QUEUED", "QUERY_THREADS", "QueryApi", "open_engine"]

#: Queries that run at once (each on its own native thread).
QUERY_THREADS: Final = 2
#: Queries that may wait for a thread; more get 503.
MAX_QUEUED: Final = 8
#: Seconds between looks for rotated files to compact (each look lists the log dir).
COMPACT_EVERY: Final = 10.0
#: Parameters in one query string, at most (each is checked by name anyway).
_MAX_FIELDS: Final = 16
#: Digits of a number parameter: enough for any allowed value, never a huge parse.
_MAX_DIGITS: Final = 9

_ALLOWED: Final = {
    "records": ("q", "since", "until", "limit", "before"),
    "histogram": ("q", "since", "until", "buckets"),
    "facets": ("q", "since", "until", "field", "top"),
}

_ROUTES: Final = ("/api/records", "/api/histogram", "/api/facets")

Response = tuple[int, list[tuple[str, str]], list[bytes]]


class _ParamError(ValueError):
    """A parameter the API cannot take; the message is for the asker."""


class _Busy(Exception):  # noqa: N818 - a state, not the asker's error
    """Every query thread and waiting place is taken."""


def json_response(status: int, value: Any) -> Response:
    """``value`` as a JSON response that no cache keeps."""
    body = orjson.dumps(value) + b"\n"
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    return status, headers, [body]


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


def parse_params(kind: str, query_string: str) -> dict[str, str]:
    """The query string's parameters, each at most once and each one ``kind`` takes."""
    try:
        pairs = parse_qsl(
            query_string,
            keep_blank_values=True,
            encoding="utf-8",
            errors="replace",
            max_num_fields=_MAX_FIELDS,
        )
    except ValueError:
        raise _ParamError(f"more than {_MAX_FIELDS} parameters") from None
    allowed = _ALLOWED[kind]
    params: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            raise _ParamError(
                f"unknown parameter {name[:40]!r}: /api/{kind} takes {', '.join(allowed)}"
            )
        if name in params:
            raise _ParamError(f"{name} given more than once")
        params[name] = value
    return params


def _number(params: dict[str, str], name: str, default: int) -> int:
    """A whole-number parameter (the engine says how large it may be)."""
    text = params.get(name, "").strip()
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_DIGITS:
        raise _ParamError(f"{name} must be a small whole number, not {text[:20]!r}")
    return int(text)


def open_engine(log_dir: Path) -> Engine:
    """The engine over ``log_dir``; DuckDB is imported here, at the first query."""
    from netlog.query.engine import Engine  # noqa: PLC0415 - see the module: only when asked

    return Engine(log_dir)


def _time(params: dict[str, str], name: str, now: float) -> float | None:
    text = params.get(name, "").strip()
    return parse_time(text, now, what=name) if text else None


class QueryApi:
    """Answers the ``/api/`` routes with an :class:`Engine`, on its own threads."""

    def __init__(
        self,
        open_engine: Callable[[], Engine],
        flush: Callable[[], None],
        *,
        compact: bool = True,
    ) -> None:
        self._open_engine = open_engine
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        self._flush = flush
        self._pool = ThreadPool(QUERY_THREADS)
        self._waiting = 0
        self._compact = compact
        self._compactor = ThreadPool(1)
        self._compacting = False
        self._next_compaction = 0.0
        self.compacted = 0
        """Parquet files this server wrote: rotated files' copies and live-file segments."""
        self.compaction_failures = 0
        """Compaction passes that ended in an unexpected error."""

    def compaction_counts(self) -> tuple[int, int]:
        """Parquet files written and compactions that failed (passes and files), for /metrics."""
        engine = self._engine
        failed = self.compaction_failures + (engine.compact_failures if engine is not None else 0)
        return self.compacted, failed

    @property
    def busy(self) -> int:
        """Queries running or waiting for a thread."""
        return self._waiting

    def close(self) -> None:
        """Stop the threads once idle; a query or compaction still running ends on its own.

        A compaction cut short by the exit leaves only a temporary file,
        removed by the next compaction.
        """
        self._pool.kill()
        self._compactor.kill()

    def handle(self, path: str, query_string: str) -> Response:
        """The answer to one ``GET /api/...`` request."""
        now = time.time()
        try:
            if path.startswith("/api/records/"):
                return self._one(unquote(path.removeprefix("/api/records/")))
            kind = path.removeprefix("/api/")
            if kind not in _ALLOWED:
                return _error(404, f"nothing at {path}: try {', '.join(_ROUTES)}")
            params = parse_params(kind, query_string)
            return self._ask(kind, params, now)
        except (_ParamError, QueryError) as exc:
            return _error(400, str(exc))
        except _Busy:
            status, headers, body = _error(
                503, f"{QUERY_THREADS + MAX_QUEUED} queries are running or waiting; try again soon"
            )
            return status, [*headers, ("Retry-After", "2")], body

    def _ask(self, kind: str, params: dict[str, str], now: float) -> Response:
        q = params.get("q", "")
        since = _time(params, "since", now)
        until = _time(params, "until", now)
        if kind == "records":
            limit = _number(params, "limit", 100)
            before = params.get("before") or None
            started = time.perf_counter()
            answer = self._run("records", q, since, until, limit, before)
            answer["took_ms"] = round((time.perf_counter() - started) * 1000, 1)
            return json_response(200, answer)
        if kind == "histogram":
            buckets = _number(params, "buckets", 60)
            return json_response(200, self._run("histogram", q, since, until, buckets))
        field = params.get("field", "").strip() or "level"
        top = _number(params, "top", 10)
        return json_response(200, self._run("facets", q, since, until, field, top))

    def _one(self, record_id: str) -> Response:
        found = self._run("record", record_id)
        if found is None:
            return _error(404, f"no record with id {record_id[:40]!r}")
        return json_response(200, found)

    def _run(self, method: str, *args: Any) -> Any:
        """The engine's ``method(*args)`` on a query thread, after writing what was received."""
        if self._waiting >= QUERY_THREADS + MAX_QUEUED:
            raise _Busy
        self._flush()
        self._waiting += 1
        try:
            return self._pool.spawn(self._call, method, args).get()
        finally:
            self._waiting -= 1
            self._maybe_compact()

    def _maybe_compact(self) -> None:
        """Start a compaction pass on its own thread when one is due (see the module)."""
        now = time.monotonic()
        if not self._compact or self._engine is None or self._compacting:
            return
        if now < self._next_compaction:
            return
        self._compacting = True
        self._next_compaction = now + COMPACT_EVERY
        self._compactor.spawn(self._compact_pass, self._engine)

    def _compact_pass(self, engine: Engine) -> None:
        """On the compaction thread: compact what is pending, newest first, one file at a time."""
        try:
            self.compacted += len(engine.compact())
        except Exception:  # noqa: BLE001 - a cache: the JSONL answers meanwhile; counted
            self.compaction_failures += 1
        finally:
            self._compacting = False

    def _call(self, method: str, args: tuple[Any, ...]) -> Any:
        """On a query thread: open the engine the first time, then ask it."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = self._open_engine()
            engine = self._engine
        return getattr(engine, method)(*args)
