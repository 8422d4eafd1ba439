"""Access token, session cookie, CSRF and response headers for the console.

- Bound to loopback with no token set: open to this machine only. With a token (required when
  bound anywhere else): every request needs `Authorization: Bearer <token>` or the session
  cookie the login page sets (an HMAC of the token, never the token itself); else 401.
- Changes (POST) need the CSRF token: a random cookie repeated in the form (double submit),
  and the browser's Origin / Sec-Fetch-Site must say the request came from the console itself.
  API clients with the bearer header are exempt (a browser never adds that header cross-site).
- Every answer carries a Content-Security-Policy that allows scripts and styles from the console
  only (no inline script, no inline event handler), and no framing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

SESSION_COOKIE = "nw_session"
CSRF_COOKIE = "nw_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
OPEN_PATHS = ("/login", "/static/")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "same-origin",
           "x-frame-options": "DENY", "cache-control": "no-store"}


def session_value(token: str) -> str:
    return hmac.new(token.encode("utf-8"), b"newswatch-console-session/v1", hashlib.sha256).hexdigest()


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def authorised(token: str | None, authorization: str | None, session: str | None) -> bool:
    """True when no token is required, or the request carries it (header) or its session cookie."""
    if token is None:
        return True
    if authorization and authorization.lower().startswith("bearer "):
        if hmac.compare_digest(authorization[7:].strip().encode(), token.encode()):
            return True
    return bool(session) and hmac.compare_digest(session.encode(), session_value(token).encode())


def bearer_ok(token: str | None, authorization: str | None) -> bool:
    return token is not None and bool(authorization) and authorization.lower().startswith("bearer ") and \
        hmac.compare_digest(authorization[7:].strip().encode(), token.encode())


def same_origin(origin: str | None, fetch_site: str | None, host: str | None) -> bool:
    """False when the browser says the request came from another site."""
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    if origin is not None and origin != "null":
        return urlsplit(origin).netloc.lower() == (host or "").lower()
    # "null" is what a browser sends from a privacy-sensitive context: only its own word counts then
    return origin != "null" or fetch_site == "same-origin"


def csrf_ok(cookie: str | None, submitted: str | None) -> bool:
    return bool(cookie) and bool(submitted) and hmac.compare_digest(cookie.encode(), submitted.encode())
