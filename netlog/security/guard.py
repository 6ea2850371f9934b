"""The gate every HTTP request passes before the server reads its body.

One decision per request, from its WSGI environ alone, in this order:

1. ``/health`` is always answered (it says ``ok`` or ``draining``, nothing
   more), so container and load-balancer checks need no configuration.
2. ``Host`` must be allowed (:mod:`netlog.security.hosts`): 403 otherwise.
3. A source that failed to authenticate too often is refused, 429 with
   ``Retry-After`` (:mod:`netlog.security.throttle`), when a token is set.
4. A browser request from another site is refused, 403, where it could
   write or read records: every method on ``/log`` (``GET /log?msg=``
   writes too), ``/login``, the query API ``/api/*`` and ``/events``, and
   every method but GET and HEAD anywhere.  "Another site" is
   ``Sec-Fetch-Site: cross-site`` or ``same-site`` (another port on
   localhost is the same *site*), or an ``Origin`` that is not this
   server's.  Requests with neither header (``HTTPHandler``, curl, the
   OTLP exporters) are not browsers' and pass.  A valid ``Authorization``
   header lifts the check (a page cannot set one cross-origin without a
   CORS preflight, which is never approved); the viewer's cookie does not,
   since a same-site page's requests carry it.
5. With a token, every other route needs it: ``Authorization: Bearer
   TOKEN``, ``Authorization: Basic`` with the token as the password (the
   only way ``logging.handlers.HTTPHandler`` can send it, through
   ``credentials=``), or the viewer's session cookie.  ``GET /`` without
   them is the login page; anything else is 401 with no detail, counted.
   A wrong ``Authorization`` header or a wrong token given to ``/login``
   is a failure for the throttle; a request with none (or with a stale
   cookie: a viewer page whose session ended fires several at once) is
   not, since it guesses nothing (a cookie is a 256-bit HMAC, not
   guessable).  The login page's own files are open.

The session cookie holds ``HMAC-SHA256(token, "netlog viewer session")``,
not the token: cookies ignore ports, so every web server on the same host
name receives it, and what it leaks there opens the viewer of this
netlog only, never the token itself (reused in exporters' configurations).
Changing the token ends every session.  Comparisons use
:func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections import Counter
from collections.abc import Mapping
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

from netlog.security.hosts import AllowedHosts
from netlog.security.throttle import FailureThrottle

__all__ = [
    "LOGIN",
    "OPEN_PATHS",
    "HttpGuard",
    "Verdict",
    "session_cookie_name",
]

#: Paths answered without the token: the health check and the login page's files.
OPEN_PATHS: Final = frozenset({"/health", "/login.js", "/login.css", "/favicon.svg"})
#: Paths where a cross-site request is refused whatever its method.
_GUARDED: Final = ("/log", "/login", "/events")
_SAFE_METHODS: Final = frozenset({"GET", "HEAD"})
_SESSION_LABEL: Final = b"netlog viewer session"


class Verdict(NamedTuple):
    """A request the guard answers itself: status, reason (for counting), text, headers."""

    status: int
    reason: str
    text: str
    headers: tuple[tuple[str, str], ...] = ()


#: Not a refusal: serve the login page instead of the viewer.
LOGIN: Final = Verdict(200, "login", "")
_HOST: Final = Verdict(403, "host", "forbidden")
_CROSS_SITE: Final = Verdict(403, "cross_site", "forbidden")
_UNAUTHORIZED: Final = Verdict(401, "auth", "unauthorized", (("WWW-Authenticate", "Bearer"),))


def session_cookie_name(port: int) -> str:
    """The viewer's cookie for the server on ``port``: cookies ignore ports, names do not."""
    return f"netlog_session_{port}"


def _header(environ: Mapping[str, Any], name: str) -> str | None:
    value = environ.get(name)
    return value if isinstance(value, str) else None


def _raw(text: str) -> bytes:
    """A WSGI header value back to its bytes (PEP 3333: decoded as latin-1)."""
    return text.encode("latin-1", "replace")


