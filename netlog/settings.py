"""Settings for ``netlog serve``: every option once, in one frozen dataclass.

Each :class:`Settings` field carries its option in its metadata: the value's
converter, its ``--help`` text and how the README shows it.  The command line
(:mod:`netlog.cli.serve`), the ``NETLOG_<OPTION>`` environment variables and
the README's options table (:func:`options_table`, checked by a test) are all
derived from :data:`OPTIONS`, so adding an option is one field here.

Every default lives in this module; code elsewhere imports the ``DEFAULT_*``
names instead of restating a number.  This module imports no argparse: the
client and the decoders read their defaults from here without paying for the
command line.
"""

from __future__ import annotations

import logging.handlers
import os
import re
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Final, Literal, NamedTuple, get_args

#: What the console shows: a coloured line per record, the JSON line, or nothing.
ConsoleMode = Literal["pretty", "json", "off"]
CONSOLE_MODES: Final[tuple[ConsoleMode, ...]] = get_args(ConsoleMode)
#: How the console shows where a record was made (a LogRecord's ``fields._src``):
#: ``billing.py:54 in worker``, the whole path with thread and pid, or not at all.
SourceMode = Literal["short", "full", "off"]
SOURCE_MODES: Final[tuple[SourceMode, ...]] = get_args(SourceMode)

DEFAULT_HOST: Final = "0.0.0.0"  # noqa: S104 - a server in a container must listen on all interfaces
DEFAULT_ECHO_PORT: Final = 7007
DEFAULT_RESPONDER_PORT: Final = 7007
DEFAULT_LOG_TCP_PORT: Final = logging.handlers.DEFAULT_TCP_LOGGING_PORT  # 9020
DEFAULT_LOG_UDP_PORT: Final = logging.handlers.DEFAULT_UDP_LOGGING_PORT  # 9021
DEFAULT_HTTP_PORT: Final = logging.handlers.DEFAULT_HTTP_LOGGING_PORT  # 9022
DEFAULT_GELF_PORT: Final = 12201  # Graylog's GELF inputs, UDP and TCP alike
#: Fluentd's forward protocol (in_forward's and Docker's fluentd driver's default).
DEFAULT_FLUENT_PORT: Final = 24224
DEFAULT_OTLP_PORT: Final = 4318  # OTLP/HTTP's registered port
#: The largest OTLP request body, before and after inflating: a few SDK
#: batches of 512 records; parsing the worst 4 MiB (2 million empty
#: messages) costs upb about 300 MB for the moment it takes.
DEFAULT_OTLP_MAX_BODY: Final = 4 << 20
DEFAULT_LOG_TLS_PORT: Final = 6514  # syslog over TLS, RFC 5425
DEFAULT_LOG_DIR: Final = Path("./netlog-data")
DEFAULT_CONSOLE: Final[ConsoleMode] = "pretty"
DEFAULT_CONSOLE_SRC: Final[SourceMode] = "short"
DEFAULT_GRACE: Final = 5.0
DEFAULT_IDLE_TIMEOUT: Final = 300.0
DEFAULT_MAX_CONNECTIONS: Final = 1000
DEFAULT_MAX_FRAME: Final = 1 << 20
DEFAULT_MAX_LINE: Final = 1 << 20
DEFAULT_RESPONDER_RATE: Final = 1000.0
DEFAULT_FLUSH_INTERVAL: Final = 1.0
DEFAULT_MAX_BYTES: Final = 100 * (1 << 20)
DEFAULT_BACKUPS: Final = 5

#: A port option's value that disables its listener.
DISABLED: Final = -1


class OptionError(ValueError):
    """A value an option cannot take; the message names the value and why.

    The command line turns it into argparse's one-line error; it is its own
    type so that this module needs no argparse.
    """


def env_name(option: str) -> str:
    """``--log-tcp-port`` -> ``NETLOG_LOG_TCP_PORT``."""
    return "NETLOG_" + option.lstrip("-").replace("-", "_").upper()


def _integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise OptionError(f"{text!r} is not a whole number") from None


def _port(text: str) -> int:
    value = _integer(text)
    if not DISABLED <= value <= 65535:
        raise OptionError(f"{text!r} is not a port (0-65535, or -1 to disable)")
    return value


