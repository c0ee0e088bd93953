"""The websocket token: a JWT the Panel signs (HS256) with the node token and the browser sends in
its `auth` frame.

The Panel puts `server_uuid`, `user_uuid` (older panels: `user_id`), `permissions`, `iat`, `nbf`,
`exp` and `jti` in it; newer ones add `scope`, which must then include `websocket`.

Refusals use Wings' texts, because the Panel's client reads them: it fetches a fresh token and
authenticates again only when the text contains `jwt: exp claim is invalid` (expired) or
`jwt: created too far in past (denylist)` (issued before the daemon started, or revoked), and tells
the user to refresh the page for any other text.

Where we differ from Wings, on purpose: Wings accepts a token for another server at `auth` (it
answers `auth success`, then refuses every frame); here that token is refused at `auth`, with
nothing else sent. A token issued in the same second the daemon started is accepted (Wings compares
to the nanosecond a time the token only gives in seconds, and refuses it); a token issued in the
same second as a denial of its `jti` is refused, as in Wings (it may have been issued just before).
`nbf` is checked, with 30 s of leeway for clocks that differ (Wings ignores it).
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from wingman.api.websocket import permissions as perms

# The node token signs the JWTs, whatever its length (the Panel generates 64 characters); the
# config asks for 8 at least. PyJWT's warning would be printed on every token checked.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)

# Wings' texts (the Panel's client reacts to the first two).
EXPIRED = "jwt: exp claim is invalid"
DENYLISTED = "jwt: created too far in past (denylist)"
NO_JWT = "jwt: no jwt present"
NO_CONNECT = "jwt: missing connect permission"
UUID_MISMATCH = "jwt: server uuid mismatch"
# Texts of the JWT library Wings uses, for what it refuses before looking at the claims.
MALFORMED = "jwt: malformed token"
BAD_SIGNATURE = "jwt: HMAC verification failed"
NOT_YET_VALID = "jwt: nbf claim is invalid"
# wingman's own.
NO_USER = "jwt: the token names no user (user_uuid or user_id)"
NO_SCOPE = "jwt: the token's scope does not include websocket"

NBF_LEEWAY = 30.0  # seconds


class JwtRefused(Exception):
    """The token cannot be used; the message is the text sent in the `jwt error` frame."""


@dataclass(frozen=True)
class SocketToken:
    server_uuid: str
    user: str
    permissions: frozenset[str]
    issued_at: float
    expires_at: float
    jti: str | None

    def allows(self, permission: str) -> bool:
        return perms.granted(self.permissions, permission)


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _scopes(value) -> set[str]:
    if isinstance(value, str):
        return set(re.split(r"[\s,]+", value.strip()))
    if isinstance(value, list):
        return {s for s in value if isinstance(s, str)}
    return set()


class TokenChecker:
    def __init__(self, secret: str, started_at: float, denied_at: Callable[[str | None], float | None]):
        self._secret = secret
        self._started_second = int(started_at)
        self._denied_at = denied_at

    def admit(self, raw: str, server_uuid: str, now: float | None = None) -> SocketToken:
        """The token of an `auth` frame for this server, or JwtRefused with Wings' text."""
        now = time.time() if now is None else now
        raw = raw.strip()
        if not raw:
            raise JwtRefused(NO_JWT)
        try:
            claims = jwt.decode(
                raw,
                self._secret,
                algorithms=["HS256"],
                options={
                    # Signature only: the claims are checked below, with Wings' texts and our clock.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
            raise JwtRefused(BAD_SIGNATURE) from None
        except jwt.PyJWTError:
            raise JwtRefused(MALFORMED) from None
        expires = _number(claims.get("exp"))
        if expires is None or expires <= now:
            raise JwtRefused(EXPIRED)
        if "nbf" in claims:
            not_before = _number(claims["nbf"])
            if not_before is None or not_before > now + NBF_LEEWAY:
                raise JwtRefused(NOT_YET_VALID)
        issued = _number(claims.get("iat"))
        jti = claims.get("jti") if isinstance(claims.get("jti"), str) else None
        if issued is None or issued < self._started_second or self._revoked(jti, issued):
            raise JwtRefused(DENYLISTED)
        listed = claims.get("permissions")
        permissions = frozenset(p for p in listed if isinstance(p, str)) if isinstance(listed, list) else frozenset()
        if not perms.granted(permissions, perms.CONNECT):
            raise JwtRefused(NO_CONNECT)
        if "scope" in claims and "websocket" not in _scopes(claims["scope"]):
            raise JwtRefused(NO_SCOPE)
        if str(claims.get("server_uuid", "")).lower() != server_uuid.lower():
            raise JwtRefused(UUID_MISMATCH)
        user = claims.get("user_uuid") or claims.get("user_id")
        if not isinstance(user, (str, int)) or isinstance(user, bool) or str(user).strip() == "":
            raise JwtRefused(NO_USER)
        return SocketToken(
            server_uuid=server_uuid,
            user=str(user),
            permissions=permissions,
            issued_at=issued,
            expires_at=expires,
            jti=jti,
        )

    def problem(self, token: SocketToken, now: float | None = None) -> str | None:
        """Why an admitted token may no longer be used (it expired, or was revoked since), or None."""
        now = time.time() if now is None else now
        if token.expires_at <= now:
            return EXPIRED
        if self._revoked(token.jti, token.issued_at):
            return DENYLISTED
        return None

    def _revoked(self, jti: str | None, issued: float) -> bool:
        denied = self._denied_at(jti)
        return denied is not None and issued < denied
