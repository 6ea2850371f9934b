"""Which destinations the settings ask for, and the forwarder's command line.

The one place that knows the forwarding options: ``netlog serve`` (the
runner) asks :func:`destination_names` whether to start the forwarder and
passes :func:`child_env`; ``python -m netlog.forward`` parses the same
options (:data:`FORWARD_FIELDS`) and builds the destinations with
:func:`destinations`.  A new destination is one field list entry and one
branch in each function here.  Imports no client library until a
destination is built, so the sink never loads nats-py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from netlog.settings import OPTIONS

if TYPE_CHECKING:
    from netlog.forward.destination import Destination
    from netlog.settings import Settings

__all__ = ["FORWARD_FIELDS", "child_env", "destination_names", "destinations"]

#: The Settings fields the forwarder process takes.
FORWARD_FIELDS: Final = (
    "log_dir",
    "forward_host",
    "nats",
    "nats_stream",
    "nats_replicas",
    "nats_subject",
    "nats_creds",
    "nats_ca",
    "syslog_forward",
    "syslog_ca",
)


def destination_names(settings: Settings) -> list[str]:
    """The destinations enabled (each has its own cursor file); empty: no forwarder."""
    names = []
    if settings.nats:
        names.append("nats")
    if settings.syslog_forward:
        names.append("syslog")
    return names


def destinations(settings: Settings) -> list[Destination]:
    """Build the enabled destinations."""
    found: list[Destination] = []
    if settings.nats:
        from netlog.forward.nats import NatsDestination  # noqa: PLC0415 - only when asked for

        found.append(
            NatsDestination(
                settings.nats.split(","),
                stream=settings.nats_stream,
                replicas=settings.nats_replicas,
                subject=settings.nats_subject,
                host=settings.forward_host,
                creds=str(settings.nats_creds) if settings.nats_creds else None,
                ca_file=settings.nats_ca,
            )
        )
    if settings.syslog_forward:
        from netlog.forward.syslog import SyslogDestination  # noqa: PLC0415 - only when asked for

        found.append(
            SyslogDestination(
                settings.syslog_forward,
                ca_file=settings.syslog_ca,
                hostname=settings.forward_host or None,
            )
        )
    return found


def child_env(settings: Settings) -> dict[str, str]:
    """The forwarder's options as ``NETLOG_*`` variables (never its command line).

    The environment, not argv: a password in a ``--nats`` URL would show in
    ``ps`` for every user of the machine.
    """
    env: dict[str, str] = {}
    for option in OPTIONS:
        if option.name not in FORWARD_FIELDS:
            continue
        value = getattr(settings, option.name)
        env[option.env] = "" if value is None else str(value)
    return env