def _positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise OptionError(f"{text!r} must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise OptionError(f"{text!r} must not be negative")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise OptionError(f"{text!r} is not a number") from None
    if not 0 <= value < 10**9:  # also rejects nan and inf
        raise OptionError(f"{text!r} must be a number >= 0")
    return value


def _workers(text: str) -> int:
    """``auto`` is one worker per core this process may run on (its CPU affinity)."""
    if text.strip().lower() == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    return _positive_int(text)


def _positive_seconds(text: str) -> float:
    value = _non_negative(text)
    if value <= 0:
        raise OptionError(f"{text!r} must be more than 0 seconds")
    return value


def _console(text: str) -> ConsoleMode:
    value = text.strip().lower()
    for mode in CONSOLE_MODES:
        if value == mode:
            return mode
    raise OptionError(f"{text!r} is not one of {', '.join(CONSOLE_MODES)}")


def _console_src(text: str) -> SourceMode:
    value = text.strip().lower()
    for mode in SOURCE_MODES:
        if value == mode:
            return mode
    raise OptionError(f"{text!r} is not one of {', '.join(SOURCE_MODES)}")


#: Byte counts as people write them.  Two-letter SI units are powers of 1000
#: (a disk's GB); one letter and the IEC ``KiB`` are powers of 1024 (what
#: ``ls -h``, ``sort -S`` and Docker's ``10m`` mean), as GNU coreutils reads them.
_SIZE_UNITS: Final[dict[str, int]] = {
    "": 1,
    "b": 1,
    **{f"{p}b": 1000**i for i, p in enumerate("kmgt", 1)},
    **{p: 1024**i for i, p in enumerate("kmgt", 1)},
    **{f"{p}ib": 1024**i for i, p in enumerate("kmgt", 1)},
}
_SIZE: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)", re.IGNORECASE | re.ASCII)
#: Larger than any file or frame; keeps a typo (``1000000T``) out of the arithmetic.
_MAX_SIZE: Final = 1 << 50
#: How a size may be written, for ``--help`` and the one-line error.
SIZE_UNITS_HELP: Final = (
    "bytes, or with a unit: KB MB GB TB (powers of 1000), K M G T or KiB MiB GiB TiB (of 1024)"
)


def parse_size(text: str) -> int:
    """``10MB`` -> 10,000,000, ``512KiB`` -> 524,288, ``1G`` -> 1,073,741,824, ``4096`` -> 4096.

    Case does not matter and a space may separate the number from its unit;
    a fraction is allowed where the result is bytes (``1.5G``), and rounded
    down.  Anything else is an :class:`OptionError` that says which units.
    """
    match = _SIZE.fullmatch(text.strip())
    factor = _SIZE_UNITS.get(match.group(2).lower()) if match else None
    if match is None or factor is None:
        raise OptionError(f"{text!r} is not a size ({SIZE_UNITS_HELP})")
    number, _, fraction = match.group(1).partition(".")
    # Whole part and fraction apart, so 1.5G is exact without floats.
    size: int = int(number or 0) * factor + int(fraction or 0) * factor // 10 ** len(fraction)
    if size > _MAX_SIZE:
        raise OptionError(f"{text!r} is too large (at most {_MAX_SIZE >> 40} TiB)")
    return size


def _positive_size(text: str) -> int:
    value = parse_size(text)
    if value < 1:
        raise OptionError(f"{text!r} must be at least 1 byte")
    return value


_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_DURATION_UNIT: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _age(text: str) -> float:
    """``7d``, ``12h``, ``1d12h``, ``90m`` (or plain seconds) -> seconds; ``0`` is off."""
    value = text.strip().lower()
    if re.fullmatch(r"(?:\d+(?:\.\d+)?[smhdw])+", value):
        return float(sum(float(n) * _DURATION_UNIT[u] for n, u in _DURATION_PART.findall(value)))
    try:
        return _non_negative(value)
    except OptionError:
        raise OptionError(f"{text!r} is not an age like 7d, 12h, 90m (0 = off)") from None


def _path(text: str) -> Path:
    if not text.strip():
        raise OptionError("an empty path")
    return Path(text)


def _host(text: str) -> str:
    if not text.strip():
        raise OptionError("an empty host")
    return text.strip()


def _host_list(text: str) -> tuple[str, ...]:
    """``a.example, b.example`` -> the names; ``*`` allows any ``Host``."""
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    if any(" " in name or "/" in name for name in names):
        raise OptionError(f"{text!r} is not a comma-separated list of host names")
    return names


