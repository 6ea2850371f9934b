"""Syslog messages (RFC 5424 and RFC 3164) as one pure function.

Real senders rarely follow RFC 3164 to the letter: Python's
``SysLogHandler`` sends ``<PRI>`` and the formatted message with no
timestamp or hostname (and a trailing NUL), rsyslog may put an RFC 3339
timestamp where the BSD one belongs.  So :func:`parse_syslog` is strict
about ``<PRI>`` (that is what makes a datagram syslog at all) and lenient
about everything after it: an RFC 5424 message whose structure is broken is
read as RFC 3164, and RFC 3164 parsing cannot fail (at worst everything
after ``<PRI>`` is the message).
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

__all__ = ["FACILITIES", "SEVERITIES", "SyslogMessage", "parse_syslog"]

#: RFC 5424 section 6.2.1 severity keywords, indexed by severity.
SEVERITIES: Final = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

#: RFC 5424 facility names (0-23), as syslog.conf spells them.
FACILITIES: Final = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "audit",
    "alert",
    "clock",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
)


class SyslogMessage(NamedTuple):
    """One parsed syslog message; ``None`` means the field was absent or ``-``."""

    rfc: int
    """5424 or 3164."""
    facility: int
    severity: int
    timestamp: str | None
    """As sent: RFC 3164 ones lack year and zone, so they are not converted here."""
    hostname: str | None
    app_name: str | None
    """RFC 5424 APP-NAME or RFC 3164 TAG."""
    procid: str | None
    msgid: str | None
    structured_data: dict[str, dict[str, str]]
    message: str

    @property
    def facility_name(self) -> str:
        """The facility keyword (``local0`` ...)."""
        return FACILITIES[self.facility] if self.facility < len(FACILITIES) else str(self.facility)

    @property
    def severity_name(self) -> str:
        """The severity keyword (``err`` ...)."""
        return SEVERITIES[self.severity]


_PRI: Final = re.compile(rb"<(\d{1,3})>")
_BSD_TIMESTAMP: Final = re.compile(r"([A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d) ")
_ISO_TIMESTAMP: Final = re.compile(r"(\d{4}-\d\d-\d\dT\S+) ")
_HOSTNAME: Final = re.compile(r"(\S+) ")
#: ``TAG:`` or ``TAG[PID]:``; also ``TAG[PID]`` and a space, no colon: what rsyslog's
#: traditional forwarding format makes of an RFC 5424 message's APP-NAME and PROCID.
_TAG: Final = re.compile(r"([^\s\[\]:]{1,48})(?:\[([^\]\s]{0,32})\](?:: ?| )|: ?)")
_SD_NAME: Final = re.compile(r'[^ =\]"]{1,32}')


def parse_syslog(data: bytes) -> SyslogMessage | None:
    """Parse a datagram that starts with ``<PRI>``; None if it does not.

    A trailing NUL (``SysLogHandler`` appends one) and line ending are
    dropped; invalid UTF-8 is kept as backslash escapes.
    """
    match = _PRI.match(data)
    if match is None:
        return None
    pri = int(match.group(1))
    if pri > 191:
        return None
    facility, severity = divmod(pri, 8)
    rest = data[match.end() :].rstrip(b"\x00").removesuffix(b"\n").removesuffix(b"\r")
    text = rest.decode("utf-8", "backslashreplace")
    if text.startswith("1 "):
        parsed = _parse_5424(text[2:], facility, severity)
        if parsed is not None:
            return parsed
    return _parse_3164(text, facility, severity)


def _nil(value: str) -> str | None:
    return None if value == "-" else value


def _parse_5424(text: str, facility: int, severity: int) -> SyslogMessage | None:
    parts = text.split(" ", 5)
    if len(parts) < 6:
        if len(parts) != 5:
            return None
        parts.append("-")  # SD is mandatory, but be forgiving when it is all that is missing
    timestamp, hostname, app_name, procid, msgid, rest = parts
    if rest.startswith("-"):
        structured: dict[str, dict[str, str]] = {}
        rest = rest[1:]
    else:
        parsed = _parse_structured_data(rest)
        if parsed is None:
            return None
        structured, end = parsed
        rest = rest[end:]
    if rest and not rest.startswith(" "):
        return None
    message = rest[1:].removeprefix("\ufeff")
    return SyslogMessage(
        5424,
        facility,
        severity,
        _nil(timestamp),
        _nil(hostname),
        _nil(app_name),
        _nil(procid),
        _nil(msgid),
        structured,
        message,
    )


def _parse_structured_data(text: str) -> tuple[dict[str, dict[str, str]], int] | None:  # noqa: C901, PLR0911, PLR0912 - one small state machine
    """Parse ``[id k="v" ...][id2 ...]``; return it and where it ended, or None."""
    result: dict[str, dict[str, str]] = {}
    i = 0
    end = len(text)
    if not text.startswith("["):
        return None
    while i < end and text[i] == "[":
        match = _SD_NAME.match(text, i + 1)
        if match is None:
            return None
        params = result.setdefault(match.group(), {})
        i = match.end()
        while True:
            if i >= end:
                return None
            if text[i] == "]":
                i += 1
                break
            if text[i] != " ":
                return None
            match = _SD_NAME.match(text, i + 1)
            if match is None or text[match.end() : match.end() + 2] != '="':
                return None
            i = match.end() + 2
            value: list[str] = []
            while True:
                if i >= end:
                    return None
                char = text[i]
                if char == "\\" and i + 1 < end and text[i + 1] in '"\\]':
                    value.append(text[i + 1])
                    i += 2
                elif char == '"':
                    i += 1
                    break
                else:
                    value.append(char)
                    i += 1
            params[match.group()] = "".join(value)
    return result, i


def _parse_3164(text: str, facility: int, severity: int) -> SyslogMessage:
    timestamp: str | None = None
    hostname: str | None = None
    position = 0
    match = _BSD_TIMESTAMP.match(text) or _ISO_TIMESTAMP.match(text)
    if match is not None:
        timestamp = match.group(1)
        position = match.end()
        host = _HOSTNAME.match(text, position)
        # "Oct 11 22:14:15 su: ..." has no hostname: a token ending in ":" is the tag.
        if host is not None and not host.group(1).endswith(":") and "[" not in host.group(1):
            hostname = host.group(1)
            position = host.end()
    app_name: str | None = None
    procid: str | None = None
    tag = _TAG.match(text, position)
    if tag is not None:
        app_name = tag.group(1)
        procid = tag.group(2) or None
        position = tag.end()
    return SyslogMessage(
        3164,
        facility,
        severity,
        timestamp,
        hostname,
        app_name,
        procid,
        None,
        {},
        text[position:],
    )
