"""Who may use the HTTP port: allowed Host names, cross-site checks, the access token.

Pure code, no sockets and no gevent: :mod:`servers.http` asks
:class:`~netlog.security.guard.HttpGuard` about each request before it
reads anything else, and :mod:`servers.runner` asks
:func:`~netlog.security.exposure.exposure_warning` what to say at start.
"""

from netlog.security.exposure import exposure_warning
from netlog.security.guard import LOGIN, HttpGuard, Verdict, session_cookie_name
from netlog.security.hosts import AllowedHosts, allowed_hosts
from netlog.security.throttle import FailureThrottle
from netlog.security.token_file import TokenError, load_token

__all__ = [
    "LOGIN",
    "AllowedHosts",
    "FailureThrottle",
    "HttpGuard",
    "TokenError",
    "Verdict",
    "allowed_hosts",
    "exposure_warning",
    "load_token",
    "session_cookie_name",
]