def _token(text: str) -> str:
    """An access token: surrounding spaces dropped, never empty (an empty one guards nothing)."""
    value = text.strip()
    if not value:
        raise OptionError("an empty token: set a value or leave the option out")
    return value


def _nats_urls(text: str) -> str:
    """``nats://a:4222,tls://b:4222`` (or bare ``host:port``): the servers, checked."""
    urls = [part.strip() for part in text.split(",") if part.strip()]
    for url in urls:
        scheme, sep, rest = url.partition("://")
        if (sep and scheme not in ("nats", "tls", "ws", "wss")) or not (rest if sep else url):
            raise OptionError(f"{url!r} is not a NATS server URL (nats://HOST:PORT, tls://...)")
    return ",".join(urls)


def _nats_name(text: str) -> str:
    """A stream name: no spaces, dots, wildcards or path separators (JetStream's rule)."""
    value = text.strip()
    if not value or re.search(r"[\s.*>/\\]", value):
        raise OptionError(f"{text!r} is not a stream name (no spaces, dots, *, >, / or \\)")
    return value


def _nats_subject(text: str) -> str:
    """A subject prefix of plain tokens: ``netlog.records``."""
    value = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*", value):
        raise OptionError(f"{text!r} is not a subject prefix (tokens of A-Z a-z 0-9 _ - and dots)")
    return value


def _replicas(text: str) -> int:
    value = _integer(text)
    if not 1 <= value <= 5:
        raise OptionError(f"{text!r} is not a replica count (1-5)")
    return value


#: The transports of ``--syslog-forward`` and the port each takes when the URL has none
#: (514 is syslog's, RFC 5426 for UDP and customary for TCP; 6514 is RFC 5425's).
SYSLOG_PORTS: Final = {"tcp": 514, "udp": 514, "tls": 6514}


class SyslogTarget(NamedTuple):
    """Where ``--syslog-forward`` sends: ``tcp``/``udp``/``tls``, a host and a port."""

    scheme: str
    host: str
    port: int


def syslog_target(text: str) -> SyslogTarget:
    """``tcp://HOST:PORT``, ``udp://…``, ``tls://…`` (``[::1]`` for IPv6) -> its parts."""
    scheme, sep, rest = text.strip().partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SYSLOG_PORTS:
        raise OptionError(f"{text!r} is not tcp://, udp:// or tls://HOST:PORT")
    host, colon, port = rest.rstrip("/").rpartition(":")
    if not colon or "]" in port:
        host, port = rest.rstrip("/"), str(SYSLOG_PORTS[scheme])
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise OptionError(f"{text!r} has no host or no port 1-65535")
    return SyslogTarget(scheme, host, int(port))


def _syslog_forward(text: str) -> str:
    syslog_target(text)
    return text.strip()


def _mib(size: int) -> str:
    return f"{size >> 20} MiB"


