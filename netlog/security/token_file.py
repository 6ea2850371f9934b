"""The access token, from ``--auth-token`` or read once from ``--auth-token-file``.

A file keeps the token out of ``ps`` and out of the environment that child
processes inherit (Docker and Kubernetes secrets are files).  It is read
once at start; a change takes a restart, like the other options.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TokenError", "load_token"]

#: Larger than any token; a wrong path (a log file) is not read whole.
_MAX_TOKEN_FILE = 4096


class TokenError(ValueError):
    """The token cannot be had: the message is one line for the start-up error."""


def load_token(token: str | None, path: Path | None) -> str | None:
    """The token to require, or ``None``; :class:`TokenError` for a bad file or both given."""
    if path is None:
        return token
    if token is not None:
        raise TokenError("give --auth-token or --auth-token-file, not both")
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_TOKEN_FILE + 1)
    except OSError as exc:
        raise TokenError(f"cannot read --auth-token-file {path}: {exc.strerror or exc}") from None
    if len(data) > _MAX_TOKEN_FILE:
        raise TokenError(f"--auth-token-file {path} is over {_MAX_TOKEN_FILE} bytes: not a token")
    try:
        value = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise TokenError(f"--auth-token-file {path} is not UTF-8 text") from None
    if not value:
        raise TokenError(f"--auth-token-file {path} is empty")
    return value
