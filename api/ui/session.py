"""The operator page's sign-in: a token given once, in a POST body, becomes a session cookie.

The cookie is a JWT (PyJWT, HS256) holding the role (`node` or `audit`), a fingerprint of the
token signed in with, a CSRF secret and an expiry; it is HttpOnly, SameSite=Strict, limited to
/ui, and Secure when the API serves TLS. Its key is derived from the node token, so a new node
token ends every session; the fingerprint is checked against the config at every request, so an
audit token taken out of the config ends its sessions too. The token itself is never in the
cookie, a URL or a log.

Every state-changing form carries the session's CSRF secret (a hidden field, or the
X-CSRF-Token header htmx sends); a post without it, or with another, is a 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import jwt
from sanic import Request
from sanic.response import HTTPResponse

from wingman.api.auth import role_for
from wingman.engine.config import DaemonConfig

COOKIE = "wingman_ui"
LIFETIME = 12 * 3600  # seconds: a working day's shift
ALGORITHM = "HS256"


@dataclass(frozen=True)
class Session:
    role: str  # node | audit
    csrf: str

    @property
    def may_act(self) -> bool:
        """Only the node token presses buttons; an audit token sees everything and changes nothing."""
        return self.role == "node"


def _key(config: DaemonConfig) -> bytes:
    return hmac.new(config.token.encode(), b"wingman operator page session", hashlib.sha256).digest()


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def sign_in(config: DaemonConfig, token: str) -> tuple[Session, str] | None:
    """The session and its cookie value for a valid token; None otherwise."""
    role = role_for(token, config.token, config.audit_tokens)
    if role is None:
        return None
    session = Session(role=role, csrf=secrets.token_urlsafe(24))
    now = int(time.time())
    claims = {"role": role, "tok": _fingerprint(token), "csrf": session.csrf, "iat": now, "exp": now + LIFETIME}
    return session, jwt.encode(claims, _key(config), algorithm=ALGORITHM)


def session_of(request: Request, config: DaemonConfig) -> Session | None:
    """The request's session, if its cookie is valid and its token still configured."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    try:
        claims = jwt.decode(value, _key(config), algorithms=[ALGORITHM], options={"require": ["exp", "iat"]})
    except jwt.PyJWTError:
        return None
    role, fingerprint = claims.get("role"), str(claims.get("tok", ""))
    valid = {"node": [config.token], "audit": list(config.audit_tokens)}.get(str(role), [])
    # Compared as fingerprints in constant time, every candidate (no early exit).
    matched = False
    for token in valid:
        matched |= hmac.compare_digest(_fingerprint(token), fingerprint)
    if not matched:
        return None
    return Session(role=str(role), csrf=str(claims.get("csrf", "")))


def set_cookie(response: HTTPResponse, value: str, secure: bool) -> None:
    response.add_cookie(COOKIE, value, path="/ui", httponly=True, samesite="Strict", secure=secure, max_age=LIFETIME)


def clear_cookie(response: HTTPResponse) -> None:
    response.delete_cookie(COOKIE, path="/ui")


def csrf_ok(request: Request, session: Session) -> bool:
    given = request.headers.get("x-csrf-token") or (request.form.get("csrf") if request.form else None) or ""
    return bool(session.csrf) and hmac.compare_digest(str(given), session.csrf)
