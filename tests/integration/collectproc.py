"""A real ``netlog collect`` process, and a publisher that publishes as a forwarder does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.js.api import StreamConfig

from netlog.record import new_id
from netlog.sinks.encode import format_time
from netlogproc import ROOT, NetlogProcess, server_environment, wait_ready

HOST = "127.0.0.1"
SUBJECT_PREFIX = "netlog.records"
T = TypeVar("T")
#: How long one publish is retried (a cluster electing a leader) before the test fails.
PUBLISH_LIMIT = 60.0


def start_collect(
    workdir: Path, urls: str, *args: str, env: dict[str, str] | None = None, timeout: float = 20.0
) -> NetlogProcess:
    """``python -m netlog.cli collect`` on an ephemeral HTTP port, reading its ready file."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_dir = workdir / "data"
    ready = workdir / "ready.json"
    ready.unlink(missing_ok=True)
    argv = [
        sys.executable, "-m", "netlog.cli", "collect",
        "--nats", urls,
        "--host", HOST,
        "--http-port", "0",
        "--log-dir", str(log_dir),
        "--console", "off",
        "--flush-interval", "0.05",
        "--ready-file", str(ready),
        *args,
    ]  # fmt: skip
    stdout_path = workdir / "stdout.txt"
    stderr_path = workdir / "stderr.txt"
    with stdout_path.open("ab") as out, stderr_path.open("ab") as err:
        proc = subprocess.Popen(
            argv, cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            env=server_environment(env),
        )  # fmt: skip
    ports = wait_ready(proc, ready, stderr_path, timeout, name="collect")
    return NetlogProcess(proc, workdir, log_dir, ports, stdout_path, stderr_path, list(args))


def stored_line(record_id: str, message: str, *, host_peer: str = "10.0.0.7:5140") -> bytes:
    """A line as a host's store holds it (``encode_line``'s shape), for publishing."""
    now = time.time()
    return json.dumps(
        {
            "ts": format_time(now - 0.25),
            "received": format_time(now),
            "level": "info",
            "logger": "app",
            "message": message,
            "fields": {"n": message},
            "peer": host_peer,
            "format": "json",
            "id": record_id,
        },
        separators=(",", ":"),
    ).encode()


def in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` in a thread of its own: Playwright's sync API keeps a loop in ours."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _publish(
    urls: str, stream: str, items: list[tuple[str, bytes, str | None]], replicas: int
) -> None:
    """Publish every item, each retried (on a fresh connection) until acked, as the forwarder does.

    A leader election after a node loss times publishes out or breaks the
    connection; the ``Nats-Msg-Id`` makes a retry safe.
    """
    deadline = time.monotonic() + PUBLISH_LIMIT
    done = 0
    while done < len(items):
        client = None
        try:
            client = await nats.connect(servers=urls.split(","), connect_timeout=5)
            js = client.jetstream(timeout=10)
            try:
                await js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                config = StreamConfig(
                    name=stream, subjects=[f"{SUBJECT_PREFIX}.>"], num_replicas=replicas
                )
                await js.add_stream(config)
            for subject, data, msg_id in items[done:]:
                headers = {"Nats-Msg-Id": msg_id} if msg_id else None
                await js.publish(subject, data, headers=headers, timeout=5)
                done += 1
        except (asyncio.CancelledError, TimeoutError, nats.errors.Error):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
        finally:
            if client is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await client.close()


def publish(
    urls: str, items: list[tuple[str, bytes, str | None]], stream: str = "NETLOG", replicas: int = 1
) -> None:
    """Publish ``(subject, data, Nats-Msg-Id)`` with acks, creating the stream when missing."""
    in_thread(_publish(urls, stream, items, replicas))


async def _consumer_info(urls: str, stream: str, consumer: str):
    client = await nats.connect(servers=urls.split(","), connect_timeout=5)
    try:
        return await client.jetstream(timeout=10).consumer_info(stream, consumer)
    finally:
        await client.close()


def consumer_info(urls: str, stream: str = "NETLOG", consumer: str = "netlog-collect"):
    """The durable consumer's state as JetStream reports it (acked floor, pending)."""
    return in_thread(_consumer_info(urls, stream, consumer))


def make_records(host: str, count: int, tag: str = "") -> list[tuple[str, bytes, str]]:
    """``count`` records of ``host`` as its forwarder publishes them: (subject, line, id)."""
    items = []
    for i in range(count):
        record_id = new_id(time.time())
        items.append(
            (f"{SUBJECT_PREFIX}.{host}", stored_line(record_id, f"{host} {tag}{i}"), record_id)
        )
    return items
