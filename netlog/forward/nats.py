"""The NATS JetStream destination: each stored line one message, acknowledged.

Messages go to ``<prefix>.<host>`` (``netlog.records.web1``), the payload
the record's JSON line as stored and the header ``Nats-Msg-Id`` its id, so
JetStream drops a resend inside the stream's duplicate window (two minutes
by default): the forwarder's at-least-once resends after a crash or a lost
ack do not double a record.  The stream is created when missing, covering
``<prefix>.>`` with ``--nats-replicas`` replicas.

A batch is published asynchronously (nats-py's ``publish_async``, at most
``max_in_flight`` unacknowledged; up to :attr:`NatsDestination.pipeline`
batches in flight, published in order) and :meth:`NatsDestination.send` returns
when every message of it is acknowledged, raising otherwise (a timeout, an
API error, a closed connection); the forwarder then resends the batch.
nats-py reconnects by itself; its error callback is kept to name the
failure (a permissions violation is only ever said there: the publish
itself just never gets its ack).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import nats
import nats.errors
import nats.js.errors

from netlog.forward.failures import DestinationError

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.client import JetStreamContext

    from netlog.forward.destination import StoredLine

__all__ = ["NatsDestination", "short_hostname", "subject_token"]

#: Seconds a batch may wait for all its acks before it is resent.
ACK_TIMEOUT: Final = 10.0
#: Unacknowledged messages at most (nats-py's ``publish_async`` semaphore).
DEFAULT_IN_FLIGHT: Final = 4000
#: Seconds one attempt to connect to a server may take.
CONNECT_TIMEOUT: Final = 3.0
#: Seconds :meth:`NatsDestination.connect` tries before it reports a failure.
CONNECT_LIMIT: Final = 5.0
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")


def subject_token(text: str) -> str:
    """``text`` as one subject token: no dots, spaces, wildcards; never empty."""
    return _UNSAFE.sub("_", text)[:64] or "unknown"


def short_hostname() -> str:
    """The short host name as a subject token (``web1.example.com`` -> ``web1``)."""
    return subject_token(socket.gethostname().split(".", 1)[0])


def _classify(exc: BaseException, said: str) -> str:
    """A kind of failure, for reporting once per kind: what an operator must fix."""
    text = f"{exc} {said}".lower()
    if "authorization" in text or "authentication" in text or "credentials" in text:
        return "credentials"
    if "permission" in text:
        return "permissions"
    # A refused publish may reach us only as the error callback's text: nats-py
    # fails to resolve the ack future when the answer is an API error.
    if any(word in text for word in ("maximum", "exceeded", "resource", "insufficient")):
        return "stream full"
    if isinstance(exc, nats.js.errors.APIError) or "apierror" in text or "code=" in text:
        return "refused"
    if isinstance(exc, nats.js.errors.NoStreamResponseError):
        return "no stream"
    return "unreachable"


class NatsDestination:
    """Ships batches to a JetStream stream; see the module docstring."""

    name = "nats"
    pipeline = 4
    """Batches the forwarder may have in flight at once (their messages go out in order)."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        stream: str = "NETLOG",
        replicas: int = 1,
        subject: str = "netlog.records",
        host: str = "",
        creds: str | None = None,
        ca_file: Path | None = None,
        max_in_flight: int = DEFAULT_IN_FLIGHT,
        ack_timeout: float = ACK_TIMEOUT,
    ) -> None:
        self.servers = list(servers)
        self.stream = stream
        self.replicas = replicas
        self.prefix = subject
        self.subject = f"{subject}.{subject_token(host) if host else short_hostname()}"
        self.creds = creds
        self.ca_file = ca_file
        """A private CA for ``tls://`` servers; without it nats-py trusts the system's CAs."""
        self.max_in_flight = max_in_flight
        self.ack_timeout = ack_timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        # What the error callback heard since the last success: the server's
        # "Authorization Violation" is often followed by a connection reset,
        # and the reset alone would be reported as "unreachable".
        self._heard: list[str] = []
        self._stream_ready = False
        # Batches in flight publish one after the other (their acks overlap),
        # so the stream holds the records in stored order.
        self._publishing = asyncio.Lock()

    async def _on_error(self, exc: Exception) -> None:
        text = str(exc)
        if text and text not in self._heard:
            self._heard = [*self._heard[-3:], text]

    @property
    def _said(self) -> str:
        return "; ".join(self._heard)

    async def connect(self) -> None:
        """Connect (nats-py then reconnects by itself) and make sure the stream exists."""
        if self._nc is None or self._nc.is_closed:
            self._heard = []
            options: dict[str, Any] = {
                "servers": self.servers,
                "connect_timeout": CONNECT_TIMEOUT,
                "allow_reconnect": True,
                "max_reconnect_attempts": -1,
                "reconnect_time_wait": 1,
                "error_cb": self._on_error,
                "name": f"netlog-forward {self.subject}",
            }
            if self.creds:
                options["user_credentials"] = self.creds
            if self.ca_file is not None:
                context = ssl.create_default_context(cafile=str(self.ca_file))
                context.minimum_version = ssl.TLSVersion.TLSv1_2
                options["tls"] = context
            try:
                # nats-py retries the first connect as long as its reconnects
                # (for ever here): the time box makes a refusal an error to report.
                self._nc = await asyncio.wait_for(nats.connect(**options), CONNECT_LIMIT)
            except Exception as exc:
                raise DestinationError(_classify(exc, self._said), _text(exc, self._said)) from exc
            self._js = self._nc.jetstream(publish_async_max_pending=self.max_in_flight)
            self._stream_ready = False
        if not self._stream_ready:
            await self._ensure_stream()

    async def _ensure_stream(self) -> None:
        js = self._js
        assert js is not None
        try:
            try:
                await js.stream_info(self.stream)
            except nats.js.errors.NotFoundError:
                await js.add_stream(
                    name=self.stream, subjects=[f"{self.prefix}.>"], num_replicas=self.replicas
                )
        except Exception as exc:
            raise DestinationError(_classify(exc, self._said), _text(exc, self._said)) from exc
        self._stream_ready = True

    async def send(self, batch: Sequence[StoredLine]) -> None:
        """Publish every line and wait for every ack; raise :class:`DestinationError` if not."""
        if self._js is None or self._nc is None or self._nc.is_closed:
            await self.connect()
        js = self._js
        assert js is not None
        futures: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self.ack_timeout):
                async with self._publishing:
                    for item in batch:
                        future = await js.publish_async(
                            self.subject, item.line, headers={"Nats-Msg-Id": item.id}
                        )
                        futures.append(future)
                await asyncio.gather(*futures)
        except Exception as exc:
            for future in futures:
                future.cancel()
            if isinstance(exc, nats.js.errors.APIError) and "stream not found" in str(exc).lower():
                self._stream_ready = False
            raise DestinationError(_classify(exc, self._said), _text(exc, self._said)) from exc
        self._heard = []

    async def close(self) -> None:
        """Drain nothing (the forwarder only calls this when its batch is done); close."""
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), timeout=5)


def _text(exc: BaseException, said: str) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError) and not str(exc):
        text = "no acknowledgement in time"
    if said and said not in text:
        text += f" (server said: {said})"
    return text
