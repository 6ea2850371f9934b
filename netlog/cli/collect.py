"""``netlog collect``'s arguments: the engine's, then ``serve``'s HTTP, viewer and store options.

``collect`` is ``serve`` with one source of records, a JetStream stream,
instead of listeners: it takes serve's options for the HTTP port (the
viewer, the query API, ``/metrics``), the store (``--log-dir``,
``--max-bytes``, ``--backups``, ``--max-age``, ``--flush-interval``), the
console and the grace, and leaves out every other listener's port (they
stay disabled) and every forwarding option, so a collector never ships
what it collects back to where it came from.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from netlog.cli.serve import add_options
from netlog.forward.collector import (
    DEFAULT_ACK_WAIT,
    DEFAULT_CONSUMER,
    DEFAULT_STREAM,
    CollectOptions,
)
from netlog.settings import DISABLED, OPTIONS, Option, Settings, env_name

__all__ = ["add_collect_parser", "collect_options", "collect_problem", "collect_settings"]

#: serve options that make no sense for a collector besides the listener ports.
_LEFT_OUT: Final = ("responder_rate", "workers", "nats", "syslog_forward", "forward")


def _taken(option: Option) -> bool:
    """Whether ``collect`` takes this serve option: HTTP and store, not listeners or forwarding."""
    if option.name.endswith("_port"):
        return option.name == "http_port"
    return not option.name.startswith(_LEFT_OUT)


def _urls(text: str) -> tuple[str, ...]:
    urls = tuple(url.strip() for url in text.split(",") if url.strip())
    if not urls:
        raise argparse.ArgumentTypeError("no NATS URL given")
    for url in urls:
        if "://" not in url:
            raise argparse.ArgumentTypeError(f"{url!r} is not a URL like nats://host:4222")
    return urls


def _name(text: str) -> str:
    name = text.strip()
    if not name or any(char in name for char in " .*>\t"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a NATS stream or consumer name")
    return name


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _own(flag: str, convert: Any, default: Any, text: str) -> tuple[str, Any, Any, str]:
    return (flag, convert, default, text)


_OWN: Final = (
    _own("--nats", _urls, None, "NATS server URLs, comma-separated (required)"),
    _own("--nats-stream", _name, DEFAULT_STREAM, "the JetStream stream the forwarders publish to"),
    _own("--nats-consumer", _name, DEFAULT_CONSUMER, "the durable consumer's name"),
    _own(
        "--nats-ack-wait",
        _seconds,
        DEFAULT_ACK_WAIT,
        "seconds before JetStream delivers an un-acked message again",
    ),
)


def add_collect_parser(
    commands: argparse._SubParsersAction[Any], environ: Mapping[str, str]
) -> None:
    """``netlog collect``: its engine options, then serve's HTTP, viewer and store options."""
    parser = commands.add_parser(
        "collect",
        help="gather every host's records from NATS JetStream into one store",
        description="Consume the forwarders' JetStream stream into --log-dir; "
        "serve the viewer, the query API and /metrics on --http-port.",
    )
    errors: list[str] = []
    for flag, convert, default, text in _OWN:
        env = env_name(flag)
        value = default
        raw = environ.get(env)
        if raw is not None:
            try:
                value = convert(raw)
            except argparse.ArgumentTypeError as exc:
                errors.append(f"environment variable {env}: {exc}")
        parser.add_argument(
            flag, type=convert, default=value, help=f"{text} (env {env}, default {default})"
        )
    add_options(parser, [option for option in OPTIONS if _taken(option)], environ)
    # add_options set the serve options' environment errors; the engine's come first.
    previous = parser.get_default("environment_errors") or []
    parser.set_defaults(environment_errors=errors + previous)


def collect_problem(namespace: argparse.Namespace) -> str | None:
    """What is missing from a ``collect`` command line: ``--nats`` is required."""
    if namespace.command == "collect" and namespace.nats is None:
        return "--nats (or NETLOG_NATS) is required: the servers the stream is on"
    return None


def collect_options(namespace: argparse.Namespace) -> CollectOptions:
    """The engine options of a parsed ``collect`` command line."""
    return CollectOptions(
        urls=namespace.nats,
        stream=namespace.nats_stream,
        consumer=namespace.nats_consumer,
        ack_wait=namespace.nats_ack_wait,
    )


def collect_settings(namespace: argparse.Namespace) -> Settings:
    """The :class:`Settings` of serve's options that collect takes; other listeners disabled."""
    taken: dict[str, Any] = {
        option.name: getattr(namespace, option.name) for option in OPTIONS if _taken(option)
    }
    ports: dict[str, Any] = {
        option.name: DISABLED
        for option in OPTIONS
        if option.name.endswith("_port") and option.name != "http_port"
    }
    return replace(Settings(), **taken, **ports)