def _option(
    convert: Callable[[str], object], text: str, *, readme: str = "", shown: str = ""
) -> dict[str, object]:
    """The metadata that makes a :class:`Settings` field a ``serve`` option.

    ``text`` is the ``--help`` line; ``readme`` replaces it in the README's
    table where the README says more, and ``shown`` is the README's default
    where the value's own spelling is not how a person writes it (``1 MiB``).
    """
    return {"convert": convert, "help": text, "readme": readme or text, "shown": shown}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``netlog serve`` can be told; immutable once parsed.

    The field order is the order of ``--help`` and of the README's table.
    """

    host: str = field(default=DEFAULT_HOST, metadata=_option(_host, "address every listener binds"))
    echo_port: int = field(default=DEFAULT_ECHO_PORT, metadata=_option(_port, "TCP echo port"))
    responder_port: int = field(
        default=DEFAULT_RESPONDER_PORT, metadata=_option(_port, "UDP responder port")
    )
    log_tcp_port: int = field(
        default=DEFAULT_LOG_TCP_PORT, metadata=_option(_port, "log sink TCP port")
    )
    log_udp_port: int = field(
        default=DEFAULT_LOG_UDP_PORT, metadata=_option(_port, "log sink UDP port")
    )
    gelf_udp_port: int = field(
        default=DEFAULT_GELF_PORT,
        metadata=_option(_port, "GELF UDP port (whole, chunked, gzip/zlib datagrams)"),
    )
    gelf_tcp_port: int = field(
        default=DEFAULT_GELF_PORT,
        metadata=_option(_port, "GELF TCP port (NUL-terminated JSON frames)"),
    )
    http_port: int = field(
        default=DEFAULT_HTTP_PORT,
        metadata=_option(
            _port,
            "HTTP port",
            readme="HTTP: `POST /log`, `/health`, `/metrics`, the live viewer",
        ),
    )
    fluent_port: int = field(
        default=DEFAULT_FLUENT_PORT,
        metadata=_option(
            _port,
            "Fluentd forward protocol port (Docker's fluentd driver, fluent-logger)",
            readme="Fluentd forward protocol v1 (Docker's `fluentd` log driver, fluent-logger)",
        ),
    )
    otlp_port: int = field(
        default=DEFAULT_OTLP_PORT,
        metadata=_option(
            _port,
            "OTLP/HTTP logs port (POST /v1/logs)",
            readme="OpenTelemetry OTLP/HTTP logs: `POST /v1/logs` (also on the HTTP port)",
        ),
    )
    log_dir: Path = field(
        default=DEFAULT_LOG_DIR,
        metadata=_option(
            _path, "where records.jsonl is written", readme="where `records.jsonl` is written"
        ),
    )
    console: ConsoleMode = field(
        default=DEFAULT_CONSOLE,
        metadata=_option(
            _console,
            "console output: pretty, json or off",
            readme="`pretty` (colours on a terminal), `json`, or `off`",
        ),
    )
    console_src: SourceMode = field(
        default=DEFAULT_CONSOLE_SRC,
        metadata=_option(
            _console_src,
            "where a record was made, on the pretty console: short, full or off",
            readme="where a `SocketHandler` record was made, shown after its fields on the"
            " pretty console: `short` (`billing.py:54 in worker`), `full` (the whole path,"
            " thread, pid) or `off`",
        ),
    )
    grace: float = field(
        default=DEFAULT_GRACE,
        metadata=_option(_non_negative, "seconds shutdown waits for open log connections"),
    )
    ready_file: Path | None = field(
        default=None,
        metadata=_option(
            _path,
            "write the bound ports here as JSON once listening",
            readme='once every listener is bound, write `{"pid": …, "echo": …, "responder": …,'
            ' "log_tcp": …, "log_udp": …, "http": …, "gelf_udp": …, "gelf_tcp": …, "fluent": …,'
            ' "otlp": …}` to this path atomically (disabled listeners absent)',
        ),
    )
    idle_timeout: float = field(
        default=DEFAULT_IDLE_TIMEOUT,
        metadata=_option(
            _positive_seconds,
            "close silent connections",
            readme="seconds before a silent connection is closed",
        ),
    )
    max_connections: int = field(
        default=DEFAULT_MAX_CONNECTIONS,
        metadata=_option(
            _positive_int,
            "concurrent connections per TCP listener",
            readme="concurrent connections per TCP listener; more wait in the kernel's queue",
        ),
    )
    max_frame: int = field(
        default=DEFAULT_MAX_FRAME,
        metadata=_option(
            _positive_size,
            "largest SocketHandler frame, a size as for --max-bytes",
            readme="largest `SocketHandler` frame",
            shown=_mib(DEFAULT_MAX_FRAME),
        ),
    )
    max_line: int = field(
        default=DEFAULT_MAX_LINE,
        metadata=_option(
            _positive_size,
            "longest JSON or text line, a size as for --max-bytes",
            readme="longest JSON or text line",
            shown=_mib(DEFAULT_MAX_LINE),
        ),
    )
    otlp_max_body: int = field(
        default=DEFAULT_OTLP_MAX_BODY,
        metadata=_option(
            _positive_size,
            "largest OTLP request body, before and after gzip, a size as for --max-bytes",
            readme="largest OTLP/HTTP request body, before and after inflating gzip (413 beyond)",
            shown=_mib(DEFAULT_OTLP_MAX_BODY),
        ),
    )
    responder_rate: float = field(
        default=DEFAULT_RESPONDER_RATE,
        metadata=_option(
            _non_negative,
            "UDP replies/s per source, 0 = unlimited",
            readme="UDP replies per second per source (burst twice that), `0` = unlimited",
        ),
    )
    flush_interval: float = field(
        default=DEFAULT_FLUSH_INTERVAL,
        metadata=_option(
            _positive_seconds,
            "seconds between file flushes",
            readme="seconds between writes to disk",
        ),
    )
    workers: int = field(
        default=1,
        metadata=_option(
            _workers,
            "worker processes sharing the listening ports (SO_REUSEPORT); auto = one per core",
            readme="worker processes that share the TCP/UDP listening ports (`SO_REUSEPORT`; "
            "log connections balanced at accept to the least-loaded worker) and hand their "
            "records to the one writing process; `auto` = one per core",
        ),
    )
    max_bytes: int = field(
        default=DEFAULT_MAX_BYTES,
        metadata=_option(
            _positive_size,
            f"rotate records.jsonl at this size; {SIZE_UNITS_HELP}",
            readme="rotate `records.jsonl` at this size",
            shown=_mib(DEFAULT_MAX_BYTES),
        ),
    )
    backups: int = field(
        default=DEFAULT_BACKUPS,
        metadata=_option(
            _non_negative_int,
            "rotated files kept",
            readme="rotated files kept, `records.jsonl.0000000001` upwards: the highest"
            " number is the newest; past this many, the oldest is deleted",
        ),
    )
    max_age: float = field(
        default=0.0,
        metadata=_option(
            _age,
            "delete rotated files whose newest record is older (7d, 12h; 0 = off)",
            readme="delete rotated files whose newest record is older than this (`7d`, `12h`);"
            " never `records.jsonl`; counted in `/metrics`; `0` keeps them (then `--backups`"
            " alone decides)",
            shown="0 (off)",
        ),
    )
    allowed_hosts: tuple[str, ...] | None = field(
        default=None,
        metadata=_option(
            _host_list,
            "more Host names the HTTP port answers, comma-separated; * allows any",
            readme="more `Host` names the HTTP port answers (comma-separated) besides"
            " `localhost`, IP addresses and the machine's name; `*` allows any (turns off"
            " the DNS-rebinding defence)",
        ),
    )
    auth_token: str | None = field(
        default=None,
        repr=False,
        metadata=_option(
            _token,
            "require this token on every HTTP route but /health",
            readme="require `Authorization: Bearer TOKEN` (or the viewer's login cookie) on"
            " every HTTP route but `/health`; prefer the variable or `--auth-token-file`"
            " to the flag, which `ps` shows",
        ),
    )
    auth_token_file: Path | None = field(
        default=None,
        metadata=_option(
            _path,
            "read the access token from this file at start",
            readme="read the access token from this file once at start (surrounding"
            " whitespace dropped; a missing or empty file stops the start)",
        ),
    )
    nats: str = field(
        default="",
        metadata=_option(
            _nats_urls,
            "forward every stored record to these NATS JetStream servers (comma-separated URLs)",
            readme="forward every stored record to NATS JetStream at these servers"
            " (`nats://HOST:4222,...`; `tls://` for TLS); empty: no NATS forwarding",
            shown="— (off)",
        ),
    )
    nats_stream: str = field(
        default="NETLOG",
        metadata=_option(_nats_name, "JetStream stream, created when missing"),
    )
    nats_replicas: int = field(
        default=1,
        metadata=_option(_replicas, "replicas of the stream when netlog creates it (1-5)"),
    )
    nats_subject: str = field(
        default="netlog.records",
        metadata=_option(
            _nats_subject,
            "subject prefix: records go to <prefix>.<host>",
            readme="subject prefix: records go to `<prefix>.<host>`;"
            " a stream netlog creates covers `<prefix>.>`",
        ),
    )
    nats_creds: Path | None = field(
        default=None,
        metadata=_option(_path, "NATS credentials file (.creds: JWT and NKey seed)"),
    )
    nats_ca: Path | None = field(
        default=None,
        metadata=_option(
            _path,
            "CA file that verifies tls:// NATS servers (default: the system's CAs)",
            readme="CA certificates (PEM) that verify `tls://` NATS servers; without it, the"
            " system's CAs",
        ),
    )
    forward_host: str = field(
        default="",
        metadata=_option(
            str.strip,
            "the name this machine's records are forwarded under (default: short hostname)",
            shown="short hostname",
        ),
    )
    forward_backlog: int = field(
        default=1 << 30,
        metadata=_option(
            _positive_size,
            "keep rotated files not yet forwarded past --backups up to this store size",
            readme="while forwarding, rotated files not yet shipped are kept past `--backups`"
            " until the store's files total this much; then the oldest goes anyway,"
            " reported and counted (`netlog_forward_unshipped_deleted_total`)",
            shown="1 GiB",
        ),
    )

    syslog_forward: str | None = field(
        default=None,
        metadata=_option(
            _syslog_forward,
            "forward every stored record to a syslog collector: tcp://, udp:// or tls://HOST:PORT",
            readme="forward every stored record to a syslog collector as RFC 5424:"
            " `tcp://HOST:PORT` (octet counting, RFC 6587), `udp://HOST:PORT` (one datagram"
            " each, cut at 2048 bytes) or `tls://HOST:PORT` (RFC 5425)",
        ),
    )
    syslog_ca: Path | None = field(
        default=None,
        metadata=_option(
            _path,
            "CA file that verifies a tls:// syslog collector (default: the system's CAs)",
            readme="CA certificates (PEM) that verify a `tls://` syslog collector; without it,"
            " the system's CAs",
        ),
    )
    log_tls_port: int = field(
        default=DEFAULT_LOG_TLS_PORT,
        metadata=_option(
            _port,
            "log sink TLS port (with --tls-cert): what the TCP port takes, over TLS",
            readme="log sink over TLS (only with `--tls-cert`): everything the TCP port takes,"
            " and RFC 5425 syslog as rsyslog's and syslog-ng's TLS outputs send it",
        ),
    )
    tls_cert: Path | None = field(
        default=None,
        metadata=_option(
            _path,
            "PEM certificate (chain) that enables the TLS log port and HTTPS on the HTTP port",
            readme="PEM certificate chain: enables the TLS log port and turns the HTTP and"
            " OTLP ports into HTTPS; reloaded on `SIGHUP` for new connections",
        ),
    )
    tls_key: Path | None = field(
        default=None,
        metadata=_option(
            _path,
            "PEM private key of --tls-cert (default: in the --tls-cert file)",
            readme="PEM private key of `--tls-cert` (default: the key in the certificate file)",
        ),
    )
    tls_client_ca: Path | None = field(
        default=None,
        metadata=_option(
            _path,
            "require client certificates signed by this CA (PEM) on the TLS log port",
            readme="require and verify client certificates signed by this CA (PEM) on the"
            " TLS log port (mutual TLS)",
        ),
    )


class Option(NamedTuple):
    """One ``serve`` option as the world outside Python sees it.

    A named tuple rather than a dataclass: it is only read, and
    :mod:`netlog.client` imports this module, so its creation cost is paid by
    every application at start-up (a frozen dataclass costs ~8x more).
    """

    name: str  #: the Settings field, and the argparse ``dest``
    flag: str  #: ``--log-tcp-port``
    env: str  #: ``NETLOG_LOG_TCP_PORT``
    default: object
    convert: Callable[[str], object]  #: raises :class:`OptionError` on a bad value
    help: str  #: the ``--help`` line
    readme: str  #: the README table's "meaning" cell
    shown: str  #: the README table's "default" cell


def _shown(value: object) -> str:
    """A default as the README writes it: text in backticks, numbers bare."""
    if value is None:
        return "—"
    if isinstance(value, Path):
        return f"`{value if value.is_absolute() else f'./{value}'}`"
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _option_of(spec: Field[object]) -> Option:
    flag = "--" + spec.name.replace("_", "-")
    meta = spec.metadata
    return Option(
        name=spec.name,
        flag=flag,
        env=env_name(flag),
        default=spec.default,
        convert=meta["convert"],
        help=meta["help"],
        readme=meta["readme"],
        shown=meta["shown"] or _shown(spec.default),
    )


#: Every ``serve`` option, in the order of the Settings fields.
OPTIONS: Final[tuple[Option, ...]] = tuple(_option_of(spec) for spec in fields(Settings))


def options_table() -> str:
    """The README's options table (Markdown), generated from :data:`OPTIONS`."""
    rows = ["| option | environment | default | meaning |", "|---|---|---|---|"]
    rows += [f"| `{o.flag}` | `{o.env}` | {o.shown} | {o.readme} |" for o in OPTIONS]
    return "\n".join(rows) + "\n"


#: The flags of every listener's port (``--echo-port`` ... ``--fluent-port``):
#: what a test or benchmark sets to ``0`` (ephemeral) or ``-1`` (off) so that
#: no two servers it starts bind a default port, whatever listeners exist.
PORT_FLAGS: Final[tuple[str, ...]] = tuple(o.flag for o in OPTIONS if o.convert is _port)
