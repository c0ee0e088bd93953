"""Which browser Origins may open a websocket: the Panel's (`remote`) and `allowed_origins`
(`"*"` allows any), compared as origins (scheme, host and port; the default port and case do not
matter, and a path on `remote` is ignored).

A request without an Origin header is not from a browser page (browsers always send one on a
websocket upgrade): such clients (scripts, tools, the tests) authenticate with the token like any
other, and cross-site hijacking, which the check exists to stop, needs a browser.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize(origin: str) -> str | None:
    """`scheme://host[:port]`, lower-cased with the default port dropped; None when it is not a URL."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


def origin_allowed(origin: str | None, remote: str | None, allowed: list[str]) -> bool:
    if origin is None:
        return True
    if "*" in allowed:
        return True
    given = normalize(origin)
    if given is None:
        return origin.strip() in allowed  # e.g. "null", only when the operator lists it
    accepted = {normalize(o) for o in [remote or "", *allowed]} - {None}
    return given in accepted
