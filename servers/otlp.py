"""``POST /v1/logs``: OTLP/HTTP logs, on the HTTP port and on the OTLP port (4318).

The handler reads the body under ``--otlp-max-body`` (413 beyond, before and
after inflating), hands it to :func:`netlog.decode.otlp.decode_export` and
the records to the pipeline, and answers as OTLP/HTTP asks
(opentelemetry-proto ``docs/specification.md``, "OTLP/HTTP Response"): 200
with an ``ExportLogsServiceResponse`` in the request's encoding, its
``partial_success`` filled when some records were rejected; 400 for a body
that is not a request, 415 for another content type or coding, 413 past the
size.  Errors are plain text: every exporter treats a 4xx body as a message
for its log.

The OTLP port is an :class:`~servers.http.HttpServer` limited to
``/v1/logs`` and ``/health`` (:func:`otlp_routes`), so it has the HTTP
port's header bounds, connection shedding and drain at shutdown.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from netlog.decode.otlp import JSON, PROTOBUF, decode_export, encode_response, media_of
from netlog.errors import DecodeError
from netlog.record import format_peer
from servers.gevent_private import forget_body

if TYPE_CHECKING:
    from servers.http import HttpServer

__all__ = ["PATH", "handle_export"]

#: Where OTLP/HTTP exporters send logs.
PATH: Final = "/v1/logs"
_STATUS: Final = {
    "unsupported_media_type": 415,
    "unsupported_encoding": 415,
    "decompressed_too_large": 413,
}

Response = tuple[int, list[tuple[str, str]], list[bytes]]


def _text(status: int, text: str, *extra: tuple[str, str]) -> Response:
    body = (text.replace("\n", " ") + "\n").encode("utf-8", "backslashreplace")
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        *extra,
    ]
    return status, headers, [body]


def _read_body(environ: dict[str, Any], limit: int) -> bytes | None:
    """The request body, or ``None`` when it is over ``limit`` (left unread)."""
    stream = environ["wsgi.input"]
    declared = environ.get("CONTENT_LENGTH")
    if declared:
        try:
            size = int(declared)
        except ValueError:
            size = 0
        if size > limit:
            forget_body(stream)
            return None
    body: bytes = stream.read(limit + 1)
    if len(body) > limit:
        forget_body(stream)
        return None
    return body


def handle_export(server: HttpServer, environ: dict[str, Any]) -> Response:
    """Serve one ``POST /v1/logs`` on ``server``: records to its pipeline, OTLP's answer back."""
    limit = server.otlp_max_body
    peer = format_peer((environ.get("REMOTE_ADDR", ""), environ.get("REMOTE_PORT", "")))
    received = time.time()
    try:
        body = _read_body(environ, limit)
    except OSError as exc:  # a malformed chunk, a reset, the idle timeout
        server.stats.bad_frame("otlp_unreadable_body")
        return _text(400, f"cannot read the body: {exc}", ("Connection", "close"))
    if body is None:
        server.stats.bad_frame("otlp_too_large")
        return _text(413, f"the body is larger than {limit} bytes", ("Connection", "close"))
    server.stats.bytes_in[server.name] += len(body)
    content_type = environ.get("CONTENT_TYPE")
    try:
        batch = decode_export(
            body,
            content_type,
            peer,
            received,
            content_encoding=environ.get("HTTP_CONTENT_ENCODING"),
            limit=limit,
            max_line=server.max_line,
            notes=server.stats.notes,
        )
    except DecodeError as exc:
        server.stats.bad_frame(f"otlp_{exc.reason}")
        return _text(_STATUS.get(exc.reason, 400), str(exc))
    if batch.rejected:
        server.stats.dropped["otlp_rejected"] += batch.rejected
        server.report(f"OTLP from {peer}: {batch.error}", key="otlp:rejected")
    if batch.records:
        server.pipeline.submit(batch.records)
    media = PROTOBUF if media_of(content_type) == PROTOBUF else JSON
    answer = encode_response(media, batch.rejected, batch.error)
    headers = [("Content-Type", media), ("Content-Length", str(len(answer)))]
    return 200, headers, [answer]
