"""Bearer authentication for /api routes and /metrics.

The node token may call everything. Audit tokens (config `audit_tokens`) may call only routes
declared with `ctx_read_only=True`. Tokens are compared in constant time and never logged.
Websocket routes are not checked here: browsers cannot send the header on a websocket, and the
socket authenticates with a JWT in its first frame instead (api/websocket).
"""

from __future__ import annotations

import hmac

from sanic import Request, Sanic

from wingman.api.context import node
from wingman.api.errors import json_error

PUBLIC_PATHS = ("/api/openapi.json",)
# Outside /api, what needs a token all the same: the metrics (a separate listener, when the config
# names one, serves them without a token: api/routes/metrics.py).
GUARDED_PATHS = ("/metrics",)


def _matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def role_for(token: str, node_token: str, audit_tokens: list[str]) -> str | None:
    if _matches(token, node_token):
        return "node"
    # Check every audit token (no early exit) so timing says nothing about which one matched.
    matched = False
    for candidate in audit_tokens:
        matched |= _matches(token, candidate)
    return "audit" if matched else None


def install(app: Sanic) -> None:
    @app.on_request(priority=10)
    async def authenticate(request: Request):
        guarded = request.path.startswith("/api/") or request.path in GUARDED_PATHS
        if not guarded or request.path.startswith(PUBLIC_PATHS):
            return None
        if request.route is None:  # unknown route: the 404 handler answers, nothing leaks
            return None
        if getattr(request.route.extra, "websocket", False):  # a JWT in its first frame: api/websocket
            return None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return json_error(
                401,
                "The required authorization heads were not present in the request.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        config = node(request).config
        role = role_for(token.strip(), config.token, config.audit_tokens)
        if role is None:
            return json_error(403, "You are not authorized to access this endpoint.")
        if role == "audit" and not getattr(request.route.ctx, "read_only", False):
            return json_error(403, "An audit token may only read; this endpoint changes the node.")
        request.ctx.role = role
        return None