class HttpGuard:
    """Decides, per request, whether the HTTP server may go on (see the module docstring)."""

    def __init__(
        self,
        hosts: AllowedHosts,
        token: str | None,
        *,
        cookie_name: str,
        throttle: FailureThrottle | None = None,
        secure_cookie: bool = False,
    ) -> None:
        self.hosts = hosts
        self.cookie_name = cookie_name
        self.secure_cookie = secure_cookie
        self.throttle = throttle if throttle is not None else FailureThrottle()
        self._token = token.encode() if token else None
        self._session = (
            hmac.new(self._token, _SESSION_LABEL, hashlib.sha256).hexdigest().encode()
            if self._token
            else None
        )
        self.refused: Counter[str] = Counter()
        """Requests refused, by reason: ``host``, ``cross_site``, ``auth``, ``throttled``."""

    @property
    def token_set(self) -> bool:
        """Whether an access token is required."""
        return self._token is not None

    @property
    def auth_failures(self) -> int:
        """Requests refused for a missing or wrong token, and failed logins."""
        return self.refused["auth"]

    # -- the decision -----------------------------------------------------------

    def check(self, environ: Mapping[str, Any], now: float) -> Verdict | None:
        """``None`` to serve the request, :data:`LOGIN`, or the refusal to send."""
        path = _header(environ, "PATH_INFO") or "/"
        if path == "/health":
            return None
        if not self.hosts.allows(_header(environ, "HTTP_HOST")):
            return self._refuse(_HOST)
        source = _header(environ, "REMOTE_ADDR") or ""
        if self._token is not None:
            wait = self.throttle.retry_after(source, now)
            if wait:
                self.refused["throttled"] += 1
                return Verdict(429, "throttled", "too many requests", (("Retry-After", str(wait)),))
        authorization = _header(environ, "HTTP_AUTHORIZATION")
        header_ok = authorization is not None and self._authorization_ok(authorization)
        method = _header(environ, "REQUEST_METHOD") or "GET"
        if _guarded(method, path) and _cross_site(environ) and not header_ok:
            return self._refuse(_CROSS_SITE)
        if self._token is None or header_ok or path in OPEN_PATHS or path == "/login":
            return None
        return self._without_header(environ, method, path, source, now)

    def _without_header(
        self, environ: Mapping[str, Any], method: str, path: str, source: str, now: float
    ) -> Verdict | None:
        """A route that needs the token, and no right ``Authorization``: the cookie, or not."""
        if self._cookie_ok(_header(environ, "HTTP_COOKIE")):
            return None
        guessed = "HTTP_AUTHORIZATION" in environ
        if path == "/" and method in _SAFE_METHODS and not guessed:
            return LOGIN
        if guessed:
            self.throttle.failed(source, now)
        return self._refuse(_UNAUTHORIZED)

    def login(self, token: str, source: str, now: float) -> str | None:
        """The ``Set-Cookie`` value for a right ``token`` (POST /login); ``None``, counted, else.

        The caller has passed :meth:`check` first (Host, throttle, cross-site).
        """
        if self._token is None or self._session is None:
            return None
        if not hmac.compare_digest(token.strip().encode("utf-8", "replace"), self._token):
            self.throttle.failed(source, now)
            self.refused["auth"] += 1
            return None
        cookie = f"{self.cookie_name}={self._session.decode()}; HttpOnly; SameSite=Strict; Path=/"
        return cookie + "; Secure" if self.secure_cookie else cookie

    # -- credentials --------------------------------------------------------------

    def _authorization_ok(self, value: str) -> bool:
        if self._token is None:
            return False
        scheme, _, credentials = value.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return hmac.compare_digest(_raw(credentials.strip()), self._token)
        if scheme == "basic":
            try:
                decoded = base64.b64decode(_raw(credentials.strip()), validate=True)
            except (binascii.Error, ValueError):
                return False
            _user, _, password = decoded.partition(b":")
            return hmac.compare_digest(password, self._token)
        return False

    def _cookie_ok(self, header: str | None) -> bool:
        if header is None or self._session is None:
            return False
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == self.cookie_name and hmac.compare_digest(_raw(value.strip()), self._session):
                return True
        return False

    def _refuse(self, verdict: Verdict) -> Verdict:
        self.refused[verdict.reason] += 1
        return verdict


def _guarded(method: str, path: str) -> bool:
    """Whether a cross-site request for ``path`` could write or read records."""
    return method not in _SAFE_METHODS or path in _GUARDED or path.startswith("/api/")


def _cross_site(environ: Mapping[str, Any]) -> bool:
    """A browser's request from elsewhere: by ``Sec-Fetch-Site``, or ``Origin`` against ``Host``."""
    fetch_site = (_header(environ, "HTTP_SEC_FETCH_SITE") or "").strip().lower()
    if fetch_site in {"cross-site", "same-site"}:
        return True
    origin = _header(environ, "HTTP_ORIGIN")
    if origin is None:
        return False
    host = (_header(environ, "HTTP_HOST") or "").strip().lower()
    return not host or _origin_host(origin) != _without_default_port(host, origin)


def _origin_host(origin: str) -> str | None:
    """``http://localhost:9022`` -> ``localhost:9022``; ``null`` or garbage -> ``None``."""
    try:
        parts = urlsplit(origin.strip().lower())
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return None
    return _without_default_port(parts.netloc, origin)


def _without_default_port(netloc: str, origin: str) -> str:
    default = ":443" if origin.strip().lower().startswith("https:") else ":80"
    return netloc.removesuffix(default)
